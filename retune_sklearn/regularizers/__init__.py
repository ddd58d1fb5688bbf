"""Regularizers ``Σ_g λ_g R_g`` with one learnable weight per group ``g``.

A regularizer defines the variable ``u`` that the forward–backward solver
iterates on (synthesis form: the signal is ``x = synthesis(u)``) and the
proximal map of its weighted penalty. The weights themselves are owned by
the estimator (learned in the log domain); the regularizer only says how
many there are and what they are called, for a given signal shape.

Interface used by the estimator and :mod:`retune_sklearn.solvers`
(:data:`REGULARIZER_METHODS`, checked at ``fit``):

* ``check_signal_shape(signal_shape)``: raise ``ValueError`` if a parameter
  is invalid (``_parameter_constraints``) or the shape unsupported;
* ``weight_names(signal_shape)``: one name per learnable weight;
* ``analysis(x)`` / ``synthesis(u)``: ``W x`` and ``W* u``
  (``synthesis(analysis(x)) == x``);
* ``prox(u, thresholds, network)``: prox of ``Σ_g thresholds[g] R_g`` at
  ``u`` (or, for learned regularizers, the map that stands in for it);
  ``thresholds`` has shape ``(G,)`` (shared by the batch) or
  ``(n_samples, G)`` (one set per sample);
* ``penalty(u, weights)``: ``Σ_g weights[g] R_g(u)`` per sample, weights
  shaped as ``thresholds``;
* ``init_parameters(signal_shape, generator)``: the regularizer's own
  learnable tensors (``network``), e.g. a denoiser's convolutions; empty
  for classical regularizers.
"""

from ._base import REGULARIZER_METHODS, Regularizer, soft_threshold
from .denoisers import LearnedDenoiser
from .pnp import PnP
from .smooth import Tikhonov
from .sparsity import L1Norm, WaveletL1
from .tv import TotalVariation

__all__ = ["REGULARIZER_METHODS", "Regularizer", "L1Norm", "WaveletL1", "Tikhonov",
           "TotalVariation", "LearnedDenoiser", "PnP", "soft_threshold"]
