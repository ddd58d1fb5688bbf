"""Per-sample adaptive weights (``adaptive_weights``) against independent truths.

* the statistics against PyWavelets' Haar transform (``pywt.dwt2``, ``pywt.dwt``);
* a batched solve with ``(n, G)`` weights against separate solves of each
  sample with its own ``(G,)`` weights;
* a fitted adaptive model's ``transform`` and ``weights_for`` against
  :func:`reconstruct` with the weights ``weights_ · (s_i / s_ref)^β`` computed
  from PyWavelets;
* the hypergradient in ``β`` against central finite differences of the training
  loss (float64, converged solves, implicit mode);
* with ``β = 0`` the adaptive model is the fixed-weight one, bitwise.
"""

import numpy as np
import pytest
import pywt
import torch

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.learning.adaptive import detail_energy, finest_details, noise_level
from retune_sklearn.learning.data import to_measurements
from retune_sklearn.operators import Blur, Identity, gaussian_kernel
from retune_sklearn.reconstruct import reconstruct
from retune_sklearn.regularizers import Tikhonov, TotalVariation, WaveletL1

from problems import blur1d

RNG = np.random.default_rng(0)
Y = RNG.random((6, 16, 16))
X = Y + 0.1 * RNG.standard_normal(Y.shape)


def _pywt_statistic(name, images):
    """The statistics from PyWavelets' Haar transform (periodization: no padding)."""
    values = []
    for image in images:
        if image.ndim == 1:
            details = [pywt.dwt(image, "haar", mode="periodization")[1]]
        else:
            details = list(pywt.dwt2(image, "haar", mode="periodization")[1])
        if name == "noise":
            values.append(np.median(np.abs(details[-1])) / 0.6744897501960817)
        else:
            values.append(np.sqrt(np.mean(np.concatenate([d.ravel() for d in details]) ** 2)))
    return np.array(values)


@pytest.mark.parametrize("name, function", [("noise", noise_level), ("detail", detail_energy)])
@pytest.mark.parametrize("images", [X, X[:, 0]], ids=["2d", "1d"])
def test_statistics_match_pywavelets(name, function, images):
    ndim = images.ndim - 1
    ours = function(torch.as_tensor(images), ndim).numpy()
    np.testing.assert_allclose(ours, _pywt_statistic(name, images), rtol=1e-12)


def test_finest_details_are_pywavelets_haar_details_up_to_sign():
    ours = finest_details(torch.as_tensor(X[:1]), 2)
    theirs = pywt.dwt2(X[0], "haar", mode="periodization")[1]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.abs(a[0].numpy()), np.abs(b), atol=1e-14)


def test_noise_level_estimates_the_noise_of_flat_images():
    noise = 0.05 * np.random.default_rng(2).standard_normal((4, 64, 64))
    sigma = noise_level(torch.as_tensor(0.5 + noise), 2).numpy()
    # MAD of 1024 Gaussian samples: standard error about 1.4 σ / √1024 ≈ 4 %.
    np.testing.assert_allclose(sigma, 0.05, rtol=0.15)


# A well-conditioned blur (σ_min(A) ≈ 0.6): the solves converge to 1e-10 in a few blocks.
WELL_CONDITIONED = Blur(kernel=0.6 * np.pad([[1.0]], 2) + 0.4 * gaussian_kernel(1.0, 5, 2))


@pytest.mark.parametrize("operator, regularizer", [
    (Identity(), TotalVariation(n_inner=10)),
    (WELL_CONDITIONED, WaveletL1("haar", levels=2)),
], ids=["denoising-tv", "deblurring-wavelets"])
def test_per_sample_weights_solve_is_separate_solves(operator, regularizer):
    rng = np.random.default_rng(1)
    X_b = operator.forward(torch.as_tensor(Y)).numpy() + 0.05 * rng.standard_normal(Y.shape)
    n_weights = len(regularizer.weight_names((16, 16)))
    weights = np.exp(rng.uniform(np.log(0.005), np.log(0.1), (len(Y), n_weights)))
    options = dict(K=10, T=400, tol=1e-10, dtype="float64")
    together = reconstruct(X_b, operator, regularizer, weights, batch_size=4, **options)
    apart = np.stack([reconstruct(X_b[i:i + 1], operator, regularizer, weights[i], **options)[0]
                      for i in range(len(Y))])
    np.testing.assert_allclose(together, apart, atol=1e-7)
    # The rows matter: the same solve with the weights of the first sample differs.
    shared = reconstruct(X_b, operator, regularizer, weights[0], **options)
    assert np.abs(shared - apart).max() > 1e-3


