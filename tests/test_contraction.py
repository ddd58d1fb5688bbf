"""Contraction diagnostics (``contraction_factor_``, ``block_contraction_``) and ``K="auto"``.

Truths: the exact spectral norm of the dense Jacobian of a forward–backward
step at its fixed point (tiny float64 problems), dense matrices with known
norms, and the formula ``K = ceil(log(target) / log ρ)``.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.contraction import (AUTO_DISTANCE, AUTO_K_FALLBACK, AUTO_K_MAX, AUTO_K_TARGET,
                                        choose_block_size,
                                        choose_solve_tol, estimate_contraction, jacobian_norm)
from retune_sklearn.operators import Identity, Inpainting
from retune_sklearn.persistence import load_weights, save_weights
from retune_sklearn.regularizers import L1Norm, WaveletL1
from retune_sklearn.solvers import ForwardBackward

from problems import blur1d


def _images(n=4, d=8, sigma=0.1):
    yy, xx = np.mgrid[:d, :d] / d
    y = np.stack([(np.sin(6 * xx + k) > 0) * 0.6 + 0.3 * yy for k in range(n)])
    return y + sigma * np.random.default_rng(1).standard_normal(y.shape), y


FIXED = dict(solve_tol=None, solver="fb", learn_weights=False, dtype="float64", device="cpu")


# ------------------------------------------------------------ the estimate itself
def test_jacobian_norm_of_linear_maps_is_the_spectral_norm():
    rng = np.random.default_rng(0)
    # Non-normal matrices (‖M^K‖ ≪ ‖M‖^K), one per sample: the estimate is per sample.
    mats = [np.triu(rng.standard_normal((12, 12))) * 0.3 for _ in range(3)]
    M = torch.as_tensor(np.stack(mats))

    def phi(u):
        return torch.einsum("nij,nj->ni", M, u)

    u = torch.zeros(3, 12, dtype=torch.float64)
    norms, _ = jacobian_norm(phi, u, 1, n_iter=12, rtol=0)
    np.testing.assert_allclose(norms.numpy(), [np.linalg.norm(m, 2) for m in mats], rtol=1e-8)
    block, _ = jacobian_norm(phi, u, 3, n_iter=12, rtol=0)
    np.testing.assert_allclose(block.numpy(),
                               [np.linalg.norm(np.linalg.matrix_power(m, 3), 2) for m in mats],
                               rtol=1e-8)
    # A map independent of u has a zero Jacobian.
    assert jacobian_norm(lambda v: torch.ones_like(v), u)[0].abs().max() == 0


def test_contraction_factor_matches_the_dense_jacobian_at_the_equilibrium():
    X, y, operator = blur1d(3)
    weights = np.array([0.01, 0.02, 0.03])
    K = 5
    est = ReTuneRegularizer(operator, WaveletL1("db2", levels=2), K=K, T=25,
                            init_weight=weights, batch_size=len(X), **FIXED).fit(X, y)
    assert est.K_ == K and est.K_selection_ is None
    assert est.contraction_status_ == "contractive"

    # Independent truth: the dense Jacobian of one step at u* (120 steps: 1e-15 converged).
    model = ForwardBackward(operator, WaveletL1("db2", levels=2))
    X_t = torch.as_tensor(X)
    stepsize = 1.0 / model.lipschitz((y.shape[1],))
    w = torch.as_tensor(weights)
    u = model.initial_point(X_t)
    with torch.no_grad():
        for _ in range(120):
            u = model.step(u, X_t, w, stepsize)
    step_norms, block_norms = [], []
    for i in range(len(X)):
        def step(v, i=i):
            return model.step(v.reshape(1, -1), X_t[i:i + 1], w, stepsize).flatten()
        J = torch.autograd.functional.jacobian(step, u[i].flatten()).numpy()
        step_norms.append(np.linalg.norm(J, 2))
        block_norms.append(np.linalg.norm(np.linalg.matrix_power(J, K), 2))
    # A lower bound, converged to 1e-4 (20 Lanczos iterations at most).
    assert est.contraction_factor_ <= max(step_norms) * (1 + 1e-9)
    assert est.contraction_factor_ == pytest.approx(max(step_norms), rel=2e-3)
    assert est.block_contraction_ <= max(block_norms) * (1 + 1e-9)
    assert est.block_contraction_ == pytest.approx(max(block_norms), rel=2e-2)
    assert est.block_contraction_ <= est.contraction_factor_ ** K * (1 + 1e-6)


def test_exact_one_step_solve_has_zero_factor_and_inpainting_is_non_expansive():
    X, y = _images()
    # A = I with step_scale = 1: one step is the exact minimizer, J = 0.
    est = ReTuneRegularizer(Identity(), WaveletL1("haar", levels=2), K=2, T=2,
                            **FIXED).fit(X, y)
    assert est.contraction_factor_ < 1e-6 and est.contraction_status_ == "contractive"
    # Inpainting: unobserved pixels are not pulled back (factor 1), recorded, not warned.
    operator = Inpainting(keep_prob=0.5, random_state=0)
    X_in = operator.forward(torch.as_tensor(y)).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = ReTuneRegularizer(operator, WaveletL1("haar", levels=2), K=3, T=20,
                                **FIXED).fit(X_in, y)
    assert est.contraction_factor_ == pytest.approx(1.0, abs=1e-3)
    assert est.contraction_status_ == "non-expansive"


class _ExpansiveL1(L1Norm):
    """A user's regularizer whose "prox" expands (3 × the soft threshold)."""

    def prox(self, u, thresholds, network=None):
        return 3.0 * super().prox(u, thresholds, network)


