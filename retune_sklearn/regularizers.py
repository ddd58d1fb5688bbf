"""Regularizers ``Σ_g λ_g R_g`` with one learnable weight per group ``g``.

A regularizer defines the variable ``u`` that the forward–backward solver
iterates on (synthesis form: the signal is ``x = synthesis(u)``) and the
proximal map of its weighted penalty. The weights themselves are owned by
the estimator (learned in the log domain); the regularizer only says how
many there are and what they are called, for a given signal shape.

Interface used by :mod:`retune_sklearn.solvers`:

* ``check_signal_shape(signal_shape)``: raise ``ValueError`` if unsupported;
* ``weight_names(signal_shape)``: one name per learnable weight;
* ``analysis(x)`` / ``synthesis(u)``: ``W x`` and ``W* u``
  (``synthesis(analysis(x)) == x``);
* ``prox(u, thresholds)``: prox of ``Σ_g thresholds[g] R_g`` at ``u``;
* ``penalty(u, weights)``: ``Σ_g weights[g] R_g(u)`` per sample.
"""

import numbers

import torch

from ._params import ParameterObject
from .wavelets import WaveletTransform

__all__ = ["Regularizer", "WaveletL1", "soft_threshold"]


def soft_threshold(u, threshold):
    """Prox of ``threshold * |.|`` (elementwise), differentiable in both."""
    return torch.sign(u) * torch.relu(u.abs() - threshold)


class Regularizer(ParameterObject):
    """Base class of regularizers (see the module docstring for the interface)."""

    def check_signal_shape(self, signal_shape):
        """Raise ``ValueError`` if the regularizer cannot act on ``signal_shape``."""

    def weight_names(self, signal_shape):
        raise NotImplementedError

    def analysis(self, x):
        return x

    def synthesis(self, u):
        return u

    def prox(self, u, thresholds):
        raise NotImplementedError

    def penalty(self, u, weights):
        raise NotImplementedError


_WEIGHT_MODES = ("scalar", "level", "subband")


class WaveletL1(Regularizer):
    """Weighted ℓ1 norm of orthonormal wavelet coefficients.

    ``R(x) = Σ_g λ_g ‖(W x)_g‖₁`` where ``W`` is an orthonormal periodized
    discrete wavelet transform (2-D on the last two axes of images, 1-D for
    1-D signals; channels of ``(C, H, W)`` images share the weights) and the
    groups ``g`` are set by ``weights``. Its prox in the coefficient domain is
    an exact soft-thresholding.

    Parameters
    ----------
    wavelet : str, default="db4"
        Name of an orthogonal PyWavelets wavelet (haar, dbN, symN, coifN).
    levels : int, default=3
        Number of decomposition levels. The signal's sides must be divisible
        by ``2**levels``.
    weights : {"scalar", "level", "subband"}, default="subband"
        One weight for all coefficients; one for the approximation plus one
        per level; or one per subband (``3 * levels + 1`` in 2-D,
        ``levels + 1`` in 1-D).
    penalize_approximation : bool, default=True
        If False, the coarse approximation band is not penalized and gets no
        weight.
    """

    def __init__(self, wavelet="db4", levels=3, weights="subband", penalize_approximation=True):
        self.wavelet = wavelet
        self.levels = levels
        self.weights = weights
        self.penalize_approximation = penalize_approximation

    def _transform(self, ndim):
        if self.weights not in _WEIGHT_MODES:
            raise ValueError(f"WaveletL1 `weights` must be one of {_WEIGHT_MODES}; "
                             f"got {self.weights!r}.")
        if not isinstance(self.levels, numbers.Integral) or isinstance(self.levels, bool):
            raise TypeError(f"WaveletL1 `levels` must be an integer; got {self.levels!r}.")
        return self._cached(("transform", ndim),
                            lambda: WaveletTransform(self.wavelet, int(self.levels), ndim))

    @staticmethod
    def _ndim(signal_shape):
        return 1 if len(signal_shape) == 1 else 2

    def check_signal_shape(self, signal_shape):
        ndim = self._ndim(signal_shape)
        self._transform(ndim).check_shape(tuple(signal_shape[-ndim:]))

    def _groups(self, spatial_shape):
        """Map each coefficient position to a weight index (-1: unpenalized).

        Returns the index map (LongTensor of ``spatial_shape``) and the names
        of the weights.
        """
        def build():
            transform = self._transform(len(spatial_shape))
            index, subbands = transform.subband_index(spatial_shape)
            if self.weights == "subband":
                group_of, names = list(range(len(subbands))), list(subbands)
            elif self.weights == "level":
                # The approximation has level `levels + 1`: group 0, then details coarsest first.
                levels = transform.subband_levels()
                distinct = sorted(set(levels), reverse=True)
                group_of = [distinct.index(level) for level in levels]
                names = ["approximation"] + [f"level{j}" for j in distinct[1:]]
            else:
                group_of, names = [0] * len(subbands), ["all"]
            if not self.penalize_approximation:
                # The approximation is subband 0 and group 0 in every mode.
                group_of = _renumber([-1] + group_of[1:])
                if self.weights != "scalar":
                    names = names[1:]
            lookup = torch.as_tensor(group_of, dtype=torch.long)
            return lookup[index], names
        return self._cached(("groups", tuple(spatial_shape)), build)

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        ndim = self._ndim(signal_shape)
        return list(self._groups(tuple(signal_shape[-ndim:]))[1])

    def analysis(self, x):
        return self._transform(self._ndim(x.shape[1:])).forward(x)

    def synthesis(self, u):
        return self._transform(self._ndim(u.shape[1:])).inverse(u)

    def _coefficient_weights(self, u, weights):
        """Broadcast per-group ``weights`` to a map of ``u``'s spatial shape."""
        ndim = self._ndim(u.shape[1:])
        index, _ = self._groups(tuple(u.shape[-ndim:]))
        index = self._cached(("index", index.shape, str(u.device)), lambda: index.to(u.device))
        padded = torch.cat([weights, weights.new_zeros(1)])  # index -1 -> weight 0
        return padded[index]

    def prox(self, u, thresholds):
        return soft_threshold(u, self._coefficient_weights(u, thresholds))

    def penalty(self, u, weights):
        weighted = self._coefficient_weights(u, weights) * u.abs()
        return weighted.flatten(1).sum(dim=1)


def _renumber(group_of):
    """Renumber non-negative group ids to 0..G-1, keeping their order."""
    kept = sorted({g for g in group_of if g >= 0})
    return [kept.index(g) if g >= 0 else -1 for g in group_of]