@pytest.mark.parametrize("statistic", ["noise", "detail"])
def test_transform_uses_the_weights_of_each_measurement(statistic):
    est = ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), adaptive_weights=statistic,
                            K=1, T=1, max_epochs=3, batch_size=3, learning_rate=0.2,
                            dtype="float64", random_state=0).fit(X, Y)
    assert est.adaptive_statistic_ == statistic
    assert np.all(est.weight_exponents_ != 0)  # β moved from its start
    statistic_values = _pywt_statistic(statistic, X)
    assert est.statistic_reference_ == pytest.approx(np.median(statistic_values), rel=1e-12)
    ratio = statistic_values / est.statistic_reference_
    weights = est.weights_ * ratio[:, None] ** est.weight_exponents_
    np.testing.assert_allclose(est.weights_for(X), weights, rtol=1e-10)
    expected = reconstruct(X, None, est.regularizer_, weights, K=1, T=1, dtype="float64")
    np.testing.assert_allclose(est.transform(X), expected, atol=1e-12)
    # New measurements get their own statistic (not the training reference's weights).
    expected_new = reconstruct(2 * X, None, est.regularizer_,
                               est.weights_ * (2 * ratio[:, None]) ** est.weight_exponents_,
                               K=1, T=1, dtype="float64")
    np.testing.assert_allclose(est.transform(2 * X), expected_new, atol=1e-12)


def test_zero_exponents_give_the_fixed_weight_model_bitwise():
    params = dict(regularizer=TotalVariation(n_inner=5), init_weight=0.05, learn_weights=False,
                  K=3, T=3, random_state=0)
    fixed = ReTuneRegularizer(adaptive_weights=None, **params).fit(X, Y)
    adaptive = ReTuneRegularizer(adaptive_weights="detail", **params).fit(X, Y)
    np.testing.assert_array_equal(adaptive.weight_exponents_, 0.0)
    np.testing.assert_array_equal(adaptive.transform(X), fixed.transform(X))


# ------------------------------------------------------------ β hypergradient
def test_exponent_hypergradient_matches_finite_differences():
    X_b, y, operator = blur1d(5, noise_std=np.linspace(0.02, 0.1, 5))
    est = ReTuneRegularizer(operator, WaveletL1("db2", levels=2), adaptive_weights="noise",
                            K=120, T=1, solve_tol=None, solver="fb", hypergradient="implicit",
                            implicit_tol=1e-13, implicit_max_iter=2000,
                            init_weight=np.array([0.01, 0.02, 0.03]), learn_weights=False,
                            dtype="float64", device="cpu", batch_size=len(y),
                            loss="mse").fit(X_b, y)
    beta = np.array([0.4, -0.3, 0.7])

    def loss(exponents):
        est.weight_exponents_ = exponents
        return float(np.mean((est.transform(X_b) - y) ** 2))

    fd = {}
    for h in (1e-4, 1e-5):
        fd[h] = np.array([(loss(beta + h * e) - loss(beta - h * e)) / (2 * h)
                          for e in np.eye(3)])
    assert np.linalg.norm(fd[1e-4] - fd[1e-5]) < 1e-6 * np.linalg.norm(fd[1e-5])  # no kink
    assert np.all(np.abs(fd[1e-5]) > 1e-3 * np.abs(fd[1e-5]).max())

    est.weight_exponents_ = beta
    problem = est._fitted_problem()
    theta = est._fitted_theta(problem)
    theta.exponents.requires_grad_(True)
    measurements = to_measurements(X_b, None, problem.device, problem.dtype)
    est._batch_loss(measurements, torch.as_tensor(y), problem, theta, "implicit").backward()
    grad = theta.exponents.grad.numpy()
    assert np.linalg.norm(grad - fd[1e-5]) < 1e-6 * np.linalg.norm(fd[1e-5])


