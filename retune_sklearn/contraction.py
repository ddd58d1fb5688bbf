"""How contractive a forward–backward step is, and the block size that follows.

JFB's error bound (ReTune, arXiv:2506.13239) is about the Jacobian of the
differentiated block at the equilibrium: at a fixed point ``u*`` every step
of the last block is taken at ``u*``, so with ``J = ∂φ/∂u(u*)``

    exact − jfb(K) = ∂φ/∂θᵀ (Jᵀ)^K w*,   ‖exact − jfb(K)‖ ≤ C ‖J^K‖ ≤ C ‖J‖^K.

:func:`estimate_contraction` measures ``‖J‖₂`` (the *contraction factor*
of one step) and ``‖J^K‖₂`` (of the K-block, which can be much smaller
than ``‖J‖^K`` when ``J`` is far from normal) by the Lanczos method on
``JᵀJ`` (a power iteration that keeps its Krylov basis), per sample, with
vector–Jacobian products only: ``Jᵀw`` is one
backward pass, and ``Jv`` is the derivative of the *linear* map
``w ↦ Jᵀw`` in the direction ``v`` (one double-backward pass over a graph
built once). It needs a twice-differentiable step (every operator and
regularizer of the package is), and no forward-mode support.

Lanczos converges from below: the estimate is a lower bound of
``‖J‖₂`` (it stops when it changes by less than ``rtol`` in one iteration,
or after ``n_iter``). An estimate above 1 therefore proves the step
expansive; one below 1 is strong evidence, not a proof, of a contraction
(on the tests' problems it matched the dense spectral norm to 1e-3).

:func:`choose_block_size` turns the step factor ``ρ`` into the smallest
``K`` with ``ρ^K ≤ target`` (``K="auto"`` of the estimator), and
:func:`choose_solve_tol` into the relative residual at which a solve is
within a given relative distance of the equilibrium (``solve_tol="auto"``):
for a ρ-contraction every point ``u`` satisfies

    ‖u − u*‖ ≤ ‖φ(u) − u‖ / (1 − ρ),

so the same residual means a 1000 times larger distance at ``ρ = 0.999``
(deblurring) than at ``ρ = 0`` (denoising with an orthonormal basis).
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["ContractionEstimate", "estimate_contraction", "jacobian_norm",
           "choose_block_size", "expansive_block_message", "auto_block_size_message",
           "choose_solve_tol", "AUTO_K_TARGET", "AUTO_K_MAX", "AUTO_K_FALLBACK", "AUTO_DISTANCE",
           "AUTO_TOL_EPS", "CONTRACTION_TOL"]

#: Target of ``K="auto"``: the smallest K with ``ρ^K`` at most this.
AUTO_K_TARGET = 1e-2
#: Largest K that ``K="auto"`` chooses.
AUTO_K_MAX = 50
#: ``K="auto"`` when no K up to ``AUTO_K_MAX`` meets the target (the first
#: version's default K): the bound then guides nothing, and on the ill-conditioned 2-D
#: deblurring of benchmarks/reproduce_paper.py (ρ ≈ 0.999) K = 50 took 1.9× the
#: CPU time of K = 10 and scored 0.15 dB lower (benchmarks/defaults/auto_k.py).
AUTO_K_FALLBACK = 10
#: A factor within this of 1 counts as 1 (non-expansive, not contractive).
CONTRACTION_TOL = 1e-3
#: ``solve_tol="auto"``: the relative distance ``‖u − u*‖ / ‖u‖`` the solves
#: aim at. For an image of RMS 0.5 that is ~66 dB below it: it moves a 30 dB
#: reconstruction's PSNR by ~0.001 dB if uncorrelated with its error, 0.14 dB
#: at worst (aligned with it).
AUTO_DISTANCE = 1e-3
#: ``solve_tol="auto"`` asks at least this many machine epsilons of relative
#: residual (float32 rounding stops the residual near 1e-6 to 1e-5).
AUTO_TOL_EPS = 100


@dataclass
class ContractionEstimate:
    """Estimated Lipschitz factors of one step and of a K-block at a point.

    ``step``: largest over the samples of ``‖∂φ/∂u‖₂``; ``block``: of
    ``‖∂(φ∘…∘φ)/∂u‖₂`` (``K`` steps); ``per_sample_step``: the step factor
    of each sample; ``n_iter``: Lanczos iterations run for the step;
    ``reason``: why nothing was estimated (then ``step`` and ``block`` are
    None).
    """

    step: Optional[float]
    block: Optional[float]
    K: int
    per_sample_step: Optional[list] = None
    n_iter: int = 0
    reason: Optional[str] = None

    @property
    def status(self):
        """``"contractive"``, ``"non-expansive"`` (factor ≈ 1), ``"expansive"`` or
        ``"not estimated: <reason>"``."""
        if self.step is None:
            return f"not estimated: {self.reason}"
        if self.step > 1 + CONTRACTION_TOL:
            return "expansive"
        if self.step >= 1 - CONTRACTION_TOL:
            return "non-expansive"
        return "contractive"


def jacobian_norm(phi, u, n_steps=1, *, n_iter=30, rtol=1e-4, seed=0):
    """Per-sample spectral norm of the Jacobian of ``phi`` applied ``n_steps`` times at ``u``.

    Parameters
    ----------
    phi : callable
        ``u -> φ(u)`` on a batch ``(n, ...)``; samples must not interact.
    u : torch.Tensor
        The point (e.g. the equilibrium), not modified.
    n_steps : int, default=1
        Steps composed (``K`` for the block).
    n_iter : int, default=30
        Most Lanczos iterations on ``JᵀJ`` (each one ``Jv`` and one ``Jᵀw``).
    rtol : float, default=1e-4
        Stop when every sample's estimate changed by less than this
        (relative) in one iteration.
    seed : int, default=0
        Seed of the random start.

    Returns
    -------
    norms : torch.Tensor of shape (n,)
        Lower bounds of ``‖J_i‖₂`` (the largest Ritz values).
    n_run : int
        Iterations run.

    Raises
    ------
    RuntimeError
        If ``phi`` cannot be differentiated twice.
    """
    u_leaf = u.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = u_leaf
        for _ in range(n_steps):
            out = phi(out)
        if not out.requires_grad:  # φ does not depend on u here: J = 0
            return torch.zeros(len(u), dtype=u.dtype, device=u.device), 0
        dummy = torch.zeros_like(out, requires_grad=True)
        # Scalar outputs (no grad_outputs): torch's first autograd.grad call with
        # grad_outputs imports sympy (~2.5 s per process).
        (jt_dummy,) = torch.autograd.grad((out * dummy).sum(), u_leaf, create_graph=True,
                                          allow_unused=True)
        if jt_dummy is None:  # the graph does not reach u: J = 0
            return torch.zeros(len(u), dtype=u.dtype, device=u.device), 0
        if not jt_dummy.requires_grad:
            raise RuntimeError("the backward pass of the step is not differentiable "
                               "(e.g. a once_differentiable autograd.Function)")

        def jvp(v):  # J v: derivative of the linear map w -> Jᵀw in the direction v
            (jv,) = torch.autograd.grad((jt_dummy * v).sum(), dummy, retain_graph=True,
                                        allow_unused=True)
            if jv is None:  # Jᵀw is linear in w: only a non-differentiable backward cuts it
                raise RuntimeError("the backward pass of the step is not differentiable "
                                   "(e.g. a once_differentiable autograd.Function)")
            return jv

        def vjp(w):  # Jᵀ w
            (jtw,) = torch.autograd.grad((out * w).sum(), u_leaf, retain_graph=True,
                                         allow_unused=True)
            return torch.zeros_like(u_leaf) if jtw is None else jtw

        generator = torch.Generator(device=u.device).manual_seed(seed)
        v = torch.randn(u.shape, generator=generator, dtype=u.dtype, device=u.device)
        return _lanczos_top(lambda x: vjp(jvp(x)), v, n_iter, rtol)


def _lanczos_top(gram, v, n_iter, rtol):
    """Per-sample ``sqrt(λ_max)`` of the PSD map ``gram`` (``JᵀJ``), by Lanczos
    with full reorthogonalization from ``v``; returns (norms, iterations).

    The largest Ritz value is a lower bound of ``λ_max`` that converges much
    faster than power iteration when the top singular values cluster (on
    the deblurring test problem power iteration was still 0.4 % low after
    30 iterations, Lanczos exact to 1e-6 after 15).
    """
    n, tiny = len(v), torch.finfo(v.dtype).tiny
    flat = v.detach().reshape(n, -1)
    basis = [flat / flat.norm(dim=1, keepdim=True).clamp_min(tiny)]
    alphas, betas = [], []
    norms = torch.zeros(n, dtype=v.dtype, device=v.device)
    n_run = 0
    for n_run in range(1, n_iter + 1):
        w = gram(basis[-1].reshape(v.shape)).detach().reshape(n, -1)
        alphas.append((w * basis[-1]).sum(dim=1))
        for q in basis:  # full reorthogonalization (twice is enough)
            w = w - (w * q).sum(dim=1, keepdim=True) * q
        for q in basis:
            w = w - (w * q).sum(dim=1, keepdim=True) * q
        beta = w.norm(dim=1)
        tridiagonal = torch.diag_embed(torch.stack(alphas, dim=1))
        if betas:
            off = torch.diag_embed(torch.stack(betas, dim=1), offset=1)
            tridiagonal = tridiagonal + off + off.transpose(1, 2)
        top = torch.linalg.eigvalsh(tridiagonal)[:, -1].clamp_min(0).sqrt()
        # A sample whose Krylov space is invariant (beta ≈ 0) has its exact value.
        scale = torch.stack(alphas, dim=1).abs().max(dim=1).values.clamp_min(tiny)
        done = beta <= 1e-10 * scale
        converged = bool((((top - norms).abs() <= rtol * top.clamp_min(tiny)) | done).all())
        norms = torch.maximum(norms, top)
        if converged or bool(done.all()):
            break
        betas.append(torch.where(done, torch.zeros_like(beta), beta))
        basis.append(torch.where(done[:, None], torch.zeros_like(w),
                                 w / beta[:, None].clamp_min(tiny)))
    return norms, n_run


def estimate_contraction(phi, u, K, *, n_iter=30, rtol=1e-4, seed=0):
    """:class:`ContractionEstimate` of one step and of a ``K``-block of ``phi`` at ``u``.

    The block's estimate gets ``max(3, ceil(n_iter / K))`` iterations:
    its spectrum is the step's raised to the K-th power (at a fixed point),
    so the gap between singular values grows with K and fewer iterations
    suffice; the cost stays about that of the step's estimate. A step that
    cannot be differentiated twice (or any error in the estimate) gives None
    values and a ``reason``.
    """
    K = int(K)
    if getattr(phi, "is_constant", False):  # φ(u) does not depend on u: ∂φ/∂u = 0
        return ContractionEstimate(0.0, 0.0, K, per_sample_step=[0.0] * len(u))
    try:
        step, n_run = jacobian_norm(phi, u, 1, n_iter=n_iter, rtol=rtol, seed=seed)
        if K == 1:
            block = step
        else:
            block, _ = jacobian_norm(phi, u, K, n_iter=max(3, math.ceil(n_iter / K)),
                                     rtol=rtol, seed=seed)
    except Exception as error:  # a diagnostic never breaks a fit (user operators, ...)
        return ContractionEstimate(None, None, K, reason=(
            f"the step could not be differentiated twice ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"))
    if not (torch.isfinite(step).all() and torch.isfinite(block).all()):
        return ContractionEstimate(None, None, K, reason="non-finite Jacobian products")
    return ContractionEstimate(float(step.max()), float(block.max()), K,
                               per_sample_step=[float(s) for s in step], n_iter=n_run)


def choose_block_size(rho, target=AUTO_K_TARGET, k_max=AUTO_K_MAX, fallback=AUTO_K_FALLBACK):
    """Smallest ``K`` in ``[1, k_max]`` with ``rho ** K <= target``, else ``fallback``.

    ``rho`` is the contraction factor of one step; ``rho ≥ 1`` (or None: not
    estimated), or a ``rho`` so close to 1 that ``rho ** k_max > target``,
    gives ``fallback``.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1); got {target!r}.")
    if rho is None or not rho < 1:
        return int(fallback)
    if rho <= 0:
        return 1
    K = math.ceil(math.log(target) / math.log(rho) - 1e-9)
    return int(max(K, 1)) if K <= k_max else int(fallback)


