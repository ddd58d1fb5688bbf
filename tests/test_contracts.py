"""Contract tests: every operator and regularizer of the package through the same checks.

ONE registry per kind (``OPERATORS``, ``REGULARIZERS``): an entry is a
factory, the signal shape it is tested on and what the contract may expect
of it. A new component is one class plus one registry line; the last tests
check that every public component class has a line.
"""

import pickle
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from retune_sklearn import regularizers
from retune_sklearn.regularizers import (L1Norm, LearnedDenoiser, Tikhonov, TotalVariation,
                                         WaveletL1)


@dataclass(frozen=True)
class Entry:
    """One component variant of a registry."""

    id: str
    factory: Callable
    shape: tuple
    #: A parameter that must be an int (set to True, it must be refused).
    int_param: Optional[str] = None
    #: Regularizers: the prox is the prox of a convex penalty (non-expansive, has a penalty).
    convex: bool = True
    #: Regularizers: the prox is exact (checked as the minimizer of its objective).
    exact_prox: bool = True

    def __repr__(self):
        return self.id


def params(registry):
    return [pytest.param(entry, id=entry.id) for entry in registry]


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(shape, seed=0):
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64)


# ------------------------------------------------------------------ regularizers
REGULARIZERS = [
    Entry("l1", L1Norm, (16,)),
    Entry("wavelet-subband", lambda: WaveletL1("haar", 2), (8, 8), int_param="levels"),
    Entry("wavelet-level-1d", lambda: WaveletL1("db2", 2, weights="level"), (16,)),
    Entry("wavelet-scalar-unpenalized-approx",
          lambda: WaveletL1("haar", 2, weights="scalar", penalize_approximation=False), (8, 8)),
    Entry("wavelet-shared-color", lambda: WaveletL1("haar", 1), (3, 8, 8)),
    Entry("wavelet-separate", lambda: WaveletL1("haar", 1, channels="separate"), (3, 8, 8)),
    Entry("wavelet-group", lambda: WaveletL1("haar", 1, channels="group"), (3, 8, 8)),
    Entry("wavelet-ti", lambda: WaveletL1("db2", 1, translation_invariant=True), (8, 8),
          int_param="n_shifts"),
    Entry("wavelet-ti-separate",
          lambda: WaveletL1("haar", 1, translation_invariant=True, n_shifts=3,
                            channels="separate"), (2, 8, 8)),
    Entry("wavelet-ti-group-1d",
          lambda: WaveletL1("haar", 1, translation_invariant=True, channels="group"), (16,)),
    Entry("tikhonov-0", Tikhonov, (8, 8), int_param="order"),
    Entry("tikhonov-1", lambda: Tikhonov(order=1), (2, 8, 6)),
    Entry("tikhonov-1-1d", lambda: Tikhonov(order=1), (16,)),
    # FGP with n_inner steps is an approximate prox: optimality is checked with many steps.
    Entry("tv-iso", TotalVariation, (8, 8), int_param="n_inner", exact_prox=False),
    Entry("tv-iso-exact", lambda: TotalVariation(n_inner=3000), (6, 6)),
    Entry("tv-aniso-1d", lambda: TotalVariation(isotropic=False), (16,), exact_prox=False),
    Entry("tv-aniso-exact", lambda: TotalVariation(isotropic=False, n_inner=3000), (6, 6)),
    Entry("tv-direction", lambda: TotalVariation(weights="direction", isotropic=False),
          (8, 8), exact_prox=False),
    Entry("tv-iso-color", TotalVariation, (2, 8, 8), exact_prox=False),
    # Plug-and-play: no penalty, not a prox of a convex function (declared, not skipped silently).
    Entry("denoiser", lambda: LearnedDenoiser(n_layers=2, n_channels=4), (8, 8),
          int_param="n_layers", convex=False, exact_prox=False),
    Entry("denoiser-1d", lambda: LearnedDenoiser(n_layers=2, n_channels=3, kernel_size=5),
          (16,), int_param="kernel_size", convex=False, exact_prox=False),
    Entry("denoiser-color", lambda: LearnedDenoiser(n_layers=3, n_channels=4), (3, 8, 8),
          convex=False, exact_prox=False),
]
N = 3  # batch size of the checks


def setup(entry, seed=0):
    """(regularizer, coefficients u of N random signals, network, number of weights)."""
    reg = entry.factory()
    reg.check_signal_shape(entry.shape)
    network = reg.init_parameters(entry.shape, generator(seed))
    return reg, reg.analysis(randn((N, *entry.shape), seed)), network, \
        len(reg.weight_names(entry.shape))


def thresholds(n_weights, *batch, seed=1):
    """Positive random thresholds of shape (*batch, n_weights), away from 0."""
    return 0.05 + 0.5 * torch.rand((*batch, n_weights), generator=generator(seed),
                                   dtype=torch.float64)


@pytest.mark.parametrize("entry", params(REGULARIZERS))
def test_per_sample_weights_equal_a_loop_over_samples(entry):
    reg, u, network, n_weights = setup(entry)
    per_sample = thresholds(n_weights, N)
    batched = reg.prox(u, per_sample, network)
    looped = torch.cat([reg.prox(u[i:i + 1], per_sample[i], network) for i in range(N)])
    torch.testing.assert_close(batched, looped, rtol=1e-13, atol=1e-13)
    shared = thresholds(n_weights)  # (G,) and its (N, G) expansion agree too
    torch.testing.assert_close(reg.prox(u, shared, network),
                               reg.prox(u, shared.expand(N, -1).clone(), network),
                               rtol=1e-13, atol=1e-13)
    if entry.convex:
        penalties = reg.penalty(u, per_sample)
        assert penalties.shape == (N,)
        looped = torch.cat([reg.penalty(u[i:i + 1], per_sample[i]) for i in range(N)])
        torch.testing.assert_close(penalties, looped, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("entry", params(REGULARIZERS[:2]))
def test_weights_of_another_shape_are_refused(entry):
    reg, u, network, n_weights = setup(entry)
    with pytest.raises(ValueError, match=r"must have shape \(G,\) or \(n_samples, G\)"):
        reg.prox(u, thresholds(n_weights, N + 1), network)


@pytest.mark.parametrize("entry", params([e for e in REGULARIZERS if e.int_param]))
def test_regularizer_refuses_a_bool_for_an_int(entry):
    reg = entry.factory().set_params(**{entry.int_param: True})
    with pytest.raises(InvalidParameterError, match=f"'{entry.int_param}' parameter"):
        reg.check_signal_shape(entry.shape)
