"""The forward–backward model ``φ_θ`` and its plain iteration.

The lower-level problem, in synthesis form ``x = W* u``::

    u* = argmin_u  ½‖A W* u − y‖² + Σ_g λ_g R_g(u)

is solved by forward–backward steps (one step is the operator ``φ_θ``)::

    φ_θ(u) = prox_{τ λ R}( u − τ W Aᵀ(A W* u − y) ),   τ = step_scale / L,

with ``L = ‖A W*‖²``.
"""

from dataclasses import dataclass
from typing import Optional

import torch

from ..operators import power_iteration
from ._base import FixedPointAlgorithm, warm_apply

__all__ = ["ForwardBackward", "PlainIteration", "StepMap", "StepParameters"]


@dataclass
class StepParameters:
    """What ``φ_θ`` needs besides the model: the data of a batch and θ in natural units.

    ``weights`` are the positive λ_g, of shape ``(G,)`` or ``(n_samples, G)``;
    ``network`` the regularizer's own tensors (empty for classical ones);
    ``mask`` (0/1, shaped like ``measurements``) restricts the data term to
    the observed entries; ``back_projection`` is ``Aᵀ y`` (None: computed by
    each step), so that a step applies ``AᵀA`` (:meth:`LinearOperator.normal
    <retune_sklearn.operators.LinearOperator.normal>`) instead of ``A`` then ``Aᵀ``.
    """

    measurements: torch.Tensor
    weights: torch.Tensor
    stepsize: torch.Tensor
    network: dict
    mask: Optional[torch.Tensor] = None
    back_projection: Optional[torch.Tensor] = None


class ForwardBackward:
    """The forward–backward step of one (operator, regularizer) model.

    Parameters
    ----------
    operator : LinearOperator
    regularizer : Regularizer
    """

    def __init__(self, operator, regularizer):
        self.operator = operator
        self.regularizer = regularizer
        #: ``W Aᵀ A W* = I`` (set by :meth:`check_identity_gram`): at ``τ = 1``
        #: the gradient step maps every ``u`` to ``W Aᵀ y``, so one step is exact.
        self.identity_gram = False

    def initial_point(self, measurements, mask=None, back_projection=None):
        """Starting coefficients ``W Aᵀ y``; ``back_projection`` is ``Aᵀ y`` when
        already computed (:meth:`back_projection`), saving one adjoint."""
        if back_projection is None:
            if mask is not None:
                measurements = measurements * mask
            back_projection = self.operator.adjoint(measurements)
        return self.regularizer.analysis(back_projection)

    def coefficient_shape(self, signal_shape):
        """Shape of the coefficients ``u`` of one signal."""
        probe = torch.zeros((1, *signal_shape), dtype=torch.float64)
        return tuple(self.regularizer.analysis(probe).shape[1:])

    def gram(self, u):
        """``W Aᵀ A W* u``: the data term's Hessian on the coefficients."""
        x = self.regularizer.synthesis(u)
        normal = getattr(self.operator, "normal", None)  # absent on duck-typed operators
        if normal is None:
            return self.regularizer.analysis(self.operator.adjoint(self.operator.forward(x)))
        return self.regularizer.analysis(normal(x))

    def lipschitz(self, signal_shape, *, device="cpu", dtype=torch.float64):
        """``L = ‖A W*‖²``, the Lipschitz constant of the data-term gradient."""
        return power_iteration(self.gram, self.coefficient_shape(signal_shape), device=device,
                               dtype=dtype)

    def check_identity_gram(self, signal_shape, *, device="cpu", dtype=torch.float64):
        """Whether ``W Aᵀ A W* = I`` (e.g. denoising with TV or an orthonormal
        basis), tested on two random coefficient vectors; sets :attr:`identity_gram`.

        A linear map that fixes random vectors is the identity (almost surely);
        the tolerance is a few rounding errors of ``dtype``.
        """
        generator = torch.Generator().manual_seed(0)
        u = torch.randn((2, *self.coefficient_shape(signal_shape)), generator=generator,
                        dtype=torch.float64).to(device=device, dtype=dtype)
        with torch.no_grad():
            gram = self.gram(u)
        error = float((gram - u).flatten(1).norm(dim=1).max() / u.flatten(1).norm(dim=1).min())
        self.identity_gram = error <= 100 * torch.finfo(dtype).eps
        return self.identity_gram

    def back_projection(self, measurements, mask=None):
        """``Aᵀ y`` for :attr:`StepParameters.back_projection`; None with a ``mask``
        (the masked step keeps ``Aᵀ(mask ⊙ (A x − y))``)."""
        if mask is not None or not hasattr(self.operator, "normal"):  # duck-typed operator
            return None
        return self.operator.adjoint(measurements)

    def step(self, u, measurements, weights, stepsize, network=None, mask=None,
             back_projection=None):
        """One step ``φ_θ(u)`` (see :class:`StepParameters` for the arguments)."""
        v = self._gradient_step(u, measurements, stepsize, mask, back_projection)
        return self.regularizer.prox(v, stepsize * weights, network or {})

    def step_from(self, u, params, inner=None, *, warm=False):
        """One step with the prox's inner solver started from ``inner``; ``(φ(u), state)``
        (see :meth:`Regularizer.prox_from <retune_sklearn.regularizers.Regularizer.prox_from>`)."""
        v = self._gradient_step(u, params.measurements, params.stepsize, params.mask,
                                params.back_projection)
        prox_from = getattr(self.regularizer, "prox_from", None)
        thresholds, network = params.stepsize * params.weights, params.network or {}
        if prox_from is None:  # a duck-typed regularizer without inner state
            return self.regularizer.prox(v, thresholds, network), None
        return prox_from(v, thresholds, network, inner, warm=warm)

    def _gradient_step(self, u, measurements, stepsize, mask, back_projection=None):
        """``u − τ W Aᵀ(A W* u − y)``, as ``u − τ W(AᵀA x − Aᵀy)`` when ``Aᵀy`` is
        given (one FFT pair instead of two for a periodic blur); as the mask is
        idempotent, ``(mask ⊙ A)ᵀ(mask ⊙ A x − y) = Aᵀ(mask ⊙ (A x − y))``."""
        x = self.regularizer.synthesis(u)
        if back_projection is not None and mask is None:
            gradient = self.operator.normal(x) - back_projection
        else:
            residual = self.operator.forward(x) - measurements
            if mask is not None:
                residual = residual * mask
            gradient = self.operator.adjoint(residual)
        return u - stepsize * self.regularizer.analysis(gradient)

    def step_map(self, params):
        """The map ``u -> φ_θ(u)`` for the :class:`StepParameters` ``params``."""
        return StepMap(self, params)

    def energy(self, u, measurements, weights):
        """Lower-level objective per sample (for monitoring and tests)."""
        residual = self.operator.forward(self.regularizer.synthesis(u)) - measurements
        data = 0.5 * residual.flatten(1).pow(2).sum(dim=1)
        return data + self.regularizer.penalty(u, weights)