def choose_solve_tol(rho, dtype, distance=AUTO_DISTANCE):
    """Relative residual at which a solve is within ``distance`` of the equilibrium.

    Parameters
    ----------
    rho : float or None
        Contraction factor of one step (None: not estimated).
    dtype : torch.dtype
        Precision of the solves (sets the floor).
    distance : float, default=AUTO_DISTANCE
        Relative distance to the equilibrium to guarantee.

    Returns
    -------
    tol : float
        ``distance · (1 − ρ)``, at least ``AUTO_TOL_EPS`` machine epsilons of
        ``dtype`` (that floor when the step is not contractive: ``ρ`` None
        or within ``CONTRACTION_TOL`` of 1 or above, so the tolerance never
        loosens as ``ρ`` grows).
    guaranteed_distance : float or None
        The distance the returned tolerance guarantees, ``tol / (1 − ρ)``
        (larger than ``distance`` when the floor applies), or None when the
        step is not contractive and no bound holds.
    """
    floor = AUTO_TOL_EPS * torch.finfo(dtype).eps
    if rho is None or not rho < 1 - CONTRACTION_TOL:
        return float(floor), None
    rho = max(float(rho), 0.0)
    tol = max(distance * (1 - rho), floor)
    return float(tol), float(tol / (1 - rho))


