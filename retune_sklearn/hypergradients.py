"""Restarted solves and the hypergradient modes (ReTune, arXiv:2506.13239).

:func:`restarted_solve` runs up to ``T`` blocks of ``K`` iterations towards
the fixed point of ``φ_θ``:

1. up to ``T − 1`` *restarted* blocks of any fixed-point algorithm
   (:mod:`retune_sklearn.solvers`: plain forward–backward, FISTA with
   restart), each continuing from the previous one; with ``tol`` they stop
   as soon as every sample's relative residual ``‖φ(u) − u‖ / ‖u‖`` is at
   most ``tol`` (checked before each block, so a warm start already at the
   equilibrium costs one evaluation); with ``tol=None`` all ``T − 1`` run
   (a fixed budget: an "unrolled network" of exactly ``T·K`` steps);
2. one last block of ``K`` plain steps ``φ_θ``, the contraction JFB's
   theory is about (with TotalVariation's warm dual, ``K`` steps of the
   joint primal–dual iteration, continued from the state reached).

The hypergradient mode decides what automatic differentiation sees:

* ``"jfb"``: the last block only (memory O(K), independent of ``T``);
* ``"unrolled"``: every iteration (memory O(T·K));
* ``"implicit"``: nothing of the iterations; the backward pass solves the
  adjoint equation ``(I − ∂φ/∂u)ᵀ w = ∇ℓ`` at the last iterate by GMRES on
  vector–Jacobian products (the implicit-function theorem: the exact
  deep-equilibrium gradient, up to ``implicit_tol``);
* ``"none"`` (not a training mode): no autograd at all, for inference.

A new mode is one function ``(phi, u, K, options, report) -> u`` and one
line in :data:`HYPERGRADIENTS`.
"""

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse.linalg
import torch
from sklearn.exceptions import ConvergenceWarning

from .solvers import FixedPointAlgorithm, PlainIteration, relative_residual
from .solvers._base import anchored

__all__ = ["SolveOptions", "SolveReport", "restarted_solve", "HYPERGRADIENTS"]


@dataclass
class SolveOptions:
    """How one solve runs (the estimator's ``K``, ``T``, ``tol``, ``solver``, ...)."""

    K: int
    T: int
    tol: Optional[float] = None
    solver: FixedPointAlgorithm = field(default_factory=PlainIteration)
    implicit_tol: float = 1e-6
    implicit_max_iter: int = 200
    implicit_solver: str = "gmres"


@dataclass
class SolveReport:
    """What the solves of a fit (or a transform) did, for diagnostics and warnings.

    ``iterations``: forward–backward iterations of each solve (both phases);
    ``residuals``: the largest relative residual of each solve with ``tol``,
    measured when its restarted phase stopped; ``n_capped``: solves whose
    restarted phase used all ``T − 1`` blocks without reaching ``tol``;
    ``adjoint_failures`` / ``adjoint_residuals``: implicit backward passes
    that did not reach ``implicit_tol``, and the relative residual each one
    reached; ``adjoint_products``: vector–Jacobian products of each adjoint solve.
    """

    iterations: list = field(default_factory=list)
    residuals: list = field(default_factory=list)
    n_capped: int = 0
    adjoint_solves: int = 0
    adjoint_failures: int = 0
    adjoint_residuals: list = field(default_factory=list)
    adjoint_products: list = field(default_factory=list)

    def warn_if_needed(self, options, stacklevel=2, *, capped=True):
        """One ``ConvergenceWarning`` per problem found (not one per solve);
        ``capped=False`` leaves out the solves that stopped at the cap."""
        advice = "" if options.solver.name == "fista" else ", use solver='fista'"
        if capped and self.n_capped:
            warnings.warn(
                f"{self.n_capped} of {len(self.iterations)} solves stopped at the cap of "
                f"T={options.T} blocks of K={options.K} iterations with a relative residual "
                f"above solve_tol={options.tol:g} (largest {max(self.residuals):.2e}): they "
                f"are not at the equilibrium. Increase T{advice}, or raise solve_tol.",
                ConvergenceWarning, stacklevel=stacklevel + 1)
        if self.adjoint_failures:
            warnings.warn(
                f"{self.adjoint_failures} of {self.adjoint_solves} implicit backward passes "
                f"did not reach implicit_tol={options.implicit_tol:g} within "
                f"implicit_max_iter={options.implicit_max_iter} (largest relative residual "
                f"{max(self.adjoint_residuals):.2e}); those hypergradients are approximate. "
                "Increase implicit_max_iter, or solve closer to the equilibrium (smaller "
                "solve_tol).",
                ConvergenceWarning, stacklevel=stacklevel + 1)


