"""Solves to a tolerance: accelerated restarts, warm starts across epochs,
the GMRES implicit mode, diagnostics, scale invariance.

Independent truths: the fixed point of a plain forward–backward iteration
run to round-off, a dense linear solve of the adjoint system with the
Jacobian formed by autograd, and exact rescaling laws.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.hypergradients import SolveReport, restarted_solve
from retune_sklearn.operators import Blur, Identity, gaussian_kernel
from retune_sklearn.reconstruct import reconstruct
from retune_sklearn.regularizers import TotalVariation, WaveletL1
from retune_sklearn.solvers import (SOLVERS, AndersonAcceleration, FISTARestart, ForwardBackward,
                                    PlainIteration,
                                    StepParameters, relative_residual)

RNG = np.random.default_rng(0)


def _deblur_1d(n=4, d=64, sigma=2.0):
    """Ill-conditioned 1-D deblurring with an orthonormal wavelet basis (float64)."""
    t = np.linspace(0, 1, d, endpoint=False)
    y = np.stack([(t > 0.2 + 0.1 * k) * 1.0 - 0.5 * (t > 0.7) for k in range(n)])
    operator = Blur(kernel=gaussian_kernel(sigma, 13, 1))
    X = operator.forward(torch.as_tensor(y)).numpy() + 0.01 * RNG.standard_normal(y.shape)
    return X, y, operator, WaveletL1("db2", levels=3)


def _phi(X, operator, regularizer, weight=0.01, step_scale=1.0):
    model = ForwardBackward(operator, regularizer)
    X_t = torch.as_tensor(X)
    names = regularizer.weight_names(X.shape[1:])
    lipschitz = model.lipschitz(X.shape[1:])
    params = StepParameters(X_t, torch.full((len(names),), weight, dtype=torch.float64),
                            torch.tensor(step_scale / lipschitz, dtype=torch.float64), {})
    return model.step_map(params), model.initial_point(X_t), model


def test_registry_names_every_solver():
    assert SOLVERS == {"fb": PlainIteration, "fista": FISTARestart,
                       "anderson": AndersonAcceleration}


@pytest.mark.parametrize("solver", sorted(SOLVERS))  # the contract of every algorithm
def test_tolerance_stops_the_restarted_phase_at_the_fixed_point(solver):
    X, _, operator, regularizer = _deblur_1d()
    phi, u0, _ = _phi(X, operator, regularizer)
    reference = restarted_solve(phi, u0, K=1000, T=20, hypergradient="none")  # to round-off
    assert float(relative_residual(phi, reference).max()) < 1e-12
    report = SolveReport()
    u = restarted_solve(phi, u0, K=10, T=1000, hypergradient="none", tol=1e-8,
                        solver=SOLVERS[solver](), report=report)
    assert report.n_capped == 0 and report.residuals[-1] <= 1e-8
    assert report.iterations[-1] < 10 * 1000
    # A residual of 1e-8 at contraction factor ρ bounds the distance by 1e-8/(1−ρ)·‖u‖.
    distance = float((u - reference).norm() / reference.norm())
    assert distance < 1e-5


def test_fista_needs_fewer_iterations_than_plain_forward_backward():
    X, _, operator, regularizer = _deblur_1d()
    phi, u0, _ = _phi(X, operator, regularizer)
    iterations = {}
    for name in ("fb", "fista"):
        report = SolveReport()
        restarted_solve(phi, u0, K=5, T=2000, hypergradient="none", tol=1e-7,
                        solver=SOLVERS[name](), report=report)
        assert report.n_capped == 0
        iterations[name] = report.iterations[-1]
    assert iterations["fista"] * 2 < iterations["fb"], iterations


def test_without_tolerance_every_solve_runs_exactly_T_times_K():
    X, _, operator, regularizer = _deblur_1d()
    phi, u0, _ = _phi(X, operator, regularizer)
    report = SolveReport()
    restarted_solve(phi, u0, K=3, T=7, hypergradient="none", solver=FISTARestart(),
                    report=report)
    assert report.iterations == [21] and report.residuals == []


def test_a_start_at_the_equilibrium_costs_only_the_last_block():
    X, _, operator, regularizer = _deblur_1d()
    phi, u0, _ = _phi(X, operator, regularizer)
    u_star = restarted_solve(phi, u0, K=1000, T=5, hypergradient="none")
    report = SolveReport()
    restarted_solve(phi, u_star, K=4, T=50, hypergradient="none", tol=1e-6, report=report)
    assert report.iterations == [4]


def test_cap_reached_above_tolerance_is_counted():
    X, _, operator, regularizer = _deblur_1d()
    phi, u0, _ = _phi(X, operator, regularizer)
    report = SolveReport()
    restarted_solve(phi, u0, K=2, T=3, hypergradient="none", tol=1e-12, report=report)
    assert report.n_capped == 1 and report.residuals[-1] > 1e-12


# ------------------------------------------------------------------ implicit (GMRES)
@pytest.mark.parametrize("implicit_solver", ["gmres", "cg"])
def test_implicit_gradient_solves_the_adjoint_system_exactly(implicit_solver):
    """Against (I − Jᵀ)⁻¹ g with J formed densely by autograd, at an
    ill-conditioned fixed point where the old fixed-point iteration stalled;
    CG on the active set is valid here (wavelet ℓ1 + quadratic data)."""
    X, y, operator, regularizer = _deblur_1d(n=1)
    model = ForwardBackward(operator, regularizer)
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    lipschitz = model.lipschitz(X.shape[1:])
    log_weights = torch.full((4,), np.log(0.005), dtype=torch.float64, requires_grad=True)

    def phi(u):
        params = StepParameters(X_t, log_weights.exp(),
                                torch.tensor(1.0 / lipschitz, dtype=torch.float64), {})
        return model.step_map(params)(u)

    u0 = model.initial_point(X_t)
    report = SolveReport()
    u = restarted_solve(phi, u0, K=2000, T=3, hypergradient="implicit", implicit_tol=1e-12,
                        implicit_max_iter=500, implicit_solver=implicit_solver, report=report)
    loss = torch.mean((regularizer.synthesis(u) - y_t) ** 2)
    grad, = torch.autograd.grad(loss, log_weights)

    u_star = u.detach()
    jacobian = torch.autograd.functional.jacobian(lambda v: phi(v.reshape(u_star.shape))
                                                  .reshape(-1), u_star.reshape(-1))
    g = torch.autograd.grad(torch.mean((regularizer.synthesis(u_star.requires_grad_()) - y_t)
                                       ** 2), u_star)[0].reshape(-1)
    w = torch.linalg.solve(torch.eye(len(g), dtype=torch.float64) - jacobian.T, g)
    u_leaf = u_star.detach()
    reference, = torch.autograd.grad(phi(u_leaf).reshape(-1), log_weights, w)
    error = float((grad - reference).norm() / reference.norm())
    assert error < 1e-8, error
    assert report.adjoint_solves == 1 and report.adjoint_failures == 0


def test_implicit_fit_warns_once_when_the_adjoint_misses_its_tolerance():
    X, y, operator, regularizer = _deblur_1d(n=8)
    est = ReTuneRegularizer(operator, regularizer, K=5, T=20, hypergradient="implicit",
                            implicit_max_iter=1, implicit_tol=1e-12, max_epochs=3,
                            batch_size=2, dtype="float64", random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    adjoint = [w for w in caught if issubclass(w.category, ConvergenceWarning)
               and "implicit backward" in str(w.message)]
    assert len(adjoint) == 1 and "12 of 12" in str(adjoint[0].message)
    assert adjoint[0].filename == __file__  # points at the user's fit call


# ------------------------------------------------------------------ the estimator
def _images(n=12, d=16, sigma=0.1):
    yy, xx = np.mgrid[:d, :d] / d
    y = np.stack([(np.sin(6 * xx + k) > 0) * 0.6 + 0.3 * yy for k in range(n)])
    return y + sigma * RNG.standard_normal(y.shape), y


def test_training_solves_start_from_the_previous_iterates():
    X, y = _images()
    # A small learning rate: the equilibria move little between outer steps.
    # Periodic TV: on this periodic blur it reaches the tolerance in 3/4 of the
    # iterations of the default Neumann TV (test time); the boundary is not under test.
    params = dict(operator=Blur(sigma=1.0, size=5),
                  regularizer=TotalVariation(boundary="periodic"), K=5, T=200,
                  max_epochs=4, batch_size=4, learning_rate=0.01, random_state=0,
                  solve_tol=1e-5)
    reused = ReTuneRegularizer(**params).fit(X, y)
    cold = ReTuneRegularizer(**params, reuse_iterates=False).fit(X, y)
    assert reused.training_solve_iter_ < 0.8 * cold.training_solve_iter_, (
        reused.training_solve_iter_, cold.training_solve_iter_)
    # Same equilibrium model, so nearly the same learned weights and outputs.
    np.testing.assert_allclose(reused.weights_, cold.weights_, rtol=0.05)
    # partial_fit keeps the iterates, fit drops them, pickling leaves them out.
    bank = reused._iterate_bank
    reused.partial_fit(X, y)
    assert reused._iterate_bank is bank
    assert "_iterate_bank" not in pickle.loads(pickle.dumps(reused)).__dict__
    reused.fit(X, y)
    assert reused._iterate_bank is not bank


def test_fixed_budget_ignores_the_iterates():
    X, y = _images()
    est = ReTuneRegularizer(K=2, T=3, solve_tol=None, max_epochs=1,
                            regularizer=WaveletL1("haar", levels=2)).fit(X, y)
    assert est._iterate_bank is None and est.n_solve_iter_ == 6


def test_transform_reaches_the_training_equilibrium_and_reports_it():
    X, y = _images()
    est = ReTuneRegularizer(operator=Blur(sigma=1.0, size=5),
                            regularizer=TotalVariation(boundary="periodic"),  # as above
                            K=5, T=400, solve_tol=1e-6, max_epochs=2, batch_size=4,
                            dtype="float64", random_state=0).fit(X, y)
    assert est.fixed_point_residual_ <= 1e-6 and est.n_solve_iter_ < 5 * 400
    longer = reconstruct(X, est.operator_, est.regularizer_, est.weights_, K=5, T=4000,
                         tol=1e-10, solver="fb", dtype="float64")
    np.testing.assert_allclose(est.transform(X), longer, atol=1e-3)


def test_functional_reconstruct_equals_transform():
    X, y = _images()
    est = ReTuneRegularizer(regularizer=TotalVariation(), K=3, T=50, max_epochs=1,
                            random_state=0).fit(X, y)
    out = reconstruct(X, None, TotalVariation(), est.weights_, K=3, T=50, tol=est.solve_tol)
    np.testing.assert_allclose(out, est.transform(X), rtol=1e-6, atol=1e-6)


def test_cap_above_tolerance_warns_at_fit():
    X, y = _images()
    with pytest.warns(ConvergenceWarning, match="stopped at the cap of T=2"):
        ReTuneRegularizer(operator=Blur(sigma=1.0, size=5), regularizer=TotalVariation(),
                          K=2, T=2, max_epochs=1, solve_tol=1e-9).fit(X, y)


def test_learning_is_invariant_to_the_scale_of_the_data():
    """Weights scale with the data (λ is in the units of X); nothing else changes."""
    X, y = _images()
    params = dict(regularizer=TotalVariation(), K=3, T=30, max_epochs=3, batch_size=4,
                  dtype="float64", random_state=0)
    reference = ReTuneRegularizer(**params).fit(X, y)
    small = ReTuneRegularizer(**params).fit(1e-3 * X, 1e-3 * y)
    assert not np.allclose(reference.weights_, 0.1 * 0.1 * np.ones(1))  # it learned
    np.testing.assert_allclose(small.weights_, 1e-3 * reference.weights_, rtol=1e-6)


def test_huge_learning_rate_is_a_divergence_not_an_error():
    X, y = _images()
    with pytest.warns(ConvergenceWarning, match="diverged"):
        est = ReTuneRegularizer(regularizer=TotalVariation(), K=2, T=3, max_epochs=2,
                                learning_rate=1e39).fit(X, y)
    assert not est.converged_ and np.isfinite(est.transform(X)).all()


@pytest.mark.parametrize("step_scale", [2 - 1e-9, 1e-30])
def test_step_scale_near_the_bounds_keeps_its_value_in_float32(step_scale):
    X, y = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the tiny step cannot converge
        est = ReTuneRegularizer(regularizer=TotalVariation(), K=2, T=3, max_epochs=1,
                                step_scale=step_scale).fit(X, y)
    assert est.converged_ and 0 < est.step_scale_ < 2
    assert est.step_scale_ == pytest.approx(step_scale, rel=1e-6)


# ------------------------------------------------------------------ scale search
def test_scale_search_starts_at_the_best_common_scale():
    """The searched start beats its half-octave neighbours on the training loss,
    each loss computed independently with the functional ``reconstruct``."""
    X, y = _images(n=6)
    est = ReTuneRegularizer(regularizer=TotalVariation(), K=3, T=50, max_epochs=1,
                            learning_rate=1e-12, batch_size=len(X), dtype="float64",
                            random_state=0).fit(X, y)
    plain = ReTuneRegularizer(regularizer=TotalVariation(), K=3, T=50, max_epochs=1,
                              learning_rate=1e-12, batch_size=len(X), dtype="float64",
                              scale_search=False).fit(X, y)
    assert est.init_scale_ != 1.0 and plain.init_scale_ == 1.0
    np.testing.assert_allclose(est.weights_, plain.weights_ * est.init_scale_, rtol=1e-9)

    def loss(weights):
        out = reconstruct(X, None, TotalVariation(), weights, K=3, T=50, tol=est.solve_tol,
                          dtype="float64")
        return np.mean((out - y) ** 2)
    best = loss(est.weights_)
    assert best <= loss(est.weights_ * 2 ** 0.5) and best <= loss(est.weights_ / 2 ** 0.5)
    assert best < loss(plain.weights_)


def test_two_epochs_learn_far_above_the_noisy_input():
    X, y = _images(n=16, d=32)
    est = ReTuneRegularizer(regularizer=TotalVariation(), max_epochs=2, batch_size=8,
                            random_state=0).fit(X, y)
    noisy = 10 * np.log10(1 / np.mean((X - y) ** 2))
    assert est.score(X, y) > noisy + 5


def test_nearest_starts_hand_out_copies_of_the_nearest_evaluated_point():
    from retune_sklearn.learning.warm_start import NearestStarts

    starts = NearestStarts(2)
    first = starts.bank_near(torch.tensor([0.0]))
    assert first.start(torch.tensor([0, 1]), torch.zeros(2, 3)).abs().sum() == 0  # cold
    first.store(torch.tensor([0, 1]), torch.ones(2, 3))
    starts.bank_near(torch.tensor([5.0])).store(torch.tensor([0, 1]), torch.full((2, 3), 5.0))
    near_first = starts.bank_near(torch.tensor([1.0]))
    assert torch.equal(near_first.start(torch.tensor([1]), torch.zeros(1, 3)), torch.ones(1, 3))
    near_first.store(torch.tensor([1]), torch.full((1, 3), 2.0))  # a copy: first is unchanged
    assert torch.equal(first.start(torch.tensor([1]), torch.zeros(1, 3)), torch.ones(1, 3))


def test_warm_started_scale_search_chooses_the_cold_searchs_scale():
    """Each solve of the search starts from its neighbour's equilibrium; the solves run
    to a tolerance, so the chosen factor (and the fit) is that of cold solves."""
    X, y = _images(n=3, d=12)
    common = dict(operator=Blur(sigma=0.7, size=3), regularizer=WaveletL1("haar", levels=2),
                  K=3, T=100, max_epochs=1, learning_rate=1e-12, dtype="float64",
                  solve_tol=1e-6, random_state=0)
    warm = ReTuneRegularizer(**common).fit(X, y)
    cold = ReTuneRegularizer(**common, reuse_iterates=False).fit(X, y)
    assert warm.init_scale_ == cold.init_scale_ != 1.0
    np.testing.assert_allclose(warm.weights_, cold.weights_, rtol=1e-6)


# ------------------------------------------------------------------ warm TV dual
def _tv_deblurring(n_inner_warm, n_inner=20):
    rng = np.random.default_rng(4)
    xx = np.mgrid[:8, :8][1] / 8
    X = np.stack([(xx > 0.3 + 0.2 * k) * 1.0 + 0.1 * rng.standard_normal((8, 8))
                  for k in range(2)])
    regularizer = TotalVariation(n_inner=n_inner, n_inner_warm=n_inner_warm)
    return _phi(X, Blur(sigma=0.7, size=5), regularizer, weight=0.02)[:2]


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_warm_tv_dual_reaches_the_exact_minimizer(solver):
    """The warm (primal, dual) iteration's fixed point is the exact minimizer: the
    fixed-point residual of a step whose prox is 3000 cold FGP iterations (the
    independent truth) is tiny there, while the fixed point of the default 20
    cold inner iterations is measurably off."""
    phi_exact, u0 = _tv_deblurring(None, n_inner=3000)
    phi_cold, _ = _tv_deblurring(None)
    cold = restarted_solve(phi_cold, u0, K=10, T=50, hypergradient="none", tol=1e-8,
                           solver=FISTARestart())
    phi, _ = _tv_deblurring(1)
    report = SolveReport()
    u, last_map = restarted_solve(phi, u0, K=10, T=300, hypergradient="none", tol=1e-8,
                                  solver=SOLVERS[solver](), report=report, return_map=True)
    assert report.n_capped == 0
    assert float(relative_residual(last_map, u).max()) < 1e-7  # the last block's fixed map
    exact, off = (float(relative_residual(phi_exact, v).max()) for v in (u, cold))
    assert exact < 1e-6 < 1e-5 < off, (exact, off)


def test_the_last_block_continues_the_warm_primal_dual_iteration():
    """With the warm dual, JFB differentiates K steps of the joint (primal, dual)
    iteration from the state the restarted blocks reached (checked against that
    loop written out), not K full inner solves from a frozen dual."""
    phi, u0 = _tv_deblurring(2)
    weights = phi.params.weights.requires_grad_()
    u = restarted_solve(phi, u0, K=3, T=3, hypergradient="jfb", solver=PlainIteration())
    with torch.no_grad():
        v, dual = u0, None
        for _ in range(6):  # the two restarted blocks
            v, dual = phi.warm(v, dual)
    start, frozen_dual = v, dual
    for _ in range(3):
        v, dual = phi.warm(v, dual)
    torch.testing.assert_close(u, v, rtol=0, atol=1e-14)
    (gradient,) = torch.autograd.grad(u.square().sum(), weights)
    (expected,) = torch.autograd.grad(v.square().sum(), weights)
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=0)
    anchored = start
    for _ in range(3):
        anchored = phi.anchored(frozen_dual)(anchored)
    assert float((anchored - u).abs().max()) > 1e-6  # the other reading of "last block"


def test_anderson_solves_a_linear_fixed_point_like_gmres():
    """On an affine contraction u ↦ M u + c of dimension 4, Anderson with memory 5
    is GMRES in disguise (Walker & Ni): the exact fixed point (I − M)⁻¹ c in a
    handful of iterations, where the plain iteration (ρ = 0.99) is far off."""
    rng = np.random.default_rng(5)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    M = torch.as_tensor(Q @ np.diag([0.99, 0.9, 0.5, 0.1]) @ Q.T)
    c = torch.as_tensor(rng.standard_normal((2, 4)))

    def phi(u):
        return u @ M.T + c
    exact = torch.linalg.solve(torch.eye(4, dtype=torch.float64) - M, c.T).T
    u0 = torch.zeros_like(c)
    anderson = AndersonAcceleration().run(AndersonAcceleration().init_state(u0), phi, 8)["u"]
    plain = PlainIteration().run(PlainIteration().init_state(u0), phi, 8)["u"]
    assert float((anderson - exact).norm() / exact.norm()) < 1e-8
    assert float((plain - exact).norm() / exact.norm()) > 0.1


@pytest.mark.parametrize("regularizer", [TotalVariation(), WaveletL1("haar", levels=2)])
def test_denoising_at_unit_step_is_solved_in_one_exact_step(regularizer):
    # Identity, no mask, τ = 1: φ(u) = prox(W y) whatever u, so the fixed point is one step.
    X, y = _images()
    est = ReTuneRegularizer(regularizer=regularizer, K=4, max_epochs=1, batch_size=4,
                            dtype="float64", random_state=0).fit(X, y)
    assert est.n_solve_iter_ == 1 and est.fixed_point_residual_ <= 1e-14  # rounding only
    assert est.contraction_factor_ == 0.0 and est.lipschitz_ == 1.0
    # Independent truth: the prox applied to the data, and the plain iteration run long.
    thresholds = torch.as_tensor(est.weights_, dtype=torch.float64)
    analysis = est.regularizer_.analysis(torch.as_tensor(X))
    direct = est.regularizer_.synthesis(est.regularizer_.prox(analysis, thresholds)).numpy()
    np.testing.assert_allclose(est.transform(X), direct, rtol=0, atol=1e-12)
    long_run = reconstruct(X, None, regularizer, est.weights_, K=4, T=25, tol=None, solver="fb",
                           dtype="float64")
    np.testing.assert_allclose(est.transform(X), long_run, rtol=0, atol=1e-12)


@pytest.mark.parametrize("regularizer", [TotalVariation(), WaveletL1("db2", levels=2)])
def test_the_one_step_hypergradient_equals_the_differentiated_fixed_budget_solve(regularizer):
    X, y = _images(n=4)
    common = dict(regularizer=regularizer, K=3, T=2, max_epochs=1, dtype="float64",
                  init_weight=0.05, scale_search=False, learn_weights=False, random_state=0)
    one_step = ReTuneRegularizer(**common).fit(X, y)
    budget = ReTuneRegularizer(**common, solve_tol=None, solver="fb").fit(X, y)
    for mode in ("jfb", "implicit"):
        gradient = one_step.set_params(hypergradient=mode).compute_hypergradient(X, y)
        np.testing.assert_allclose(gradient, budget.compute_hypergradient(X, y), rtol=1e-9)


@pytest.mark.parametrize("learned_step", [False, True])
def test_a_constant_maps_shortcut_equals_the_full_step_in_value_and_gradient(learned_step):
    """``constant_value`` skips the gradient step of a constant map: from a start that
    is not ``W y`` it must still give ``φ(u)`` and its derivatives in the weights (and in
    ``τ`` when the step size is learned: then the gradient step is kept)."""
    X, _ = _images(n=3)
    model = ForwardBackward(Identity(), WaveletL1("db2", levels=2))
    model.check_identity_gram(X.shape[1:])
    n_weights = len(model.regularizer.weight_names(X.shape[1:]))
    weights = torch.full((n_weights,), 0.05, dtype=torch.float64, requires_grad=True)
    stepsize = torch.tensor(1.0, dtype=torch.float64, requires_grad=learned_step)
    phi = model.step_map(StepParameters(torch.as_tensor(X), weights, stepsize, {}))
    assert phi.is_constant
    u = torch.as_tensor(RNG.standard_normal(model.initial_point(torch.as_tensor(X)).shape))
    shortcut, full = phi.constant_value(u), phi(u)
    torch.testing.assert_close(shortcut, full, rtol=0, atol=1e-12)
    inputs = (weights, stepsize) if learned_step else (weights,)
    for got, expected in zip(torch.autograd.grad(shortcut.square().sum(), inputs),
                             torch.autograd.grad(full.square().sum(), inputs)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("change", [dict(step_scale=0.9), dict(operator=Blur(sigma=1.0, size=5)),
                                    dict(regularizer=WaveletL1("haar", levels=2,
                                                               translation_invariant=True)),
                                    dict(mask=True)])
def test_other_steps_depend_on_their_input_and_are_iterated(change):
    X, y = _images()
    change = dict(change)
    mask = (RNG.random(X.shape) < 0.5).astype(float) if change.pop("mask", False) else None
    params = {**dict(regularizer=TotalVariation(), K=2, max_epochs=1, batch_size=4,
                     random_state=0), **change}
    est = ReTuneRegularizer(**params).fit(X, y, mask=mask)
    assert est.n_solve_iter_ > 2 and est.fixed_point_residual_ > 0


def test_the_bank_keeps_the_warm_tv_dual_across_epochs():
    from retune_sklearn.learning.warm_start import IterateBank

    bank = IterateBank(3)
    u, dual = torch.ones(2, 4, 4), torch.full((2, 2, 4, 4), 0.5)
    bank.store(torch.tensor([0, 2]), u, dual)
    started = bank.start_inner(torch.tensor([2, 1]), u)
    assert torch.equal(started[0], dual[1]) and torch.equal(started[1], torch.zeros(2, 4, 4))
    assert IterateBank(3).start_inner(torch.tensor([0]), u) is None  # nothing stored: cold

    X, y = _images(n=8)
    est = ReTuneRegularizer(operator=Blur(sigma=1.0, size=5),
                            regularizer=TotalVariation(boundary="periodic", n_inner_warm=2),
                            K=5, T=50, max_epochs=1, batch_size=4, random_state=0).fit(X, y)
    assert est._iterate_bank._inner.shape == (8, 2, 16, 16)  # one dual per sample, 2 axes
    assert torch.count_nonzero(est._iterate_bank._inner) > 0
