"""Forward–backward iterations and their hypergradients.

The lower-level problem, in synthesis form ``x = W* u``::

    u* = argmin_u  ½‖A W* u − y‖² + Σ_g λ_g R_g(u)

is solved by forward–backward steps (one step is the operator ``φ_θ``)::

    φ_θ(u) = prox_{τ λ R}( u − τ W Aᵀ(A W* u − y) ),   τ = step_scale / L,

with ``L = ‖A W*‖²``. :func:`restarted_solve` runs ``T`` blocks of ``K``
steps, each block restarting from the previous one's output, and decides
which steps automatic differentiation sees (ReTune, arXiv:2506.13239):

* ``"jfb"``: the first ``T − 1`` blocks without autograd, the last ``K``
  steps with autograd (memory O(K), independent of ``T``);
* ``"unrolled"``: autograd through all ``T·K`` steps (memory O(T·K));
* ``"implicit"``: all steps without autograd, then the implicit-function
  theorem: the backward pass solves ``w = (∂φ/∂u)ᵀ w + ∇ℓ`` by iterating
  vector–Jacobian products of one step at the equilibrium;
* ``"none"``: no autograd at all (inference).
"""

import warnings

import torch
from sklearn.exceptions import ConvergenceWarning

from .operators import power_iteration

__all__ = ["ForwardBackward", "restarted_solve", "HYPERGRADIENTS"]

HYPERGRADIENTS = ("jfb", "unrolled", "implicit")


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

    def initial_point(self, measurements, mask=None):
        """Starting coefficients ``W Aᵀ y`` (the back-projection)."""
        if mask is not None:
            measurements = measurements * mask
        return self.regularizer.analysis(self.operator.adjoint(measurements))

    def lipschitz(self, signal_shape, *, device="cpu", dtype=torch.float64):
        """``L = ‖A W*‖²``, the Lipschitz constant of the data-term gradient."""
        u_shape = tuple(self.regularizer.analysis(
            torch.zeros((1, *signal_shape), device=device, dtype=dtype)).shape[1:])

        def gram(u):
            x = self.regularizer.synthesis(u)
            return self.regularizer.analysis(self.operator.adjoint(self.operator.forward(x)))
        return power_iteration(gram, u_shape, device=device, dtype=dtype)

    def step(self, u, measurements, weights, stepsize, network=None, mask=None):
        """One step ``φ_θ(u)``.

        ``weights`` are the natural (positive) λ_g; ``network`` holds the
        regularizer's own learnable tensors, if any. ``mask`` (0/1, shaped
        like ``measurements``) restricts the data term to the observed
        entries: the operator of each sample becomes ``mask ⊙ A``; as the
        mask is idempotent, ``(mask ⊙ A)ᵀ(mask ⊙ A x − y) = Aᵀ(mask ⊙ (A x − y))``.
        """
        x = self.regularizer.synthesis(u)
        residual = self.operator.forward(x) - measurements
        if mask is not None:
            residual = residual * mask
        gradient = self.regularizer.analysis(self.operator.adjoint(residual))
        return self.regularizer.prox(u - stepsize * gradient, stepsize * weights, network or {})

    def energy(self, u, measurements, weights):
        """Lower-level objective per sample (for monitoring and tests)."""
        residual = self.operator.forward(self.regularizer.synthesis(u)) - measurements
        data = 0.5 * residual.flatten(1).pow(2).sum(dim=1)
        return data + self.regularizer.penalty(u, weights)


def _iterate(step, u, n_steps):
    for _ in range(n_steps):
        u = step(u)
    return u


def restarted_solve(step, u0, K, T, hypergradient="jfb", *, implicit_tol=1e-6,
                    implicit_max_iter=200):
    """Run ``T`` blocks of ``K`` steps of ``step`` from ``u0``.

    Parameters
    ----------
    step : callable
        ``u -> φ_θ(u)``; differentiable in θ (captured in the closure) and u.
    u0 : torch.Tensor
        Starting point (not differentiated).
    K, T : int
        Steps per block and number of blocks.
    hypergradient : {"jfb", "unrolled", "implicit", "none"}, default="jfb"
        Which steps autograd sees (see the module docstring).
    implicit_tol, implicit_max_iter : float, int
        Relative tolerance and iteration cap of the adjoint fixed-point
        iteration of ``"implicit"``.

    Returns
    -------
    torch.Tensor
        The last iterate; it carries a graph to θ unless ``hypergradient`` is
        ``"none"``.
    """
    u = u0.detach()
    if hypergradient == "unrolled":
        return _iterate(step, u, T * K)
    if hypergradient == "none":
        with torch.no_grad():
            return _iterate(step, u, T * K)
    if hypergradient == "jfb":
        with torch.no_grad():
            u = _iterate(step, u, (T - 1) * K)
        return _iterate(step, u, K)
    if hypergradient == "implicit":
        with torch.no_grad():
            u = _iterate(step, u, T * K)
        return _attach_implicit_backward(step, u, implicit_tol, implicit_max_iter)
    raise ValueError(f"Unknown hypergradient {hypergradient!r}; expected one of "
                     f"{HYPERGRADIENTS + ('none',)}.")


def _attach_implicit_backward(step, u_star, tol, max_iter):
    """Return ``φ(u*)`` whose backward pass applies ``(I − ∂φ/∂u)^{-ᵀ}``.

    The incoming gradient ``g`` is replaced by the solution ``w`` of
    ``w = (∂φ/∂u)ᵀ w + g`` (fixed-point iteration of vector–Jacobian
    products at ``u*``), which autograd then pushes through ``∂φ/∂θ``.
    """
    u_leaf = u_star.detach().requires_grad_(True)
    output = step(u_leaf)
    in_hook = False

    def backward_hook(grad):
        nonlocal in_hook
        if in_hook:  # the vector-Jacobian products below pass through unchanged
            return None
        in_hook = True
        try:
            return _solve_adjoint(output, u_leaf, grad, tol, max_iter)
        finally:
            in_hook = False

    # A flag rather than removing the hook: a second backward through a
    # retained graph must get the implicit gradient again.
    output.register_hook(backward_hook)
    return output


def _solve_adjoint(output, u_leaf, grad, tol, max_iter):
    """Fixed-point iteration ``w ← (∂φ/∂u)ᵀ w + grad`` at the equilibrium."""
    w = grad
    for _ in range(max_iter):
        jtw = torch.autograd.grad(output, u_leaf, w, retain_graph=True)[0]
        w_next = jtw + grad
        change = (w_next - w).norm() / w_next.norm().clamp_min(torch.finfo(w.dtype).tiny)
        w = w_next
        if change <= tol:
            return w
    warnings.warn(f"The implicit (DEQ) backward pass reached implicit_max_iter="
                  f"{max_iter} with relative change {float(change):.2e} > "
                  f"implicit_tol={tol:g}; the hypergradient is approximate. Increase "
                  "implicit_max_iter or K·T (closer to the equilibrium).",
                  ConvergenceWarning, stacklevel=2)
    return w


def relative_residual(step, u):
    """Per-sample ``‖φ(u) − u‖ / ‖u‖``: how far ``u`` is from a fixed point."""
    with torch.no_grad():
        difference = (step(u) - u).flatten(1).norm(dim=1)
        scale = u.flatten(1).norm(dim=1).clamp_min(torch.finfo(u.dtype).tiny)
        return difference / scale
