"""The regularizer contract: :class:`Regularizer`, and the helpers regularizers share."""

import torch

from .._params import ParameterObject, spatial_ndim


def _norm(x, dim, keepdim=False):
    """Euclidean norm along ``dim`` whose derivative is 0, not NaN, at 0.

    sqrt'(0) is infinite: zero vectors (flat image regions, all-zero colour
    coefficients) would give NaN hypergradients. Clamping the squared norm
    at the smallest normal number zeroes the derivative there and changes
    no value that matters (``torch.linalg.vector_norm`` does the same but
    its backward is about 4× slower on CPU).
    """
    return x.pow(2).sum(dim=dim, keepdim=keepdim).clamp_min(torch.finfo(x.dtype).tiny).sqrt()


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

    def prox(self, u, thresholds, network=None):
        raise NotImplementedError

    def penalty(self, u, weights):
        raise NotImplementedError

    def init_parameters(self, signal_shape, generator):
        """Initial learnable tensors besides the weights (none by default)."""
        return {}



def _difference_axes(x):
    """Axes of the finite differences of a batch ``x`` of signals."""
    return tuple(range(-spatial_ndim(x.shape[1:]), 0))


def _gradient(x, axes):
    """Forward differences with periodic boundary, stacked on a new axis 1."""
    return torch.stack([torch.roll(x, -1, axis) - x for axis in axes], dim=1)


def _gradient_adjoint(q, axes):
    """Adjoint of :func:`_gradient` (minus a periodic divergence)."""
    return sum(torch.roll(q[:, i], 1, axis) - q[:, i] for i, axis in enumerate(axes))
