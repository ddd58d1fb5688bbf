"""Hypergradients (``jfb``, ``unrolled``, ``implicit``) against independent truths.

The truth is a central finite difference (in log λ) of the training loss of
a lower-level solution converged to machine precision, on tiny, strongly
convex problems in float64:

* ``blur1d``: 1-D signals of length 32, ``A`` = circular convolution with
  ``0.6 δ + 0.4 g`` (``g`` a normalized Gaussian, σ = 1), so ``‖A‖ = 1`` and
  ``σ_min(A) ≈ 0.61``; WaveletL1(db2, 2 levels) in synthesis form (the data
  term is ``σ_min²``-strongly convex since the wavelet is orthonormal);
* ``identity2d``: 16×16 images, ``A = I``, WaveletL1(haar, 2 levels) and
  ``step_scale = 0.5``, so that one step is a genuine contraction of factor
  ``1 − τ = 0.5`` (with ``step_scale = 1`` one step is the exact solution).

The weights are small enough that no subband is entirely thresholded to zero
(else its hypergradient is exactly 0) and the finite differences are checked
to be away from a kink (two step sizes agree).
"""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.metrics import psnr
from retune_sklearn.operators import Identity
from retune_sklearn.regularizers import WaveletL1
from retune_sklearn.solvers import ForwardBackward

from problems import blur1d

# Forward-backward iterations that bring the tiny problems to their fixed point
# to ~1e-15 relative change (contraction factors 0.64 and 0.5).
N_EQUILIBRIUM = 120


# --------------------------------------------------------------- problems
def _blur1d():
    X, y, operator = blur1d(4)
    return dict(X=X, y=y, operator=operator, regularizer=WaveletL1("db2", levels=2),
                weights=np.array([0.01, 0.02, 0.03]), step_scale=1.0)


def _identity2d():
    n, d = 3, 16
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:d, :d] / d
    y = np.stack([np.sin(2 * np.pi * (xx + k * yy)) * 0.3 + (xx + yy > 0.5 + 0.2 * k)
                  for k in range(n)])
    X = y + 0.1 * rng.standard_normal(y.shape)
    weights = 0.01 * (1 + np.arange(7)) / 2  # a2, h2, v2, d2, h1, v1, d1
    return dict(X=X, y=y, operator=Identity(), regularizer=WaveletL1("haar", levels=2),
                weights=weights, step_scale=0.5)


PROBLEMS = {"blur1d": _blur1d, "identity2d": _identity2d}


def _estimator(problem, log_weights, **params):
    # A fixed budget of plain steps: the tests count iterations.
    defaults = dict(K=N_EQUILIBRIUM, T=1, solve_tol=None, solver="fb",
                    hypergradient="implicit", implicit_tol=1e-13,
                    implicit_max_iter=2000, init_weight=np.exp(log_weights),
                    learn_weights=False, step_scale=problem["step_scale"], dtype="float64",
                    device="cpu", batch_size=len(problem["X"]), loss="mse")
    defaults.update(params)
    return ReTuneRegularizer(problem["operator"], problem["regularizer"], **defaults)


def _loss(problem, log_weights):
    """Training loss (MSE) of the converged solve at ``exp(log_weights)``."""
    est = _estimator(problem, log_weights).fit(problem["X"], problem["y"])
    return float(np.mean((est.transform(problem["X"]) - problem["y"]) ** 2))


def _finite_differences(problem, h):
    log_weights = np.log(problem["weights"])
    grad = np.empty_like(log_weights)
    for i in range(len(grad)):
        e = np.zeros_like(log_weights)
        e[i] = h
        grad[i] = (_loss(problem, log_weights + e) - _loss(problem, log_weights - e)) / (2 * h)
    return grad


_FD_CACHE = {}


def _fd_truth(name):
    """Central FD gradient, checked against a second step size (no kink)."""
    if name not in _FD_CACHE:
        problem = PROBLEMS[name]()
        fd_coarse = _finite_differences(problem, 1e-4)
        fd_fine = _finite_differences(problem, 1e-5)
        # O(h²) truncation and O(ε/h) round-off are both far below 1e-6 here;
        # a kink inside [λe^{-h}, λe^{h}] would break the agreement.
        assert _relative_error(fd_coarse, fd_fine) < 1e-6, (fd_coarse, fd_fine)
        assert np.all(np.abs(fd_fine) > 1e-3 * np.abs(fd_fine).max()), \
            f"a weight has a (near-)zero gradient: {fd_fine}"
        _FD_CACHE[name] = fd_fine
    return _FD_CACHE[name]


def _relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _problem_tensors(problem):
    """The solver pieces the estimator builds, for hand-written references."""
    model = ForwardBackward(problem["operator"], problem["regularizer"])
    X = torch.as_tensor(problem["X"])
    y = torch.as_tensor(problem["y"])
    lipschitz = model.lipschitz(tuple(y.shape[1:]))
    return model, X, y, problem["step_scale"] / lipschitz


