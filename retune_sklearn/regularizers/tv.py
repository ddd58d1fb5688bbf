"""Total variation: :class:`TotalVariation` (prox by an inner dual solver)."""

import math

import torch
from sklearn.utils._param_validation import StrOptions

from .._boundary import boundary_constraint
from .._params import positive_int
from ._base import (Regularizer, _difference_axes, _gradient, _gradient_adjoint, group_weights,
                    safe_norm)


class TotalVariation(Regularizer):
    """Total variation ``Σ_g λ_g TV_g(x)`` with periodic or Neumann boundary.

    Parameters
    ----------
    weights : {"scalar", "direction"}, default="scalar"
        One weight, or one per axis (horizontal/vertical; anisotropic only).
    isotropic : bool, default=True
        Isotropic TV ``λ Σ_p ‖(∇x)_p‖₂`` or anisotropic ``Σ_axis λ_axis ‖∇_axis x‖₁``.
    n_inner : int, default=20
        Iterations of the inner prox solver.
    boundary : {"periodic", "reflect"}, default="periodic"
        Finite differences that wrap around, or Neumann ones (``"reflect"``:
        the difference across the image border is 0, as in
        :func:`skimage.restoration.denoise_tv_chambolle`), which do not
        penalize the jump between opposite edges of a photo.

    Notes
    -----
    The prox has no closed form. It is computed by ``n_inner`` steps of
    accelerated projected gradient on the dual (Beck & Teboulle's FGP, step
    ``1/‖D‖²``), started
    from zero at every call, so one forward–backward step is a fixed,
    differentiable map of its input. The inner solve is inexact: the map is
    then only approximately firmly non-expansive, and contraction of the
    outer iteration comes from the data term alone (strongly convex
    ``½‖Ax − y‖²``, e.g. denoising, contracts with factor ``|1 − τμ|``).
    Increase ``n_inner`` for a more exact prox.
    """

    _parameter_constraints = {
        "weights": [StrOptions({"scalar", "direction"})],
        "isotropic": ["boolean"],
        "n_inner": [positive_int()],
        "boundary": boundary_constraint(),
    }

    def __init__(self, weights="scalar", isotropic=True, n_inner=20, boundary="periodic"):
        self.weights = weights
        self.isotropic = isotropic
        self.n_inner = n_inner
        self.boundary = boundary

    def _check_signal_shape(self, signal_shape):
        if self.weights == "direction" and (self.isotropic or len(signal_shape) == 1):
            raise ValueError("TotalVariation(weights='direction') needs isotropic=False "
                             "and 2-D images.")

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["horizontal", "vertical"] if self.weights == "direction" else ["tv"]

    def _radii(self, thresholds, q):
        """Per-sample, per-axis bound of the dual variable ``q`` (axis 1), broadcast to ``q``."""
        radii = group_weights(thresholds, len(q))
        if self.weights != "direction":
            radii = radii[:, :1].expand(-1, q.shape[1])
        return radii.reshape(radii.shape + (1,) * (q.dim() - 2))

    def _project(self, q, radii):
        if not self.isotropic:
            return torch.maximum(torch.minimum(q, radii), -radii)
        norm = safe_norm(q, dim=1, keepdim=True)
        return q * (radii / torch.maximum(norm, radii))

    def prox(self, u, thresholds, network=None):
        axes, boundary = _difference_axes(u), self.boundary
        step = 1.0 / (4 * len(axes))  # 1 / ‖D‖², ‖D‖² ≤ 4 per axis
        q = torch.zeros((u.shape[0], len(axes), *u.shape[1:]), dtype=u.dtype, device=u.device)
        radii = self._radii(thresholds, q)
        extrapolated, t = q, 1.0
        for _ in range(self.n_inner):  # FISTA on the dual (Beck & Teboulle's FGP)
            q_next = self._project(
                extrapolated + step * _gradient(
                    u - _gradient_adjoint(extrapolated, axes, boundary), axes, boundary),
                radii)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            extrapolated = q_next + ((t - 1) / t_next) * (q_next - q)
            q, t = q_next, t_next
        return u - _gradient_adjoint(q, axes, boundary)

    def penalty(self, u, weights):
        axes = _difference_axes(u)
        grad = _gradient(u, axes, self.boundary)
        if self.isotropic:
            weight = group_weights(weights, len(u))[:, 0]
            return weight * safe_norm(grad, dim=1).flatten(1).sum(dim=1)
        return (self._radii(weights, grad) * grad.abs()).flatten(1).sum(dim=1)
