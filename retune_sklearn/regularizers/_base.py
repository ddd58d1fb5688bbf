"""The regularizer contract: :class:`Regularizer`, and the helpers regularizers share."""

import functools
import operator

import torch

from .._params import ParameterObject, spatial_ndim

#: The methods the estimator calls on a regularizer (checked at ``fit``), besides
#: ``get_params`` for ``clone``. :class:`Regularizer` provides all but
#: ``weight_names`` and ``prox`` (and ``penalty``, used to monitor the energy).
REGULARIZER_METHODS = ("check_signal_shape", "weight_names", "analysis", "synthesis", "prox",
                       "penalty", "init_parameters", "get_params")


def safe_norm(x, dim, keepdim=False):
    """Euclidean norm along ``dim`` whose derivative is 0, not NaN, at 0.

    sqrt'(0) is infinite: zero vectors (flat image regions, all-zero colour
    coefficients) would give NaN hypergradients. Clamping the squared norm
    at the smallest normal number zeroes the derivative there and changes
    no value that matters (``torch.linalg.vector_norm`` does the same but
    its backward is about 4× slower on CPU).
    """
    return x.pow(2).sum(dim=dim, keepdim=keepdim).clamp_min(torch.finfo(x.dtype).tiny).sqrt()


def soft_threshold(u, threshold):
    """Prox of ``threshold * |.|`` (elementwise, ``threshold >= 0``), differentiable in both.

    ``u − clamp(u, −t, t)`` equals ``sign(u)·max(|u| − t, 0)`` in two
    operations instead of four (a quarter of the cost of a wavelet step).
    """
    return u - torch.clamp(u, -threshold, threshold)


def group_weights(weights, n_samples):
    """Weights (or thresholds) of the ``G`` groups for each of ``n_samples`` samples.

    Parameters
    ----------
    weights : torch.Tensor of shape (G,) or (n_samples, G)
        One value per group, shared by the batch or per sample.
    n_samples : int
        Batch size.

    Returns
    -------
    torch.Tensor of shape (n_samples, G)
        ``weights`` itself, or for ``(G,)`` an expanded view (no copy).
    """
    if weights.dim() == 1:
        return weights.expand(n_samples, -1)
    if weights.dim() == 2 and weights.shape[0] == n_samples:
        return weights
    raise ValueError(f"Regularizer weights (thresholds) must have shape (G,) or (n_samples, "
                     f"G) with n_samples = {n_samples}; got shape {tuple(weights.shape)}.")


def batch_view(values, ndim):
    """``values`` of shape ``(n, *tail)`` viewed as ``(n, 1, ..., 1, *tail)`` of rank ``ndim``,
    to broadcast against a batch of rank ``ndim`` whose trailing axes match ``tail``."""
    return values.reshape(values.shape[:1] + (1,) * (ndim - values.dim()) + values.shape[1:])


def scalar_weight(weights, u):
    """The weight of a one-weight regularizer, per sample, broadcastable against ``u``."""
    if weights.dim() == 1:  # shared by the batch: a view, no per-sample copy (hot path)
        return weights[:1].reshape((1,) * u.dim())
    return batch_view(group_weights(weights, len(u))[:, 0], u.dim())