# --------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_no_subband_is_thresholded_to_zero(name):
    problem = PROBLEMS[name]()
    model, X, _, stepsize = _problem_tensors(problem)
    weights = torch.as_tensor(problem["weights"])
    u = model.initial_point(X)
    with torch.no_grad():
        for _ in range(N_EQUILIBRIUM):
            u = model.step(u, X, weights, stepsize)
    for g in range(len(weights)):
        # penalty(u, e_g) = ‖u_g‖₁ per sample: the ℓ1 norm of subband g.
        subband_l1 = model.regularizer.penalty(u, torch.eye(len(weights))[g].double())
        assert (subband_l1 > 0).all(), f"subband {g} is entirely zero in some sample"


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_implicit_matches_finite_differences(name):
    problem = PROBLEMS[name]()
    fd = _fd_truth(name)
    est = _estimator(problem, np.log(problem["weights"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        grad = est.compute_hypergradient(problem["X"], problem["y"], hypergradient="implicit")
    assert _cosine(grad, fd) >= 0.999
    assert _relative_error(grad, fd) < 1e-6


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_unrolled_matches_handwritten_autograd(name):
    problem = PROBLEMS[name]()
    K, T = 3, 4  # 12 iterations: far from the equilibrium, so the modes differ
    est = _estimator(problem, np.log(problem["weights"]), K=K, T=T)
    grad = est.compute_hypergradient(problem["X"], problem["y"], hypergradient="unrolled")

    model, X, y, stepsize = _problem_tensors(problem)
    log_weights = torch.tensor(np.log(problem["weights"]), requires_grad=True)
    weights = log_weights.exp()
    u = model.initial_point(X)
    for _ in range(T * K):
        u = model.step(u, X, weights, stepsize)
    loss = torch.mean((model.regularizer.synthesis(u) - y) ** 2)
    (reference,) = torch.autograd.grad(loss, log_weights)
    reference = reference.numpy()

    np.testing.assert_allclose(grad, reference, rtol=1e-10, atol=1e-14 * np.abs(reference).max())
    # The check has teeth: through the last block only (jfb) is different here.
    jfb = est.compute_hypergradient(problem["X"], problem["y"], hypergradient="jfb")
    assert _relative_error(jfb, reference) > 1e-3


def _dense_fixed_point_quantities(problem):
    """At the fixed point u*: J = ∂φ/∂u, B = ∂φ/∂log λ, g = ∇_u loss (dense)."""
    model, X, y, stepsize = _problem_tensors(problem)
    log_weights = torch.tensor(np.log(problem["weights"]))
    u = model.initial_point(X)
    with torch.no_grad():
        for _ in range(N_EQUILIBRIUM):
            u = model.step(u, X, log_weights.exp(), stepsize)
    shape = u.shape

    def phi(u_flat, logw):
        return model.step(u_flat.reshape(shape), X, logw.exp(), stepsize).flatten()

    J, B = torch.autograd.functional.jacobian(phi, (u.flatten(), log_weights))
    u_leaf = u.clone().requires_grad_(True)
    loss = torch.mean((model.regularizer.synthesis(u_leaf) - y) ** 2)
    (g,) = torch.autograd.grad(loss, u_leaf)
    return J.numpy(), B.numpy(), g.flatten().numpy(), stepsize


def _operator_matrix(operator, signal_shape):
    d = int(np.prod(signal_shape))
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *signal_shape)
    return operator.forward(basis).reshape(d, d).numpy().T


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_jfb_error_decreases_geometrically_with_K(name):
    problem = PROBLEMS[name]()
    fd = _fd_truth(name)
    Ks = [1, 2, 4, 8, 16]
    errors, grads = [], []
    for K in Ks:
        T = math.ceil(N_EQUILIBRIUM / K) + 1  # the restart point is at equilibrium
        est = _estimator(problem, np.log(problem["weights"]), K=K, T=T)
        grads.append(est.compute_hypergradient(problem["X"], problem["y"], hypergradient="jfb"))
        errors.append(_relative_error(grads[-1], fd))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-2, errors

    # Contraction factor of one step, from the extreme singular values of A
    # (the wavelet is orthonormal, so A W* has the same ones): the data term is
    # μ-strongly convex with L-Lipschitz gradient, μ = σ_min², L = σ_max².
    J, B, g, stepsize = _dense_fixed_point_quantities(problem)
    signal_shape = problem["y"].shape[1:]
    sv = np.linalg.svd(_operator_matrix(problem["operator"], signal_shape), compute_uv=False)
    mu, L = sv.min() ** 2, sv.max() ** 2
    rho = max(abs(1 - stepsize * mu), abs(1 - stepsize * L))
    assert rho < 1
    # ‖∂φ/∂u‖ ≤ ρ: the soft-threshold's Jacobian is a 0/1 diagonal (norm ≤ 1)
    # times I − τ W AᵀA W*, whose eigenvalues lie in [1 − τL, 1 − τμ].
    assert np.linalg.norm(J, 2) <= rho + 1e-12

    # Formula-level check. At the fixed point every step of the last block is
    # taken at u*, so backprop through K steps gives
    #     jfb(K) = Bᵀ Σ_{k<K} (Jᵀ)^k g,   exact = Bᵀ (I − Jᵀ)^{-1} g = Bᵀ w*,
    # hence exact − jfb(K) = Bᵀ (Jᵀ)^K w* and
    #     ‖exact − jfb(K)‖ ≤ ‖B‖ ‖J‖^K ‖w*‖ ≤ C ρ^K,  C = ‖B‖ ‖w*‖.
    n = len(g)
    w_star = np.linalg.solve(np.eye(n) - J.T, g)
    exact = B.T @ w_star
    assert _relative_error(exact, fd) < 1e-6  # the dense formula is the truth
    C = np.linalg.norm(B, 2) * np.linalg.norm(w_star) / np.linalg.norm(exact)
    series, term, k = np.zeros(n), g.copy(), 0
    for K, grad, error in zip(Ks, grads, errors):
        while k < K:  # series = Σ_{k<K} (Jᵀ)^k g
            series, term, k = series + term, J.T @ term, k + 1
        np.testing.assert_allclose(grad, B.T @ series, rtol=1e-9,
                                   atol=1e-12 * np.abs(exact).max())
        assert error <= C * rho ** K * (1 + 1e-6) + 1e-9, (K, error, C * rho ** K)
    # The bound fitted at K = 1 (C₁ = err(1)/ρ) also holds for every K. (For
    # identity2d it is an equality: J = ρ·diag(active), so the error is
    # exactly err(1)·ρ^{K-1}; the slack absorbs the FD truth's ~1e-9 error.)
    C1 = errors[0] / rho
    assert all(e <= C1 * rho ** K * (1 + 1e-5) for K, e in zip(Ks, errors)), (errors, rho)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_implicit_warns_when_adjoint_iteration_cannot_converge(name):
    problem = PROBLEMS[name]()
    est = _estimator(problem, np.log(problem["weights"]), implicit_max_iter=1,
                     implicit_tol=1e-10)
    with pytest.warns(ConvergenceWarning, match="implicit_max_iter=1"):
        grad = est.compute_hypergradient(problem["X"], problem["y"], hypergradient="implicit")
    # One adjoint iteration is exactly JFB with K = 2 at the equilibrium.
    assert np.all(np.isfinite(grad))
    assert _relative_error(grad, _fd_truth(name)) > 1e-6


@pytest.mark.parametrize("mode", ["jfb", "unrolled", "implicit"])
def test_fit_end_to_end_improves_psnr(mode):
    pytest.importorskip("skimage")
    from retune_sklearn.datasets import make_image_problem

    X_train, X_test, y_train, y_test = make_image_problem(
        None, noise_sigma=0.1, patch_size=32, n_train=16, n_test=8, random_state=0)
    # step_scale < 1: with A = I and step_scale = 1 one step is the exact
    # solution and the three modes would coincide.
    params = dict(regularizer=WaveletL1("db2", levels=2), K=5, T=4, step_scale=0.5,
                  hypergradient=mode,
                  max_epochs=6, batch_size=8, learning_rate=0.2, random_state=0,
                  device="cpu")
    initial = ReTuneRegularizer(learn_weights=False, **params).fit(X_train, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # implicit at T·K = 20
        est = ReTuneRegularizer(**params).fit(X_train, y_train)
    assert est.converged_
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    noisy = psnr(y_test, X_test)
    start = initial.score(X_test, y_test)
    learned = est.score(X_test, y_test)
    assert learned > start + 1.0, (mode, noisy, start, learned)
    assert learned > noisy + 2.0, (mode, noisy, start, learned)


# --------------------------------------------------------------- benchmark smoke
def test_benchmark_quick_mode_runs(tmp_path):
    """``benchmarks/bench_hypergradients.py --quick`` end to end (~10 s)."""
    pytest.importorskip("skimage")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_hypergradients.py"
    spec = importlib.util.spec_from_file_location("bench_hypergradients", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = bench.main(["--quick", "--quiet", "--device", "cpu", "--output", str(tmp_path)])
    report = (tmp_path / "hypergradients.md").read_text()
    assert "| K | T | T·K | mode |" in report and "Targets" in report
    assert (tmp_path / "hypergradients.json").exists()
    steps = {(r["K"], r["T"], r["mode"]): r for r in result["steps"]}
    Ks, Ts = bench.QUICK["Ks"], bench.QUICK["Ts"]
    for K in Ks:
        # Deterministic: jfb keeps the graph of K steps whatever T; unrolled of T·K.
        assert steps[K, max(Ts), "jfb"]["saved_bytes"] == steps[K, min(Ts), "jfb"]["saved_bytes"]
        assert (steps[K, max(Ts), "unrolled"]["saved_bytes"]
                > 2 * steps[K, min(Ts), "unrolled"]["saved_bytes"])
    for r in result["accuracy"]:
        assert np.isfinite(r["cos"]) and np.isfinite(r["rel_err"])
        if r["T"] == 1:  # one block: jfb is plain unrolling
            twin = next(a for a in result["accuracy"]
                        if (a["K"], a["T"], a["mode"]) == (r["K"], 1, "unrolled"))
            if r["mode"] == "jfb":
                assert abs(r["rel_err"] - twin["rel_err"]) < 1e-9
