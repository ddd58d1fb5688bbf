"""Boundary conditions shared by the convolutions, finite differences and wavelets.

``"periodic"``: the signal wraps around (circular convolution, FFT-diagonal).
``"reflect"``: half-sample symmetric extension, ``x[-1-i] = x[i]`` and
``x[N+i] = x[N-1-i]`` (the edge pixel repeated: scipy.ndimage's ``"reflect"``,
numpy's and pywt's ``"symmetric"``). It is the Neumann condition of the finite
differences (the difference across the border is 0) and, for kernels symmetric
along each axis, the convolution is diagonalized by the DCT-II.

The maps here are linear and come with their exact adjoints (index gathers
and their scatter-adds), so operators built from them pass the dot test.
"""

import math

import torch
from sklearn.utils._param_validation import StrOptions

BOUNDARIES = ("periodic", "reflect")


def boundary_constraint():
    """The ``_parameter_constraints`` entry of a ``boundary`` parameter."""
    return [StrOptions(set(BOUNDARIES))]


def reflect_index(size, before, after, device="cpu"):
    """Indices into an axis of length ``size`` of its symmetric padding by ``(before, after)``.

    Both pads must be at most ``size`` (one reflection).
    """
    positions = torch.arange(-before, size + after, device=device)
    positions = torch.where(positions < 0, -positions - 1, positions)
    return torch.where(positions >= size, 2 * size - 1 - positions, positions)


def pad_reflect(x, pads):
    """Symmetric padding of the last ``len(pads)`` axes of ``x``, ``pads[i] = (before, after)``."""
    for axis, (before, after) in zip(range(-len(pads), 0), pads):
        x = x.index_select(axis, reflect_index(x.shape[axis], before, after, x.device))
    return x


def pad_reflect_adjoint(y, pads):
    """Adjoint of :func:`pad_reflect`: the margins are added back onto the pixels they copy."""
    for axis, (before, after) in zip(range(-len(pads), 0), pads):
        size = y.shape[axis] - before - after
        shape = list(y.shape)
        shape[axis] = size
        index = reflect_index(size, before, after, y.device)
        y = y.new_zeros(shape).index_add(axis % y.dim(), index, y)
    return y


def mirror_extend(x, ndim):
    """Even symmetric extension ``N -> 2N`` of the last ``ndim`` axes, scaled by ``1/√2`` each.

    The scaling makes it an isometry (``‖E x‖ = ‖x‖``): ``mirror_fold`` is both
    its adjoint and its left inverse.
    """
    for axis in range(-ndim, 0):
        x = torch.cat([x, x.flip(axis)], dim=axis)
    return x * (1 / math.sqrt(2) ** ndim)


def mirror_fold(y, ndim):
    """Adjoint (and left inverse) of :func:`mirror_extend`: fold the mirrored halves back."""
    for axis in range(-ndim, 0):
        first, second = y.chunk(2, dim=axis)
        y = first + second.flip(axis)
    return y * (1 / math.sqrt(2) ** ndim)