def restarted_solve(phi, u0, K, T, hypergradient="jfb", *, tol=None, solver=None,
                    implicit_tol=1e-6, implicit_max_iter=200, implicit_solver="gmres",
                    report=None, return_map=False, inner=None):
    """Run up to ``T`` blocks of ``K`` iterations of ``phi`` from ``u0``.

    Parameters
    ----------
    phi : callable
        ``u -> φ_θ(u)``; differentiable in θ (captured in the closure) and ``u``.
    u0 : torch.Tensor
        Starting point (not differentiated): a batch ``(n, ...)`` or a scalar.
    K, T : int
        Iterations per block and maximal number of blocks.
    hypergradient : {"jfb", "unrolled", "implicit", "none"}, default="jfb"
        What autograd sees (see the module docstring).
    tol : float or None, default=None
        Stop the restarted phase when every sample's relative residual is at
        most ``tol``; None runs all ``T − 1`` restarted blocks.
    solver : FixedPointAlgorithm or None, default=None
        Algorithm of the restarted blocks; None is the plain iteration.
    implicit_tol, implicit_max_iter : float, int
        Relative residual and cap on vector–Jacobian products of the adjoint
        solve of ``"implicit"``.
    implicit_solver : {"gmres", "cg"}, default="gmres"
        Krylov method of the adjoint solve. ``"cg"``: conjugate gradient on
        the active set, valid only when the step's Jacobian is ``S(I − τH)``
        with ``S`` the 0/1 derivative of a soft threshold (zero output = inactive) and
        ``H`` symmetric: ``L1Norm``/``WaveletL1`` with a quadratic data term
        (any linear operator and mask). Then ``(I − Jᵀ) w = g`` reduces to
        ``τ S H S z = S g`` (symmetric positive semi-definite) and
        ``w = g + Jᵀ z``. ``"gmres"`` is valid for every step (TV, learned
        denoisers).
    report : SolveReport or None
        Receives the iteration count and residuals; without one, an implicit
        backward pass that misses ``implicit_tol`` warns by itself.
    return_map : bool, default=False
        Also return the map the last block iterated: ``phi`` with its inner
        solver (TotalVariation's dual) started where the restarted blocks
        left it (``phi`` itself when it has none). Residuals and contraction
        estimates at the returned point are about that map.
    inner : torch.Tensor or None, default=None
        Where the restarted blocks start the step map's inner solver (with
        ``return_map``, a previous solve's ``map.inner``: TotalVariation's
        warm dual); None starts it cold.

    Returns
    -------
    torch.Tensor
        The last iterate; it carries a graph to θ unless ``hypergradient`` is
        ``"none"``.
    callable
        With ``return_map``: the last block's map.
    """
    if hypergradient not in HYPERGRADIENTS and hypergradient != "none":
        raise ValueError(f"Unknown hypergradient {hypergradient!r}; expected one of "
                         f"{tuple(HYPERGRADIENTS) + ('none',)}.")
    if implicit_solver not in ADJOINT_SOLVERS:
        raise ValueError(f"implicit_solver must be one of {sorted(ADJOINT_SOLVERS)}; got "
                         f"{implicit_solver!r}.")
    options = SolveOptions(K, T, tol, solver or PlainIteration(), implicit_tol,
                           implicit_max_iter, implicit_solver)
    if tol is not None and getattr(phi, "is_constant", False):
        return _one_step_solve(phi, u0, hypergradient, report, return_map)
    keep_graph = hypergradient == "unrolled"
    with torch.set_grad_enabled(keep_graph and torch.is_grad_enabled()):
        state, n_restarted = _restarted_phase(phi, u0.detach(), inner, options, report)
    # The last block (and the implicit backward) is the fixed map whose inner
    # solver starts where the restarted blocks left it: same fixed point.
    u, phi = state["u"], anchored(phi, state)
    if hypergradient == "none":
        with torch.no_grad():
            u = _iterate(phi, u, K)
    else:
        u = HYPERGRADIENTS[hypergradient](phi, u, K, options, report)
    if report is not None:
        report.iterations.append(n_restarted + K)
    return (u, phi) if return_map else u


