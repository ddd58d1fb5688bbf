"""FISTA with gradient-based adaptive restart (O'Donoghue & Candès, 2015).

For ``φ = prox ∘ (I − τ∇f)`` a FISTA step is ``φ`` applied at an
extrapolated point. The momentum is reset, per sample, whenever the step
goes against the previous direction (``⟨y_k − u_{k+1}, u_{k+1} − u_k⟩ > 0``):
this "gradient" restart needs no function values, which are too noisy in
float32 to drive a restart. Same fixed point as the plain iteration;
measured 5–14× fewer iterations to a relative residual of 1e-5 on the
ill-conditioned benchmark problems, at ~1.1× the cost per iteration.
"""

import torch

from ._base import (FixedPointAlgorithm, as_sample_column, per_sample_dot, per_sample_norm,
                    warm_apply)

__all__ = ["FISTARestart"]


class FISTARestart(FixedPointAlgorithm):
    """Accelerated forward–backward with per-sample gradient restart."""

    name = "fista"

    def init_state(self, u, inner=None):
        n = () if u.dim() == 0 else (u.shape[0],)
        return {"u": u, "extrapolated": u, "t": torch.ones(n, dtype=u.dtype, device=u.device),
                "inner": inner, "extrapolated_inner": inner, "step_norm": None}

    def update(self, state, phi):
        u, extrapolated, t = state["u"], state["extrapolated"], state["t"]
        u_next, inner = warm_apply(phi, extrapolated, state["extrapolated_inner"])
        step = u_next - u
        against = per_sample_dot(extrapolated - u_next, step) > 0
        step_norm = None
        if inner is not None:
            # With a warm inner state (TV's dual) the step is not a gradient step
            # of one function and the gradient test alone never fired (stalled at
            # 1e-2): also restart when the step length grows ("speed" restart).
            step_norm = per_sample_norm(u_next - extrapolated)
            if state["step_norm"] is not None:
                against = against | (step_norm > state["step_norm"])
        t_next = ((1 + torch.sqrt(1 + 4 * t * t)) / 2).masked_fill_(against, 1.0)
        # A restarted sample takes no momentum: t = 1 gives the factor 0.
        momentum = ((t - 1) / t_next).masked_fill_(against, 0.0)
        extrapolated = torch.addcmul(u_next, as_sample_column(momentum, u_next), step)
        # The inner state is part of the iterate: it takes the same momentum.
        extrapolated_inner = inner
        if inner is not None and state["inner"] is not None:
            extrapolated_inner = inner + as_sample_column(momentum, inner) * (inner - state["inner"])
        return {"u": u_next, "extrapolated": extrapolated, "t": t_next, "inner": inner,
                "extrapolated_inner": extrapolated_inner, "step_norm": step_norm}
