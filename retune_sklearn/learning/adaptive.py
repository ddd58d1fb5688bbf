"""Per-sample adaptive weights: ``λ_g(y) = exp(θ_g) · (s(y) / s_ref)^{β_g}``.

A fixed set of weights serves every image alike; the baselines a user would
pick instead (BayesShrink, a TV weight tuned per image) re-estimate their
level from each measurement. Here each weight is scaled by a power of a
statistic ``s(y)`` of the *measurement* (never of the clean target, which
``transform`` does not have):

* ``"noise"``: the noise level ``σ̂ = median(|HH₁|) / 0.6745`` of the finest
  diagonal Haar details (Donoho–Johnstone's robust estimator; the finest
  details of 1-D signals);
* ``"detail"``: the root-mean-square of all finest Haar details (noise plus
  texture: the energy a regularizer removes).

``s_ref`` is the median of ``s`` over the training measurements (fixed at
``fit``), so ``exp(θ_g)`` is the weight of a typical measurement and ``β``
(the exponents, learned by the same hypergradients as ``θ``) how strongly
the weights follow ``s``. The weights depend on the measurement only, so
every lower-level problem stays convex. The ratio ``s / s_ref`` is clamped to
``[2^-10, 2^10]`` so that flat measurements keep finite weights.

For operators other than the identity, the statistic is computed on the
back-projection ``Aᵀ(M ⊙ y)`` (``M`` the mask of observed entries, if
any): a signal-shaped image whose finest details still scale with the
noise and the texture. Missing entries are zeros there, which adds the
mask's own details to ``s``; with one mask for all samples that offset is
shared, and the learned ``β`` and ``θ`` absorb it.

A new statistic is one function ``(signals, ndim) -> (n,)`` and one line in
:data:`STATISTICS`.
"""

import math
from dataclasses import dataclass

import torch

from .._params import spatial_ndim

__all__ = ["STATISTICS", "WeightAdaptation", "finest_details", "noise_level",
           "detail_energy", "adapted_weights", "check_statistic_defined"]

#: median(|z|) of a standard normal z: the MAD of Gaussian noise is 0.6745 σ.
MAD_TO_SIGMA = 0.6744897501960817

#: Bound on ``|log(s / s_ref)|``: a flat measurement (``s = 0``) or an outlier
#: gets the weights of a ratio of ``2^±10``, finite whatever ``β`` (unbounded,
#: ``s = 0`` with ``β < 0`` gives infinite weights and NaN reconstructions).
MAX_LOG_RATIO = 10 * math.log(2)


def median(x, dim=None):
    """The median as numpy defines it (the mean of the two middle values of an even
    count; ``torch.median`` returns the lower one)."""
    return torch.quantile(x, 0.5) if dim is None else torch.quantile(x, 0.5, dim=dim)


def finest_details(x, ndim):
    """Finest-level orthonormal Haar detail coefficients of a batch.

    Parameters
    ----------
    x : torch.Tensor of shape (n, ..., L) or (n, ..., H, W)
        Signals; the last ``ndim`` axes are the spatial ones (odd sides lose
        their last entry).
    ndim : {1, 2}
        Spatial dimensions.

    Returns
    -------
    list of torch.Tensor
        ``[d]`` for 1-D signals; ``[horizontal, vertical, diagonal]`` for
        images (PyWavelets' ``cH, cV, cD`` of ``dwt2(x, "haar")``, up to sign).
    """
    for axis in range(-ndim, 0):
        x = x.narrow(axis, 0, 2 * (x.shape[axis] // 2))
    if ndim == 1:
        return [(x[..., 0::2] - x[..., 1::2]) / math.sqrt(2)]
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return [(a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2]


def noise_level(x, ndim):
    """``median(|finest diagonal details|) / 0.6745`` per sample (a robust σ̂)."""
    diagonal = finest_details(x, ndim)[-1].flatten(1)
    return median(diagonal.abs(), dim=1) / MAD_TO_SIGMA


def detail_energy(x, ndim):
    """Root-mean-square of all finest Haar details per sample."""
    details = torch.cat([d.flatten(1) for d in finest_details(x, ndim)], dim=1)
    return details.pow(2).mean(dim=1).sqrt()


#: Statistics by the name the estimator's ``adaptive_weights`` parameter takes.
STATISTICS = {"noise": noise_level, "detail": detail_energy}


def measurement_statistic(name, measurements, operator, signal_shape):
    """``s(y)`` per sample of a batch of :class:`~retune_sklearn.learning.data.Measurements`
    (no autograd), computed on the back-projection ``Aᵀ(M ⊙ y)``; floored at
    the smallest normal number so that its log is finite."""
    with torch.no_grad():
        values = measurements.values
        if measurements.mask is not None:
            values = values * measurements.mask
        image = operator.adjoint(values)
        statistic = STATISTICS[name](image, spatial_ndim(signal_shape))
    return statistic.clamp_min(torch.finfo(statistic.dtype).tiny)


@dataclass
class WeightAdaptation:
    """The statistic of an adaptive model and its reference ``s_ref`` (fixed at ``fit``)."""

    statistic: str
    reference: float

    def log_ratio(self, measurements, operator, signal_shape):
        """``log(s(y) / s_ref)`` per sample, shape ``(n,)``, within ``±MAX_LOG_RATIO``."""
        statistic = measurement_statistic(self.statistic, measurements, operator, signal_shape)
        return (statistic.log() - math.log(self.reference)).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)


def check_statistic_defined(name, signal_shape):
    """Raise a ValueError when the signals are too small to have finest Haar
    details (a side of 1 would make ``s`` the mean of nothing, NaN)."""
    sides = tuple(signal_shape)[-spatial_ndim(signal_shape):]
    if min(sides) < 2:
        raise ValueError(
            f"adaptive_weights={name!r} needs signals of at least 2 entries along each "
            f"spatial axis (its statistic is computed on their finest Haar details); got "
            f"signals of shape {tuple(signal_shape)}. Pass adaptive_weights=None for one set "
            f"of weights for every sample.")


def reference_statistic(name, measurements, operator, signal_shape, batch_size):
    """``s_ref``: the median of the statistic over the (training) measurements,
    computed in chunks of ``batch_size``."""
    check_statistic_defined(name, signal_shape)
    values = torch.cat([measurement_statistic(name, measurements[start:start + batch_size],
                                              operator, signal_shape)
                        for start in range(0, len(measurements), batch_size)])
    return float(median(values))


def adapted_weights(log_weights, exponents, log_ratio):
    """``exp(θ_g + β_g log(s_i / s_ref))``: the ``(n, G)`` weights of a batch.

    ``exponents`` has shape ``(G,)`` (one per weight) or ``(1,)`` (shared);
    the result is a fresh tensor, differentiable in ``θ`` and ``β``.
    """
    return (log_weights + exponents * log_ratio[:, None]).exp()