def expansive_block_message(estimate, step_scale):
    """The warning when the differentiated K-block is estimated expansive, or None.

    JFB's error bound is ``C ‖J^K‖``: it fails when the K-block expands
    (``block > 1 + CONTRACTION_TOL``). A non-expansive block (factor ≈ 1:
    inpainting, redundant frames, nearly singular operators) is recorded
    but not warned about: the iteration still converges there, the bound
    merely says nothing. Neither is an expansive single step whose K-block
    contracts (the bound holds for that K).
    """
    if estimate.block is None or not estimate.block > 1 + CONTRACTION_TOL:
        return None
    return (f"The differentiated block of K={estimate.K} forward-backward steps is expansive "
            f"at the learned weights: block_contraction_ = ||d Phi_K/du||_2 = "
            f"{estimate.block:.4f} > 1 (one step: contraction_factor_ = {estimate.step:.4f}). "
            "JFB's hypergradient error bound does not hold and the solves need not converge. "
            f"Lower step_scale (now {float(step_scale):.4g}) or keep it fixed "
            "(learn_step_size=False), use a non-expansive denoiser "
            "(LearnedDenoiser(lipschitz_bound=True), fewer layers), or a larger K. With "
            "TotalVariation this is the derivative of the n_inner truncated dual (FGP) steps "
            "of its prox (more inner steps make it larger, fewer smaller), not a divergence: "
            "check fixed_point_residual_ and the gradients against "
            "hypergradient='implicit'.")


def auto_block_size_message(selection):
    """Why ``K="auto"`` fell back to ``AUTO_K_FALLBACK`` (``K_selection_["fallback"]``),
    or None."""
    rho, K, target = selection["initial_contraction"], selection["K"], selection["target"]
    if rho is not None and selection["bound"] <= target:
        return None
    if rho is None:
        why = f"the contraction factor could not be estimated ({selection['status']})"
    elif rho >= 1 - CONTRACTION_TOL:
        why = (f"the step is not contractive at the initial weights (estimated factor "
               f"{rho:.4f}; e.g. inpainting, a redundant frame, a nearly singular operator), "
               "so no K brings the JFB error bound rho^K down")
    else:
        why = (f"the step contracts slowly at the initial weights (estimated factor "
               f"{rho:.4f}: rho^{AUTO_K_MAX} = {rho ** AUTO_K_MAX:.3g} > target {target:g})")
    return (f"K='auto': {why}; K_ = {K}, the fallback, as no K up to {AUTO_K_MAX} meets the "
            "target. Set an integer K (check it against hypergradient='implicit'), or make "
            "the data term strongly convex (a better-conditioned operator, an orthonormal "
            "wavelet instead of a redundant frame).")