def _one_step_solve(phi, u0, hypergradient, report, return_map):
    """The solve of a constant map (``phi.is_constant``): ``φ(u0)`` is the fixed point.

    Every mode gives the same value and gradient as a full solve: ``∂φ/∂u = 0``,
    so K steps equal one and the implicit adjoint ``(I − ∂φ/∂u)^{-ᵀ}`` is the
    identity. Solves to a tolerance only: a fixed budget runs its ``T·K`` steps.
    """
    with torch.set_grad_enabled(hypergradient != "none" and torch.is_grad_enabled()):
        constant_value = getattr(phi, "constant_value", None)  # absent on plain callables
        u = phi(u0.detach()) if constant_value is None else constant_value(u0.detach())
    if report is not None:
        report.iterations.append(1)
        report.residuals.append(0.0)
    return (u, phi) if return_map else u


def _restarted_phase(phi, u, inner, options, report):
    """Up to ``T − 1`` blocks of the algorithm from ``(u, inner)``; returns its state and
    the iterations run."""
    solver, state, n_iterations = options.solver, options.solver.init_state(u, inner), 0
    residual = None
    for block in range(options.T):
        if options.tol is not None and (block > 0 or options.T > 1):
            residual = float(relative_residual(anchored(phi, state), state["u"]).max())
            if residual <= options.tol:
                break
        if block == options.T - 1:  # the cap, and still above tol
            if report is not None and residual is not None:
                report.n_capped += 1
            break
        state = solver.run(state, phi, options.K)
        n_iterations += options.K
    if report is not None and residual is not None:
        report.residuals.append(residual)
    return state, n_iterations


def _iterate(phi, u, n_steps):
    """``n_steps`` steps of the last block from ``u``.

    A map anchored at an inner state (TotalVariation's warm dual, see
    :func:`~retune_sklearn.solvers._base.anchored`) continues the joint
    (primal, dual) iteration of the restarted blocks from that state, the
    dual carried from step to step and differentiated with the primal: the
    operator whose fixed point the restarted blocks reached, at the cost of
    ``n_inner_warm`` dual iterations per step instead of a full inner solve
    (benchmarks/warm_dual.md: a deblurring fit with ``n_inner_warm=2`` takes
    1.18× less CPU than the cold prox at the same test PSNR).
    """
    inner = getattr(phi, "inner", None)
    if inner is None:
        for _ in range(n_steps):
            u = phi(u)
        return u
    for _ in range(n_steps):
        u, inner = phi.warm(u, inner)
    return u


def _through_iterations(phi, u, K, options, report):
    """``"jfb"`` and ``"unrolled"``: autograd through the last block (and, for
    ``"unrolled"``, through the restarted phase, which then kept its graph)."""
    return _iterate(phi, u, K)


def _implicit(phi, u, K, options, report):
    """``"implicit"``: the last block without autograd, then one step whose
    backward pass applies ``(I − ∂φ/∂u)^{-ᵀ}``."""
    with torch.no_grad():
        u = _iterate(phi, u, K)
    return _attach_implicit_backward(phi, u, options, report)


#: Hypergradient modes by name: how the last block is differentiated.
HYPERGRADIENTS = {"jfb": _through_iterations, "unrolled": _through_iterations,
                  "implicit": _implicit}


def _attach_implicit_backward(phi, u_star, options, report):
    """Return ``φ(u*)`` whose backward pass replaces the incoming gradient ``g``
    by the solution ``w`` of ``w − (∂φ/∂u)ᵀ w = g`` at ``u*``, which autograd
    then pushes through ``∂φ/∂θ``."""
    u_leaf = u_star.detach().requires_grad_(True)
    output = phi(u_leaf)
    in_hook = False

    def backward_hook(grad):
        nonlocal in_hook
        if in_hook:  # the vector-Jacobian products below pass through unchanged
            return None
        in_hook = True
        try:
            return _solve_adjoint(output, u_leaf, grad, options, report)
        finally:
            in_hook = False

    # A flag rather than removing the hook: a second backward through a
    # retained graph must get the implicit gradient again.
    output.register_hook(backward_hook)
    return output