def test_grid_search_chooses_among_statistics_and_partial_fit_continues():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    model = ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), K=1, T=1, max_epochs=2,
                              batch_size=3, random_state=0)
    search = GridSearchCV(model, {"adaptive_weights": [None, "noise", "detail"]}, cv=2)
    search.fit(X, Y)
    assert search.best_estimator_.adaptive_statistic_ == search.best_params_["adaptive_weights"]
    est = clone(model).set_params(adaptive_weights="detail")
    assert est.get_params()["adaptive_weights"] == "detail"
    est.partial_fit(X, Y)
    first = est.weight_exponents_.copy()
    est.partial_fit(X, Y)
    assert est.n_iter_ == 2 and not np.array_equal(est.weight_exponents_, first)


def test_initial_exponent_search_starts_at_the_best_common_exponent():
    """With learning off (tiny learning rate), the exponents are the common value
    the search chose; it beats its neighbours on the search batch (all samples
    here), each loss computed independently with the functional reconstruct."""
    est = ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), adaptive_weights="detail",
                            K=1, T=1, max_epochs=1, learning_rate=1e-12, batch_size=len(X),
                            loss="mse", dtype="float64", random_state=0).fit(X, Y)
    beta = est.weight_exponents_
    np.testing.assert_allclose(beta, np.round(2 * beta[0]) / 2, atol=1e-9)  # a grid value
    beta = np.round(2 * beta) / 2
    assert beta[0] != 0
    ratio = _pywt_statistic("detail", X) / est.statistic_reference_

    def loss(b):
        weights = est.weights_ * ratio[:, None] ** b
        return np.mean((reconstruct(X, None, est.regularizer_, weights, K=1, T=1,
                                    dtype="float64") - Y) ** 2)
    best = loss(beta[0])
    assert best < loss(0.0)
    assert best <= min(loss(beta[0] - 0.5), loss(beta[0] + 0.5))


@pytest.mark.parametrize("shape", [(1,), (1, 8), (8, 1)])
def test_signals_without_haar_details_are_refused_before_any_state_changes(shape):
    """A side of 1 has no finest Haar details (the statistic would be NaN): the
    adaptive model says so and names the way out; fixed weights fit."""
    y = RNG.random((6, *shape))
    x = y + 0.1 * RNG.standard_normal(y.shape)
    est = ReTuneRegularizer(regularizer=Tikhonov(), K=2, T=2, max_epochs=1,
                            adaptive_weights="detail")
    with pytest.raises(ValueError, match=r"adaptive_weights='detail' needs signals of at "
                                         r"least 2 entries.*adaptive_weights=None"):
        est.fit(x, y)
    assert not hasattr(est, "weights_")
    fixed = est.set_params(adaptive_weights=None).fit(x, y)
    assert np.isfinite(fixed.transform(x)).all()


def test_flat_measurements_keep_finite_weights_and_are_their_own_reconstruction():
    """A flat measurement has s = 0: with a negative exponent its weight would be
    infinite (NaN reconstructions). Bounded, it is finite, and a constant image is
    the TV-denoising minimizer for any weight (TV(c) = 0): transform returns it."""
    est = ReTuneRegularizer(regularizer=TotalVariation(), adaptive_weights="detail", K=2, T=20,
                            max_epochs=1, dtype="float64", random_state=0).fit(X, Y)
    flat = np.full((2, 16, 16), 0.5)
    for exponent in (-6.0, 6.0):  # the ends of the initial search's range
        est.weight_exponents_ = np.array([exponent])
        np.testing.assert_allclose(est.transform(flat), flat, atol=1e-12)


def test_weights_for_a_fixed_weight_model_is_weights_on_every_row():
    est = ReTuneRegularizer(regularizer=TotalVariation(), adaptive_weights=None, K=2, T=5,
                            max_epochs=1, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(est.weights_for(X), np.tile(est.weights_, (len(X), 1)))
