"""What a fixed-point algorithm is, for the restarted solves.

Every model of the package has one elementary operator ``φ_θ`` (a
forward–backward step, see :mod:`.forward_backward`) whose fixed point is
the reconstruction. An *algorithm* iterates some map built from ``φ_θ``
towards that fixed point and carries whatever state it needs (momentum,
history): one class, three methods. The restarted loop of
:mod:`retune_sklearn.hypergradients` runs any algorithm for the
non-differentiated blocks and the plain ``φ_θ`` for the differentiated one,
so that JFB's theory (a contraction in the last block) holds whatever the
algorithm.
"""

import torch

__all__ = ["FixedPointAlgorithm", "anchored", "per_sample_norm", "warm_apply"]


def per_sample_norm(t):
    """Euclidean norm of each sample (axis 0) of a batch; a scalar stays one."""
    return t.abs() if t.dim() == 0 else t.flatten(1).norm(dim=1)


def per_sample_dot(a, b):
    """Inner product of each sample of two batches."""
    return a * b if a.dim() == 0 else (a * b).flatten(1).sum(dim=1)


def as_sample_column(values, like):
    """``values`` of shape ``(n,)`` reshaped to broadcast against the batch ``like``."""
    return values if like.dim() == 0 else values.reshape((-1,) + (1,) * (like.dim() - 1))


def warm_apply(phi, u, inner):
    """``(φ(u), inner state)``: a warm step when ``phi`` has one.

    A step map with an inner solver (:class:`~.forward_backward.StepMap`
    with TotalVariation) offers ``phi.warm(u, inner)``, a cheap step that
    continues the inner solve from ``inner``; algorithms keep the state in
    their state dict under ``"inner"`` (None at the start). Any other
    callable is applied as it is.
    """
    warm = getattr(phi, "warm", None)
    return (phi(u), None) if warm is None else warm(u, inner)


def anchored(phi, state):
    """The fixed map ``phi`` with its inner solver started from the state's (if any)."""
    inner = state.get("inner")
    return phi if inner is None or not hasattr(phi, "anchored") else phi.anchored(inner)


class FixedPointAlgorithm:
    """Base class: iterate towards a fixed point of ``phi``.

    Subclasses implement :meth:`update`. A state is a dict of tensors whose
    entry ``"u"`` is always the current estimate of the fixed point, and
    ``"inner"`` (if present) the inner state of the step map (see
    :func:`warm_apply`, which the algorithms call instead of ``phi``); the
    other entries (momentum, history) belong to the algorithm.
    """

    #: Registry name (``solver=`` of the estimator).
    name = None

    def init_state(self, u, inner=None):
        """A fresh state at the point ``u``, the step map's inner solver at ``inner``
        (None: a cold start)."""
        return {"u": u, "inner": inner}

    def update(self, state, phi):
        """One iteration: a new state (``phi`` maps coefficients to coefficients)."""
        raise NotImplementedError

    def run(self, state, phi, n_steps):
        """``n_steps`` iterations."""
        for _ in range(n_steps):
            state = self.update(state, phi)
        return state

    def __repr__(self):
        return f"{type(self).__name__}()"


def relative_residual(phi, u):
    """Per-sample ``‖φ(u) − u‖ / ‖u‖``: how far ``u`` is from a fixed point."""
    with torch.no_grad():
        difference = per_sample_norm(phi(u) - u)
        return difference / per_sample_norm(u).clamp_min(torch.finfo(u.dtype).tiny)
