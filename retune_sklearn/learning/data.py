"""Batches of measurements as the solvers see them, and how the samples are split."""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from sklearn.model_selection import train_test_split

__all__ = ["Measurements", "to_tensor", "to_measurements", "batch_slices", "validation_split"]


@dataclass
class Measurements:
    """A batch of measurements, their per-sample 0/1 masks (or None) and the
    indices of the samples in the training set (or None outside training:
    they key the warm-start iterates).

    Indexing along the sample axis slices all three, so the training loop
    handles masked and unmasked data alike.
    """

    values: torch.Tensor
    mask: Optional[torch.Tensor] = None
    index: Optional[torch.Tensor] = None

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        def take(t):
            return None if t is None else t[index]
        return Measurements(self.values[index], take(self.mask), take(self.index))

    @property
    def device(self):
        return self.values.device


def to_tensor(array, device, dtype):
    """A numpy array as a tensor of ``device`` and ``dtype``."""
    # torch wants writable memory (it warns on read-only arrays): copy those.
    array = np.require(array, requirements=["C", "W"])
    return torch.as_tensor(array, device=device).to(dtype)


def to_measurements(X, mask, device, dtype, *, indexed=False):
    """Measurements (and masks, possibly None) as tensors; ``indexed`` numbers the samples."""
    index = torch.arange(len(X), device=device) if indexed else None
    return Measurements(to_tensor(X, device, dtype),
                        None if mask is None else to_tensor(mask, device, dtype), index)


def batch_slices(n_samples, batch_size):
    """Consecutive slices of at most ``batch_size`` covering ``range(n_samples)``."""
    return [slice(start, start + batch_size) for start in range(0, n_samples, batch_size)]


def validation_split(n_samples, validation_fraction, random_state):
    """Indices of the training and validation samples (``early_stopping``)."""
    try:
        return train_test_split(np.arange(n_samples), test_size=validation_fraction,
                                random_state=random_state)
    except ValueError as error:
        raise ValueError(f"early_stopping=True cannot hold out validation_fraction="
                         f"{validation_fraction} of {n_samples} samples: {error}") from None