def test_expansive_block_warns_with_the_factors_and_what_to_change():
    X, y, operator = blur1d(3)
    with pytest.warns(ConvergenceWarning, match=r"block_contraction_ = .*> 1.*step_scale"):
        # A = I, step_scale = 0.5: the gradient step contracts by 0.5, the "prox" expands by 3.
        est = ReTuneRegularizer(Identity(), _ExpansiveL1(), K=2, T=3, init_weight=1e-3,
                                step_scale=0.5, **FIXED).fit(X, y)
    assert est.contraction_status_ == "expansive"
    assert est.contraction_factor_ == pytest.approx(1.5, rel=1e-3)
    assert est.block_contraction_ == pytest.approx(1.5 ** 2, rel=1e-3)


def test_not_twice_differentiable_step_is_skipped_with_a_reason():
    class Once(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            return 0.5 * u

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            return 0.5 * grad

    estimate = estimate_contraction(Once.apply, torch.ones(2, 3, dtype=torch.float64), 4)
    assert estimate.step is None and estimate.block is None
    assert estimate.status.startswith("not estimated: the step could not be differentiated")


# ------------------------------------------------------------ K="auto"
@pytest.mark.parametrize("rho, expected", [(0.0, 1), (0.5, 7), (0.7, 13), (0.9, 44),
                                           (0.91, 49), (0.912, 50),
                                           # no K ≤ AUTO_K_MAX meets the target:
                                           (0.92, AUTO_K_FALLBACK), (0.99, AUTO_K_FALLBACK),
                                           (1.0, AUTO_K_FALLBACK), (None, AUTO_K_FALLBACK),
                                           (0.1, 2), (0.01, 1)])
def test_choose_block_size_is_the_formula(rho, expected):
    assert choose_block_size(rho) == expected
    if rho is not None and 0 < rho < 1 and rho ** AUTO_K_MAX <= AUTO_K_TARGET:
        assert expected == math.ceil(math.log(AUTO_K_TARGET) / math.log(rho) - 1e-9)
        assert rho ** expected <= AUTO_K_TARGET * (1 + 1e-12) < rho ** (expected - 1)
    with pytest.raises(ValueError, match="target"):
        choose_block_size(0.5, target=1.5)


def test_auto_K_follows_the_measured_contraction_and_is_used_by_every_solve():
    X, y = _images()
    # A = I, step_scale = 0.5: one step contracts by exactly 1 − τ = 0.5, so K = 7.
    est = ReTuneRegularizer(Identity(), WaveletL1("haar", levels=2), K="auto", T=4,
                            step_scale=0.5, max_epochs=1, batch_size=4, random_state=0,
                            device="cpu").fit(X, y)
    selection = est.K_selection_
    assert selection["initial_contraction"] == pytest.approx(0.5, rel=1e-4)
    assert est.K_ == selection["K"] == choose_block_size(selection["initial_contraction"]) == 7
    assert selection["bound"] == pytest.approx(0.5 ** 7, rel=1e-3)
    assert selection["target"] == AUTO_K_TARGET and selection["fallback"] is None
    assert est.n_solve_iter_ % 7 == 0  # the final solve ran blocks of K_ = 7
    fixed = ReTuneRegularizer(Identity(), WaveletL1("haar", levels=2), K=7, T=4,
                              step_scale=0.5, max_epochs=1, batch_size=4, random_state=0,
                              device="cpu").fit(X, y)
    np.testing.assert_array_equal(est.weights_, fixed.weights_)
    np.testing.assert_array_equal(est.transform(X), fixed.transform(X))
    # compute_hypergradient before fit resolves K="auto" the same way.
    unfitted = ReTuneRegularizer(Identity(), WaveletL1("haar", levels=2), K="auto", T=4,
                                 step_scale=0.5, batch_size=4, device="cpu")
    np.testing.assert_allclose(unfitted.compute_hypergradient(X, y),
                               ReTuneRegularizer(Identity(), WaveletL1("haar", levels=2), K=7,
                                                 T=4, step_scale=0.5, batch_size=4,
                                                 device="cpu").compute_hypergradient(X, y))
    # partial_fit keeps the fitted choice.
    est.partial_fit(X, y)
    assert est.K_ == 7


def test_auto_K_falls_back_and_says_why_when_the_step_is_not_contractive(tmp_path):
    _, y = _images(n=2)
    operator = Inpainting(keep_prob=0.5, random_state=0)
    X = operator.forward(torch.as_tensor(y)).numpy()
    est = ReTuneRegularizer(operator, WaveletL1("haar", levels=2), K="auto", T=2,
                            max_epochs=1, random_state=0, device="cpu").fit(X, y)
    assert est.K_ == AUTO_K_FALLBACK
    assert est.K_selection_["initial_contraction"] == pytest.approx(1, abs=1e-3)
    assert est.K_selection_["fallback"].startswith("K='auto': the step is not contractive")
    # The new fitted attributes survive the pickle-free round trip.
    save_weights(est, tmp_path / "model.npz")
    loaded = load_weights(tmp_path / "model.npz")
    for name in ("K_", "K_selection_", "contraction_factor_", "block_contraction_",
                 "contraction_status_"):
        assert getattr(loaded, name) == getattr(est, name), name
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


def test_auto_K_target_sets_the_bound():
    X, y = _images()
    est = ReTuneRegularizer(Identity(), WaveletL1("haar", levels=2), K="auto", auto_K_target=0.1,
                            T=4, step_scale=0.5, max_epochs=1, batch_size=4, random_state=0,
                            device="cpu").fit(X, y)
    assert est.K_ == 4 == math.ceil(math.log(0.1) / math.log(0.5))  # 0.5^4 ≤ 0.1 < 0.5^3
    assert est.K_selection_["target"] == 0.1


# ------------------------------------------------------------ solve_tol="auto"
@pytest.mark.parametrize("rho, dtype, expected, distance", [
    (0.5, torch.float64, AUTO_DISTANCE * 0.5, AUTO_DISTANCE),
    (0.0, torch.float64, AUTO_DISTANCE, AUTO_DISTANCE),
    # float32 floor 100 eps: the guaranteed distance is then larger than the target.
    (0.998, torch.float32, 100 * 2.0 ** -23, 100 * 2.0 ** -23 / 2e-3),
    # Not contractive: no bound, the floor (the tolerance never loosens as ρ grows).
    (1.0, torch.float32, 100 * 2.0 ** -23, None),
    (None, torch.float64, 100 * 2.0 ** -52, None)])
def test_choose_solve_tol_is_the_formula(rho, dtype, expected, distance):
    tol, guaranteed = choose_solve_tol(rho, dtype)
    assert tol == pytest.approx(expected, rel=1e-9)
    assert guaranteed == (None if distance is None else pytest.approx(distance, rel=1e-6))


def test_auto_solve_tol_reaches_the_promised_distance_to_the_equilibrium(tmp_path):
    X, y, operator = blur1d(3)
    params = dict(regularizer=WaveletL1("db2", levels=2, penalize_approximation=False), K=2,
                  T=2000, max_epochs=2, batch_size=3, random_state=0, dtype="float64",
                  device="cpu")
    est = ReTuneRegularizer(operator, solve_tol="auto", **params).fit(X, y)
    selection = est.solve_tol_selection_
    rho = selection["initial_contraction"]
    assert 0.5 < rho < 0.75  # the problem's known contraction (≈ 0.63)
    assert est.solve_tol_ == selection["solve_tol"] == pytest.approx(AUTO_DISTANCE * (1 - rho))
    # Independent truth: the minimizer, from a solve converged to 1e-13.
    reference = est.set_params(solve_tol=1e-13).transform(X)
    reconstruction = est.set_params(solve_tol="auto").transform(X)
    distance = np.linalg.norm(reconstruction - reference, axis=1) / np.linalg.norm(reference,
                                                                                   axis=1)
    assert distance.max() <= AUTO_DISTANCE
    # Every solve of the fit used the chosen tolerance: a fit with that number is the same.
    fixed = ReTuneRegularizer(operator, solve_tol=est.solve_tol_, **params).fit(X, y)
    np.testing.assert_array_equal(fixed.weights_, est.weights_)
    assert fixed.solve_tol_ == est.solve_tol_ and fixed.solve_tol_selection_ is None
    est.partial_fit(X, y)  # keeps the fitted choice
    assert est.solve_tol_selection_ is selection
    save_weights(est, tmp_path / "model.npz")
    loaded = load_weights(tmp_path / "model.npz")
    assert loaded.solve_tol_ == est.solve_tol_
    assert loaded.solve_tol_selection_ == est.solve_tol_selection_


def test_invalid_K_string_is_rejected():
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = _images(n=2)
    with pytest.raises(InvalidParameterError, match="'K' parameter"):
        ReTuneRegularizer(K="fast").fit(X, y)
