"""Total variation: :class:`TotalVariation` (prox by an inner dual solver)."""

import math

import torch
from sklearn.utils._param_validation import StrOptions

from .._boundary import boundary_constraint
from .._params import positive_int
from ._base import (Regularizer, _difference_axes, _gradient, _gradient_adjoint, group_weights,
                    safe_norm)


#: ``n_inner="auto"`` (:meth:`TotalVariation.resolve_auto`): dual iterations per prox
#: when one step is the whole solve, and in iterative solves.
AUTO_INNER_ONE_STEP = 20
AUTO_INNER_ITERATIVE = 5


class TotalVariation(Regularizer):
    """Total variation ``Σ_g λ_g TV_g(x)`` with periodic or Neumann boundary.

    Parameters
    ----------
    weights : {"scalar", "direction"}, default="scalar"
        One weight, or one per axis (horizontal/vertical; anisotropic only).
    isotropic : bool, default=True
        Isotropic TV ``λ Σ_p ‖(∇x)_p‖₂`` or anisotropic ``Σ_axis λ_axis ‖∇_axis x‖₁``.
    n_inner : int or "auto", default="auto"
        Dual iterations of each prox (:meth:`prox`: from zero; with a warm
        dual, the residual checks and the implicit mode start them from the
        dual the restarted blocks reached). ``"auto"``: fitted in a model
        (:meth:`resolve_auto`), ``AUTO_INNER_ONE_STEP = 20`` when one
        forward–backward step is the whole solve (``W Aᵀ A W* = I``:
        denoising), where the prox *is* the reconstruction, and
        ``AUTO_INNER_ITERATIVE = 5`` otherwise (deblurring, inpainting, ...),
        where the prox is re-run at every step; a prox called on its own
        uses 20.
    n_inner_warm : int or None, default=None
        Opt-in warm dual: dual iterations per step, the dual carried from
        one step to the next (:meth:`prox_from` with ``warm=True``) through
        the restarted blocks and the differentiated last block, and from one
        epoch to the next with ``reuse_iterates`` (the iterate bank keeps
        each sample's dual). None: every step runs ``n_inner`` iterations
        from zero (a fixed map).
    boundary : {"periodic", "reflect"}, default="reflect"
        Finite differences that wrap around, or Neumann ones (``"reflect"``:
        the difference across the image border is 0, as in
        :func:`skimage.restoration.denoise_tv_chambolle`), which do not
        penalize the jump between opposite edges of a photo. Neumann is the
        default: photos are not periodic, and it scored +0.33 to +1.73 dB
        over periodic on the four problems of ``benchmarks/boundary.md`` at
        0.97–1.31× the CPU time.

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

    Why 5 inner iterations in iterative solves: on the deblurring and
    inpainting problems of ``benchmarks/bench_problems.py``, 4-fold
    cross-validation of the default model ranks 5 above 3 and 2 on both,
    and on a single validation split 5 scores +0.12 / +0.03 dB against 20
    at 0.26× / 0.22× the fit's CPU time, with a differentiated K-block that
    is no longer expansive; on denoising (one step) 5 lost 0.38 dB there
    (``benchmarks/defaults/tv_inner.md``). The learned model is then the
    fixed point of the 5-step inexact prox, not exact TV: its weight is
    learned for that map.

    Warm dual (``n_inner_warm=k``): in the restarted blocks each
    forward–backward step runs only ``k`` dual iterations, starting from the
    previous step's dual. With ``k = 1`` and plain iterations the joint
    (primal, dual) iteration is the primal–dual fixed-point algorithm PDFP²O
    of Chen, Huang & Zhang (2013) (Loris–Verhoeven), which converges to the
    *exact* minimizer (step ``τ < 2/L``, dual step ``1/‖D‖²``): at its fixed
    point the dual solves the prox's dual problem, so the primal is the
    exact prox, whereas ``n_inner`` steps from zero have a fixed point about
    1 % away from it on the deblurring benchmark. The differentiated last
    block continues the joint iteration from the state reached (JFB through
    ``K`` steps of the operator whose fixed point was found, the dual
    differentiated too); residual checks and the implicit mode use the fixed
    map running ``n_inner`` iterations from the dual reached, which has the
    same fixed point. A step is ~``n_inner / k``
    times cheaper, but the dual converges slowly when the weight is large:
    measured 1.3× / 2.1× less CPU for whole solves to a residual of 1e-4 on
    the deblurring / inpainting benchmarks (λ = 0.004, 0.01), 5–25× *more* on
    strongly regularized denoising (λ = 0.1; benchmarks/equilibrium_tv.md).
    Hence opt-in.
    """

    _parameter_constraints = {
        "weights": [StrOptions({"scalar", "direction"})],
        "isotropic": ["boolean"],
        "n_inner": [positive_int(), StrOptions({"auto"})],
        "n_inner_warm": [positive_int(), None],
        "boundary": boundary_constraint(),
    }

    def __init__(self, weights="scalar", isotropic=True, n_inner="auto", n_inner_warm=None,
                 boundary="reflect"):
        self.weights = weights
        self.isotropic = isotropic
        self.n_inner = n_inner
        self.n_inner_warm = n_inner_warm
        self.boundary = boundary

    def _check_signal_shape(self, signal_shape):
        if self.weights == "direction" and (self.isotropic or len(signal_shape) == 1):
            raise ValueError("TotalVariation(weights='direction') needs isotropic=False "
                             "and 2-D images.")

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["horizontal", "vertical"] if self.weights == "direction" else ["tv"]

    def resolve_auto(self, *, one_step):
        """Set ``n_inner="auto"`` to its value for a model (the estimator calls this on
        its fitted copy, ``regularizer_``).

        Parameters
        ----------
        one_step : bool
            Whether one forward–backward step is the whole solve
            (``W Aᵀ A W* = I``): then ``AUTO_INNER_ONE_STEP``, else
            ``AUTO_INNER_ITERATIVE``.
        """
        if self.n_inner == "auto":
            self.n_inner = AUTO_INNER_ONE_STEP if one_step else AUTO_INNER_ITERATIVE

    def _inner_iterations(self, warm):
        if warm:
            return self.n_inner_warm
        return AUTO_INNER_ONE_STEP if self.n_inner == "auto" else self.n_inner

    def _radii(self, thresholds, q):
        """Per-sample bound of the dual variable ``q``, broadcastable to ``q``: one per
        axis (axis 1) for ``weights="direction"``, else shared by the axes."""
        radii = group_weights(thresholds, len(q))
        if self.weights != "direction":
            radii = radii[:, :1]  # not expanded: the projection's divisions stay (n, 1, ...)
        return radii.reshape(radii.shape + (1,) * (q.dim() - 2))

    def _project(self, q, radii):
        """Each pixel's dual vector onto its ball (box if anisotropic): ``q·min(1, r/‖q‖)``.

        Written ``q · r · rsqrt(max(‖q‖², r²))``: no square root of 0 (no NaN
        derivative at ``q = 0``, the floor keeps ``r = 0`` finite), and fewer passes
        over ``q`` than a norm, a maximum and a division (the TV step times are in
        ``benchmarks/equilibrium_tv_step.md``).
        """
        if not self.isotropic:
            return torch.maximum(torch.minimum(q, radii), -radii)
        squared_norm = (q * q).sum(dim=1, keepdim=True)
        floor = (radii * radii).clamp_min(torch.finfo(q.dtype).tiny)
        return q * (radii * torch.maximum(squared_norm, floor).rsqrt())

    def prox(self, u, thresholds, network=None):
        return self.prox_from(u, thresholds, network)[0]

    def prox_from(self, u, thresholds, network=None, inner=None, *, warm=False):
        """Prox with the dual started at ``inner`` (None: zero); returns ``(prox, dual)``.

        ``warm=False``: ``n_inner`` dual iterations; ``warm=True`` (a step of
        the restarted blocks): ``n_inner_warm``, or with ``n_inner_warm=None``
        the cold prox and no dual.
        """
        if warm and self.n_inner_warm is None:
            return self.prox(u, thresholds, network), None
        axes = _difference_axes(u)
        q = inner
        if q is None:
            q = torch.zeros((u.shape[0], len(axes), *u.shape[1:]), dtype=u.dtype,
                            device=u.device)
        q = self._dual_solve(u, q, self._radii(thresholds, q), axes,
                             self._inner_iterations(warm))
        return u - _gradient_adjoint(q, axes, self.boundary), q

    def _dual_solve(self, u, q, radii, axes, n_iter):
        """``n_iter`` steps of FISTA on the dual from ``q`` (Beck & Teboulle's FGP)."""
        step = 1.0 / (4 * len(axes))  # 1 / ‖D‖², ‖D‖² ≤ 4 per axis
        extrapolated, t = q, 1.0
        for k in range(n_iter):
            q_next = self._project(
                torch.add(extrapolated, _gradient(
                    u - _gradient_adjoint(extrapolated, axes, self.boundary), axes,
                    self.boundary), alpha=step), radii)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            # q_next + β(q_next − q) as one lerp; the first β is (1 − 1)/t = 0, the last unused.
            extrapolated = q_next if k in (0, n_iter - 1) else torch.lerp(
                q, q_next, 1 + (t - 1) / t_next)
            q, t = q_next, t_next
        return q

    def penalty(self, u, weights):
        axes = _difference_axes(u)
        grad = _gradient(u, axes, self.boundary)
        if self.isotropic:
            weight = group_weights(weights, len(u))[:, 0]
            return weight * safe_norm(grad, dim=1).flatten(1).sum(dim=1)
        return (self._radii(weights, grad) * grad.abs()).flatten(1).sum(dim=1)
