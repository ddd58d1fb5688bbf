"""Operators that keep the signal's shape: :class:`Identity` and :class:`Inpainting`."""

from numbers import Real

import numpy as np
import torch
from sklearn.utils import check_random_state

from .._params import StrictInterval
from ._base import LinearOperator


class Identity(LinearOperator):
    """The identity operator (denoising problems)."""

    def forward(self, x):
        return x

    def adjoint(self, z):
        return z

    def normal(self, x):
        return x

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        return 1.0


class Inpainting(LinearOperator):
    """Pixel mask: keeps the entries where ``mask`` is 1 and zeroes the others.

    Parameters
    ----------
    mask : array-like of {0, 1}, default=None
        The mask, of the signal's shape or of its trailing spatial shape (then
        shared across channels). If None, a random mask is drawn.
    keep_prob : float in (0, 1], default=0.5
        Probability that an entry is kept when ``mask`` is None.
    random_state : int, RandomState instance or None, default=0
        Seed of the random mask. The default is a fixed seed so that the
        operator used to simulate data and the one given to the estimator
        (which ``clone`` copies by parameters) draw the same mask; with None
        each construction draws a different mask.

    Notes
    -----
    Measurements keep the signal's shape (missing entries are zeros).
    """

    _parameter_constraints = {
        "mask": [None, "array-like"],
        "keep_prob": [StrictInterval(Real, 0, 1, closed="right")],
        "random_state": ["random_state"],
    }

    def __init__(self, mask=None, keep_prob=0.5, random_state=0):
        self.mask = mask
        self.keep_prob = keep_prob
        self.random_state = random_state

    def mask_array(self, signal_shape):
        """The mask as a float64 array broadcastable to ``signal_shape``."""
        signal_shape = tuple(signal_shape)
        if self.mask is None:
            rng = check_random_state(self.random_state)
            return (rng.random_sample(signal_shape) < self.keep_prob).astype(np.float64)
        mask = np.asarray(self.mask)
        if mask.shape != signal_shape[len(signal_shape) - mask.ndim:] or mask.ndim == 0:
            raise ValueError(f"Inpainting `mask` has shape {mask.shape}; expected the "
                             f"signal shape {signal_shape} or its trailing axes.")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("Inpainting `mask` must contain only 0/1 (or booleans).")
        if not mask.any():
            raise ValueError("Inpainting `mask` keeps no entry (all zeros).")
        return mask.astype(np.float64)

    def _check_signal_shape(self, signal_shape):
        self.mask_array(signal_shape)

    def _drawn_mask(self, shape):
        """:meth:`mask_array` for ``shape``, drawn once: with random_state=None, every
        dtype and device (power iteration in float64, training in float32) must see
        the same mask."""
        return self._cached(("mask", shape), lambda: self.mask_array(shape))

    def _mask_tensor(self, x):
        # The signal shape is unknown here; the cached mask is keyed by the
        # trailing shape of the batch (mask shapes are checked at fit time).
        shape = tuple(x.shape[1:])
        mask = self._drawn_mask(shape)
        return self._cached(("mask", shape, str(x.device), x.dtype), lambda: torch.as_tensor(
            mask, dtype=x.dtype, device=x.device))

    def __getstate__(self):
        state = super().__getstate__()
        # A mask drawn from random_state=None (or a RandomState) cannot be
        # drawn again: keep the numpy draws so a pickled model predicts alike.
        drawn = {key: mask for key, mask in self.__dict__.get("_cache", {}).items()
                 if key[0] == "mask" and len(key) == 2}
        if drawn and self.mask is None:
            state["_cache"] = drawn
        return state

    def forward(self, x):
        return x * self._mask_tensor(x)

    def adjoint(self, z):
        return z * self._mask_tensor(z)

    def normal(self, x):
        return x * self._mask_tensor(x)  # the 0/1 mask is idempotent

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        self.check_signal_shape(signal_shape)
        return float(self._drawn_mask(tuple(signal_shape)).max())