class Regularizer(ParameterObject):
    """Base class of regularizers (see :mod:`retune_sklearn.regularizers` for the interface).

    Subclasses implement :meth:`weight_names` and :meth:`prox` (and
    :meth:`penalty`), declare the constraints of their parameters in
    ``_parameter_constraints`` (validated by :meth:`check_signal_shape`), and
    may override ``_check_signal_shape`` (checks between parameters and against
    the signal shape), :meth:`analysis`/:meth:`synthesis` (default: identity)
    and :meth:`init_parameters`. ``prox`` and ``penalty`` take weights of shape
    ``(G,)`` or ``(n_samples, G)``: read them with :func:`group_weights`.
    """

    #: Whether the prox is an elementwise soft threshold, whose derivative is
    #: 0/1 (zero output = inactive): the implicit adjoint may then use CG on
    #: the active set (``implicit_solver="cg"``).
    soft_threshold_prox = False

    def weight_names(self, signal_shape):
        """One name per learnable weight, for signals of shape ``signal_shape``."""
        raise NotImplementedError

    def analysis(self, x):
        """Coefficients ``W x`` of a batch of signals (the variable of the solver)."""
        return x

    def synthesis(self, u):
        """Signals ``W* u`` of a batch of coefficients."""
        return u

    def prox(self, u, thresholds, network=None):
        """Prox of ``Σ_g thresholds[g] R_g`` at ``u`` (thresholds ``(G,)`` or ``(n, G)``)."""
        raise NotImplementedError

    def penalty(self, u, weights):
        """``Σ_g weights[g] R_g(u)`` per sample (weights ``(G,)`` or ``(n, G)``)."""
        raise NotImplementedError

    def prox_from(self, u, thresholds, network=None, inner=None, *, warm=False):
        """The prox started from the state ``inner`` of its inner solver; ``(prox, state)``.

        For a prox computed by an iterative solve (TotalVariation's dual),
        the restarted blocks carry the inner solver's state from one step to
        the next (``warm=True``: a few inner iterations per step), and the
        differentiated steps start a full inner solve from the state reached.
        ``inner=None`` is a cold start. A closed-form prox has no state: the
        default returns ``(prox(u, thresholds, network), None)``.
        """
        return self.prox(u, thresholds, network), None

    def init_parameters(self, signal_shape, generator):
        """Initial learnable tensors besides the weights (none by default)."""
        return {}


def _difference_axes(x):
    """Axes of the finite differences of a batch ``x`` of signals."""
    return tuple(range(-spatial_ndim(x.shape[1:]), 0))


def _gradient(x, axes, boundary="periodic"):
    """Forward differences, stacked on a new axis 1.

    ``boundary="periodic"`` wraps around; ``"reflect"`` (Neumann) sets the
    last difference along each axis to 0, as the symmetric extension
    ``x[N] = x[N-1]`` does (Chambolle's discretization, skimage's
    ``denoise_tv_chambolle``). Both have ``‖D‖² ≤ 4`` per axis.

    Written for few tensor operations (the TV prox calls this and its
    adjoint 20 times per step on small images, where each op's dispatch
    costs about as much as its arithmetic).
    """
    if boundary != "reflect":
        # stack then one in-place subtraction, not one per axis.
        return torch.stack([x.roll(-1, axis) for axis in axes], dim=1).sub_(x.unsqueeze(1))
    return torch.stack([torch.diff(x, dim=axis, append=x.narrow(axis, -1, 1)) for axis in axes],
                       dim=1)


def _gradient_adjoint(q, axes, boundary="periodic"):
    """Adjoint of :func:`_gradient` (minus the matching divergence)."""
    if boundary != "reflect":
        # (Dᵀq)_j = Σ_axis q_{j-1} − q_j, the q_j summed over the axes in one op.
        shifted = [q[:, i].roll(1, axis) for i, axis in enumerate(axes)]
        return functools.reduce(operator.add, shifted) - q.sum(dim=1)
    terms = []
    for i, axis in enumerate(axes):
        # (Dᵀq)_j = q_{j-1} − q_j with q_{-1} = q_{N-1} = 0 (the last difference is
        # always zero, and ignored): zero-pad q_0 … q_{N-2} on both sides.
        size = q.shape[axis]
        padded = _pad_axis(q[:, i].narrow(axis, 0, size - 1), axis, 1, 1)
        terms.append(padded.narrow(axis, 0, size) - padded.narrow(axis, 1, size))
    return functools.reduce(operator.add, terms)


def _pad_axis(x, axis, before, after):
    """Zero-pad ``x`` along one (negative) ``axis``."""
    return torch.nn.functional.pad(x, (0, 0) * (-axis - 1) + (before, after))