def _solve_adjoint(output, u_leaf, grad, options, report):
    """``w`` with ``w − (∂φ/∂u)ᵀ w = grad``, by the Krylov method ``options.implicit_solver``
    (scipy, float64) on vector–Jacobian products; counts and warnings in ``report``."""
    shape, dtype, device = grad.shape, grad.dtype, grad.device
    b = grad.detach().reshape(-1).cpu().numpy().astype(np.float64)
    b_norm = float(np.linalg.norm(b))
    if b_norm == 0:
        return grad
    n_products = 0

    def jacobian_t(v):  # (∂φ/∂u)ᵀ v, float64 numpy in and out
        nonlocal n_products
        n_products += 1
        w = torch.as_tensor(v, dtype=dtype, device=device).reshape(shape)
        jtw = torch.autograd.grad(output, u_leaf, w, retain_graph=True)[0]
        return jtw.reshape(-1).cpu().numpy().astype(np.float64)

    def matvec(v):
        return v - jacobian_t(v)

    solution = ADJOINT_SOLVERS[options.implicit_solver](jacobian_t, matvec, b, output, options)
    residual = float(np.linalg.norm(b - matvec(solution))) / b_norm
    # float32 vector–Jacobian products bound the reachable residual: allow a margin.
    failed = not residual <= max(options.implicit_tol, 10 * torch.finfo(dtype).eps) * 1.01
    if report is not None:
        report.adjoint_solves += 1
        report.adjoint_products.append(n_products)
        if failed:
            report.adjoint_failures += 1
            report.adjoint_residuals.append(residual)
    elif failed:
        warnings.warn(f"The implicit (DEQ) backward pass reached a relative residual of "
                      f"{residual:.2e} > implicit_tol={options.implicit_tol:g} within "
                      f"implicit_max_iter={options.implicit_max_iter}; the hypergradient is "
                      "approximate.", ConvergenceWarning, stacklevel=2)
    return torch.as_tensor(solution, dtype=dtype, device=device).reshape(shape)


def _linear_operator(matvec, n):
    return scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, dtype=np.float64)


def _gmres(jacobian_t, matvec, b, output, options):
    """GMRES on ``I − Jᵀ``: the Jacobian of a forward–backward step is not
    symmetric in general (TV, masks); ~100 vector–Jacobian products where the
    fixed-point iteration needed thousands on deblurring."""
    restart = min(options.implicit_max_iter, 100)
    solution, _ = scipy.sparse.linalg.gmres(
        _linear_operator(matvec, b.size), b, rtol=options.implicit_tol, atol=0.0,
        restart=restart, maxiter=math.ceil(options.implicit_max_iter / restart))
    return solution


def _cg_active_set(jacobian_t, matvec, b, output, options):
    """CG on ``τ S H S z = S b`` (``S``: where the step's output is non-zero, the
    active set of a soft threshold), then ``w = b + Jᵀ z`` (see
    :func:`restarted_solve`, ``implicit_solver``). One product per CG iteration."""
    active = (output.detach().reshape(-1) != 0).cpu().numpy()

    def reduced(z):  # S (z − Jᵀ S z) = τ S H S z
        z = np.where(active, z, 0.0)
        return np.where(active, z - jacobian_t(z), 0.0)

    rhs = np.where(active, b, 0.0)
    # The full residual b − (I − Jᵀ) w is (I − τH) applied to CG's residual, no
    # larger as 0 ⪯ τH ⪯ 2I: CG's tolerance is set relative to ‖b‖, not ‖S b‖.
    z, _ = scipy.sparse.linalg.cg(_linear_operator(reduced, b.size), rhs,
                                  rtol=options.implicit_tol * float(np.linalg.norm(b)) / max(
                                      float(np.linalg.norm(rhs)), np.finfo(float).tiny),
                                  atol=0.0, maxiter=max(options.implicit_max_iter - 1, 1))
    return b + jacobian_t(z)


#: Krylov methods of the implicit mode's adjoint solve, by ``implicit_solver`` name.
ADJOINT_SOLVERS = {"gmres": _gmres, "cg": _cg_active_set}
