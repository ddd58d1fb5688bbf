"""Quadratic regularization: :class:`Tikhonov`."""

from numbers import Integral

import torch

from .._boundary import boundary_constraint
from .._params import StrictInterval
from ._base import Regularizer, _difference_axes, _gradient, group_weights, scalar_weight


class Tikhonov(Regularizer):
    """Quadratic regularizer ``λ/2 ‖D x‖²`` with one learnable weight.

    Parameters
    ----------
    order : {0, 1}, default=0
        0: ``D = I`` (ridge on the signal); 1: ``D`` = forward differences
        along the signal's axes (smoothness).
    boundary : {"periodic", "reflect"}, default="reflect"
        Boundary of the differences of ``order=1`` (ignored by ``order=0``):
        wrapping around, or Neumann (``"reflect"``: no difference across the
        border, so the jump between opposite edges of a photo is not
        penalized; the default, as for :class:`TotalVariation`).

    Notes
    -----
    Smooth and strongly convex for ``order=0`` (or for ``order=1`` when ``A``
    keeps constants), so forward–backward contracts and the minimizer has the
    closed form ``(AᵀA + λ DᵀD)⁻¹ Aᵀ y``. The prox is exact: a division in
    the Fourier domain, where periodic ``DᵀD`` is diagonal, or in the DCT-II
    domain, where Neumann ``DᵀD`` is (eigenvalues ``2 − 2 cos(πk/N)`` per
    axis; the DCT is applied as dense orthonormal matrices).
    """

    _parameter_constraints = {"order": [StrictInterval(Integral, 0, 1, closed="both")],
                              "boundary": boundary_constraint()}

    def __init__(self, order=0, boundary="reflect"):
        self.order = order
        self.boundary = boundary

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["tikhonov"]

    def _laplacian_symbol(self, x):
        """Eigenvalues of periodic ``DᵀD`` on the rFFT grid of ``x``."""
        axes = _difference_axes(x)
        shape = tuple(x.shape[a] for a in axes)

        def build():
            symbol = 0
            for i, n in enumerate(shape):
                last = i == len(shape) - 1  # rfftn halves the last axis only
                freq = (torch.fft.rfftfreq if last else torch.fft.fftfreq)(n, dtype=torch.float64)
                eig = 2 - 2 * torch.cos(2 * torch.pi * freq)
                symbol = symbol + eig.reshape((-1,) + (1,) * (len(shape) - 1 - i))
            return symbol
        return self._cached(("symbol", shape), build).to(device=x.device, dtype=x.dtype), axes

    def _dct(self, x):
        """Orthonormal DCT-II matrices of the axes and the eigenvalues of Neumann ``DᵀD``."""
        shape = tuple(x.shape[a] for a in _difference_axes(x))

        def build():
            matrices = [_dct_matrix(n) for n in shape]
            symbol = 0
            for i, n in enumerate(shape):
                eig = 2 - 2 * torch.cos(torch.pi * torch.arange(n, dtype=torch.float64) / n)
                symbol = symbol + eig.reshape((-1,) + (1,) * (len(shape) - 1 - i))
            return matrices, symbol
        matrices, symbol = self._cached(("dct", shape), build)
        return ([m.to(device=x.device, dtype=x.dtype) for m in matrices],
                symbol.to(device=x.device, dtype=x.dtype))

    def _neumann_prox(self, u, threshold):
        matrices, symbol = self._dct(u)
        if len(matrices) == 1:
            (c,) = matrices
            return ((u @ c.T) / (1 + threshold * symbol)) @ c
        rows, cols = matrices
        spectrum = (rows @ u @ cols.T) / (1 + threshold * symbol)
        return rows.T @ spectrum @ cols

    def prox(self, u, thresholds, network=None):
        threshold = scalar_weight(thresholds, u)
        if self.order == 0:
            return u / (1 + threshold)
        if self.boundary == "reflect":
            return self._neumann_prox(u, threshold)
        symbol, axes = self._laplacian_symbol(u)
        spectrum = torch.fft.rfftn(u, dim=axes) / (1 + threshold * symbol)
        return torch.fft.irfftn(spectrum, s=tuple(u.shape[a] for a in axes), dim=axes)

    def penalty(self, u, weights):
        weight = group_weights(weights, len(u))[:, 0]
        if self.order == 0:
            return 0.5 * weight * u.flatten(1).pow(2).sum(dim=1)
        axes = _difference_axes(u)
        return 0.5 * weight * _gradient(u, axes, self.boundary).flatten(1).pow(2).sum(dim=1)


def _dct_matrix(n):
    """Orthonormal DCT-II matrix (``scipy.fft.dct(norm="ortho")``): rows are the frequencies."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    matrix = torch.cos(torch.pi * k * (2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n))
    matrix = matrix * (2 / n) ** 0.5
    matrix[0] /= 2 ** 0.5
    return matrix