class StepMap:
    """``u ↦ φ_θ(u)`` of one batch (callable), and its warm-started variant.

    Called, it is a fixed map: the prox's inner solver (TotalVariation's
    dual) starts from ``inner``, a state given once (None: a cold start),
    so that the differentiated steps and the residual checks see one
    function of ``u``. :meth:`warm` is the step of the restarted blocks,
    which carry the inner state from step to step (see
    :func:`~retune_sklearn.solvers._base.warm_apply`); :meth:`anchored` the
    fixed map started from the state they reached.
    """

    def __init__(self, model, params, inner=None):
        self.model, self.params, self.inner = model, params, inner

    @property
    def is_constant(self):
        """Whether ``φ(u)`` does not depend on ``u``: ``W Aᵀ A W* = I``, no mask,
        ``τ = 1`` and a cold inner solver. Then ``φ(u) = prox_{λR}(W Aᵀ y)`` is the
        fixed point itself (e.g. denoising with the default step), reached in one step."""
        stepsize = self.params.stepsize
        return (self.model.identity_gram and self.params.mask is None and self.inner is None
                and stepsize.numel() == 1 and float(stepsize.detach()) == 1.0)

    def constant_value(self, u):
        """``φ(u)`` of a constant map (:attr:`is_constant`) as ``prox_{λR}(W Aᵀ y)``,
        skipping the gradient step that maps every ``u`` to ``W Aᵀ y`` (one synthesis,
        one ``AᵀA`` and one analysis fewer).
        With a learned step size the gradient step stays: its derivative in ``τ``
        at ``u`` is part of the hypergradient."""
        p = self.params
        if p.stepsize.requires_grad:
            return self(u)
        v = self.model.initial_point(p.measurements, p.mask, p.back_projection)
        return self.model.regularizer.prox(v, p.stepsize * p.weights, p.network or {})

    def __call__(self, u):
        if self.inner is None:
            p = self.params
            return self.model.step(u, p.measurements, p.weights, p.stepsize, p.network, p.mask,
                                   p.back_projection)
        return self.model.step_from(u, self.params, self.inner)[0]

    def warm(self, u, inner):
        """``(φ(u), state)`` with the cheap inner solve started from ``inner``."""
        return self.model.step_from(u, self.params, inner, warm=True)

    def anchored(self, inner):
        """The fixed map whose inner solver starts from ``inner``."""
        return StepMap(self.model, self.params, inner)


class PlainIteration(FixedPointAlgorithm):
    """``u ← φ(u)``: plain forward–backward (contractive when the data term
    is strongly convex; linear convergence, slow on ill-conditioned problems)."""

    name = "fb"

    def update(self, state, phi):
        u, inner = warm_apply(phi, state["u"], state.get("inner"))
        return {"u": u, "inner": inner}
