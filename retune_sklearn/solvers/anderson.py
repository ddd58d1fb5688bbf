"""Safeguarded Anderson acceleration (type II) of the fixed-point iteration.

From the last ``m + 1`` points ``x_i`` and their images ``g_i = φ(x_i)``
(residuals ``f_i = g_i − x_i``), each sample's next point is the mixture
``Σ α_i g_i`` whose residuals' mixture ``Σ α_i f_i`` is smallest (``Σ α_i
= 1``; a least-squares problem in the differences, regularized so that
near-collinear histories in float32 stay solvable). Walker & Ni (2011)
for the method; the safeguard follows Zhang, O'Donoghue & Boyd (2020):
an extrapolated point is kept only if its residual is below the residual
at the last kept point, else the sample goes back there, takes the plain
step and restarts its history. One ``φ`` evaluation per iteration, as for
the plain iteration; the fixed points are the same.

A warm inner state of the step (TotalVariation's dual, see
:func:`~._base.warm_apply`) is part of the iterate: it is mixed with the
same coefficients (which are fitted on the primal residuals only).
"""

import torch

from ._base import FixedPointAlgorithm, as_sample_column, per_sample_norm, warm_apply

__all__ = ["AndersonAcceleration"]


def _rows(t):
    """A batch as a matrix, one row per sample (a scalar is one sample)."""
    return t.reshape(1, -1) if t.dim() == 0 else t.reshape(len(t), -1)


def _mix(values, gamma):
    """``values[-1] − Σ_j γ_j (values[j + 1] − values[j])`` per sample (``gamma`` (n, m))."""
    stacked = torch.stack([_rows(v) for v in values], dim=2)  # (n, d, m + 1)
    mixed = stacked[..., -1] - ((stacked[..., 1:] - stacked[..., :-1]) * gamma[:, None]).sum(2)
    return mixed.reshape(values[-1].shape)


class AndersonAcceleration(FixedPointAlgorithm):
    """Anderson acceleration with memory ``m`` and a residual safeguard, per sample.

    Parameters
    ----------
    m : int, default=5
        Number of residual differences in the least-squares fit.
    regularization : float, default=1e-8
        Tikhonov term of the normal equations, relative to their trace.
    """

    name = "anderson"

    def __init__(self, m=5, regularization=1e-8):
        self.m = m
        self.regularization = regularization

    def init_state(self, u, inner=None):
        n = 1 if u.dim() == 0 else len(u)
        return {"u": u, "inner": inner, "x": u, "x_inner": inner,
                "plain": torch.ones(n, dtype=torch.bool, device=u.device),
                "safe_residual": torch.full((n,), float("inf"), dtype=u.dtype, device=u.device),
                "history": [], "n_rejected": 0}

    def update(self, state, phi):
        x, x_inner = state["x"], state["x_inner"]
        g, g_inner = warm_apply(phi, x, x_inner)
        residual = per_sample_norm(g - x).reshape(-1)
        # Keep the candidate if it lowers the residual of the last kept point
        # (a plain step is always kept); else back to that point, plain step.
        kept = state["plain"] | (residual < state["safe_residual"])
        rejected = int((~kept).sum())
        u, inner = self._where(kept, g, state["u"]), self._where(kept, g_inner, state["inner"])
        history = self._push(state["history"], kept, x, g, g_inner)
        next_x, next_inner = self._extrapolate(history)
        # Rejected samples evaluate the plain step next: φ of their last kept image.
        next_x, next_inner = self._where(kept, next_x, u), self._where(kept, next_inner, inner)
        return {"u": u, "inner": inner, "x": next_x, "x_inner": next_inner, "plain": ~kept,
                "safe_residual": torch.where(kept, residual, state["safe_residual"]),
                "history": history, "n_rejected": state["n_rejected"] + rejected}

    @staticmethod
    def _where(kept, new, old):
        if new is None or old is None:
            return new
        return torch.where(as_sample_column(kept, new) if new.dim() else kept[0], new, old)

    def _push(self, history, kept, x, g, g_inner):
        """History entries ``(x, g, g_inner, valid)``: rejected samples restart theirs."""
        if not bool(kept.all()):
            history = [(hx, hg, hi, valid & kept) for hx, hg, hi, valid in history]
        return (history + [(x, g, g_inner, kept)])[-(self.m + 1):]

    def _extrapolate(self, history):
        """The Anderson point (and inner state) from the history; the plain image ``g`` for
        a sample whose history holds one valid entry."""
        x_last, g_last, inner_last, _ = history[-1]
        if len(history) < 2:
            return g_last, inner_last
        residuals = [_rows(hg - hx) for hx, hg, _, _ in history]
        valid = torch.stack([v for *_, v in history], dim=1)  # (n, m + 1)
        pair_valid = (valid[:, 1:] & valid[:, :-1]).to(residuals[0].dtype)  # (n, m)
        differences = torch.stack([b - a for a, b in zip(residuals, residuals[1:])], dim=2)
        differences = differences * pair_valid[:, None]  # an invalid pair is a zero column
        gram = differences.transpose(1, 2) @ differences  # (n, m, m)
        scale = gram.diagonal(dim1=1, dim2=2).sum(1).clamp_min(torch.finfo(gram.dtype).tiny)
        eye = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
        # An invalid pair gets a unit diagonal (its γ is zero), so the system stays regular.
        gram = gram + (self.regularization * scale)[:, None, None] * eye + torch.diag_embed(
            1 - pair_valid)
        rhs = (differences.transpose(1, 2) @ residuals[-1][..., None])[..., 0]
        gamma = torch.linalg.solve(gram, rhs) * pair_valid
        mixed = _mix([hg for _, hg, _, _ in history], gamma)
        inner = None if inner_last is None else _mix([hi for *_, hi, _ in history], gamma)
        return mixed, inner

    def __repr__(self):
        return f"{type(self).__name__}(m={self.m})"
