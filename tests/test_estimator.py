"""ReTuneRegularizer: closed forms, learning, and scikit-learn integration."""

import pickle

import numpy as np
import pytest
import pywt
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import load_image_patches
from retune_sklearn.metrics import psnr
from retune_sklearn.operators import Blur, Inpainting
from retune_sklearn.regularizers import WaveletL1

SIGMA = 0.1
REG = WaveletL1("db2", levels=2)


@pytest.fixture(scope="module")
def denoising():
    """32×32 patches, train and test from different source images."""
    rng = np.random.default_rng(0)
    y_train = load_image_patches("train", patch_size=32, n_patches=48, random_state=0)
    y_test = load_image_patches("test", patch_size=32, n_patches=24, random_state=1)
    X_train = y_train + SIGMA * rng.standard_normal(y_train.shape)
    X_test = y_test + SIGMA * rng.standard_normal(y_test.shape)
    return X_train, X_test, y_train, y_test


def pywt_soft_threshold_denoiser(X, thresholds, wavelet, levels):
    """Independent reference: pywt analysis, per-subband soft threshold, synthesis."""
    out = []
    for image in X:
        coeffs = pywt.wavedec2(image, wavelet, mode="periodization", level=levels)
        new = [pywt.threshold(coeffs[0], thresholds[0], mode="soft")]
        k = 1
        for cH, cV, cD in coeffs[1:]:
            new.append(tuple(pywt.threshold(c, t, mode="soft")
                             for c, t in zip((cH, cV, cD), thresholds[k:k + 3])))
            k += 3
        out.append(pywt.waverec2(new, wavelet, mode="periodization"))
    return np.array(out)


def test_identity_denoiser_is_subband_soft_thresholding(denoising):
    X_train, _, y_train, _ = denoising
    weights = np.linspace(0.01, 0.2, 7)  # a2, (h2, v2, d2), (h1, v1, d1)
    est = ReTuneRegularizer(regularizer=REG, init_weight=weights, learn_weights=False,
                            K=3, T=2, dtype="float64").fit(X_train, y_train)
    assert est.weight_names_ == ["a2", "h2", "v2", "d2", "h1", "v1", "d1"]
    # pywt's cH is our "h"; the 2-D names follow pywt's (cH, cV, cD) order.
    expected = pywt_soft_threshold_denoiser(X_train, weights, "db2", 2)
    np.testing.assert_allclose(est.transform(X_train), expected, atol=1e-10)


def test_blur_solve_reaches_the_minimizer(denoising):
    """After many iterations the output is a fixed point with minimal energy."""
    _, X_test, _, _ = denoising
    kernel = np.zeros((3, 3))
    kernel[1, 1] = 0.8
    kernel += 0.2 / 9  # well conditioned: σ_min(A) ≥ 0.6, so FB contracts fast
    operator = Blur(kernel=kernel)
    X = operator.forward(torch.as_tensor(X_test[:4])).numpy()
    est = ReTuneRegularizer(operator=operator, regularizer=REG, init_weight=0.02,
                            learn_weights=False, K=25, T=4, dtype="float64").fit(X, X_test[:4])
    assert est.fixed_point_residual_ < 1e-10
    from retune_sklearn.solvers import ForwardBackward

    model = ForwardBackward(operator, REG)
    weights = torch.full((7,), 0.02, dtype=torch.float64)
    u_star = REG.analysis(torch.as_tensor(est.transform(X)))
    X_t = torch.as_tensor(X)
    energy = model.energy(u_star, X_t, weights)
    rng = torch.Generator().manual_seed(0)
    for _ in range(5):
        perturbed = u_star + 1e-3 * torch.randn(u_star.shape, generator=rng, dtype=torch.float64)
        assert torch.all(model.energy(perturbed, X_t, weights) > energy)


def pooled_mse(model, X, y):
    return np.mean((model.predict(X) - y) ** 2)


def best_scalar_lambda(X_train, y_train, grid, scoring=None):
    """The best single threshold of the same model (approximation unpenalized,
    as the learned model ends up: a fair baseline), by grid search."""
    scalar = WaveletL1("db2", 2, weights="scalar", penalize_approximation=False)
    search = GridSearchCV(ReTuneRegularizer(regularizer=scalar, learn_weights=False, K=1, T=2),
                          {"init_weight": list(grid)}, cv=2, scoring=scoring)
    return search.fit(X_train, y_train)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mse", "psnr"])
def test_fit_improves_psnr_and_beats_best_scalar(denoising, loss):
    X_train, X_test, y_train, y_test = denoising
    est = ReTuneRegularizer(regularizer=WaveletL1("db2", 2, penalize_approximation=False),
                            K=2, T=2, loss=loss, learning_rate=0.1, max_epochs=25,
                            batch_size=8, random_state=0).fit(X_train, y_train)
    # Each model is selected and compared by the criterion its fit minimizes.
    grid = np.geomspace(0.01, 0.5, 20)
    if loss == "mse":  # pooled squared error
        scalar = best_scalar_lambda(X_train, y_train, grid,
                                    scoring=lambda *args: -pooled_mse(*args))
        assert pooled_mse(est, X_test, y_test) < pooled_mse(scalar.best_estimator_, X_test,
                                                            y_test)
    else:  # mean PSNR, which score reports
        scalar = best_scalar_lambda(X_train, y_train, grid)
        assert est.score(X_test, y_test) > scalar.score(X_test, y_test)
    assert est.score(X_test, y_test) > psnr(y_test, X_test) + 5.0
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert est.weights_.shape == (6,) and np.all(est.weights_ > 0)
    assert est.n_iter_ == 25 and est.converged_


@pytest.mark.slow
def test_defaults_beat_bayes_shrink_on_denoising(denoising):
    """Issue 11: ``ReTuneRegularizer()`` beats the tool a denoising user would pick."""
    pytest.importorskip("skimage")
    from retune_sklearn.baselines import bayes_shrink

    X_train, X_test, y_train, y_test = denoising
    est = ReTuneRegularizer(random_state=0).fit(X_train, y_train)
    assert type(est.regularizer_).__name__ == "TotalVariation" and est.K_ == 1
    baseline = psnr(y_test, bayes_shrink(X_test, SIGMA, levels=2))  # db4: 2 levels on 32×32
    assert est.score(X_test, y_test) > baseline + 0.5, (est.score(X_test, y_test), baseline)


def test_output_layout_follows_y(denoising):
    X_train, _, y_train, _ = denoising
    n = 8
    params = dict(regularizer=REG, K=1, T=2, max_epochs=1)
    # (n, H, W) images.
    images = ReTuneRegularizer(**params).fit(X_train[:n], y_train[:n])
    assert images.transform(X_train[:n]).shape == (n, 32, 32)
    # Flat (n, d) arrays with signal_shape: same reconstructions, flat layout.
    flat = ReTuneRegularizer(signal_shape=(32, 32), **params).fit(
        X_train[:n].reshape(n, -1), y_train[:n].reshape(n, -1))
    out = flat.transform(X_train[:n].reshape(n, -1))
    assert out.shape == (n, 32 * 32) and flat.n_features_in_ == 32 * 32
    np.testing.assert_allclose(out, images.transform(X_train[:n]).reshape(n, -1), atol=1e-6)
    # Channels (n, C, H, W) and 1-D signals (n, d).
    color = np.stack([X_train[:n]] * 3, axis=1)
    assert ReTuneRegularizer(**params).fit(color, color).transform(color).shape == color.shape
    signals = X_train[:n, 0, :]
    est = ReTuneRegularizer(regularizer=WaveletL1("db2", 2), K=1, T=2, max_epochs=1)
    assert est.fit(signals, signals).transform(signals).shape == (n, 32)
    assert est.weight_names_ == ["a2", "d2", "d1"]


def test_dtype_follows_input(denoising):
    X_train, _, y_train, _ = denoising
    est = ReTuneRegularizer(regularizer=REG, K=1, T=1, max_epochs=1).fit(X_train[:4], y_train[:4])
    assert est.transform(X_train[:4].astype(np.float32)).dtype == np.float32
    assert est.transform(X_train[:4]).dtype == np.float64


def test_inpainting_fit_improves_over_zero_filled_input(denoising):
    _, _, y_train, _ = denoising
    operator = Inpainting(keep_prob=0.7, random_state=0)
    y = y_train[:16]
    X = operator.forward(torch.as_tensor(y)).numpy() + 0.01 * np.random.default_rng(0).standard_normal(y.shape)
    est = ReTuneRegularizer(operator=operator, regularizer=REG, K=10, T=3, max_epochs=15,
                            batch_size=8, learning_rate=0.2, random_state=0).fit(X, y)
    assert est.score(X, y) > psnr(y, X) + 3.0


def test_clone_get_set_params():
    est = ReTuneRegularizer(operator=Blur(sigma=1.0), regularizer=WaveletL1(levels=2), K=3)
    params = est.get_params()
    assert params["operator__sigma"] == 1.0 and params["regularizer__levels"] == 2
    est.set_params(K=7, regularizer__levels=1, operator__sigma=2.0)
    assert est.K == 7 and est.regularizer.levels == 1 and est.operator.sigma == 2.0
    copy = clone(est)
    assert copy.get_params()["regularizer__levels"] == 1
    assert copy.regularizer is not est.regularizer


def test_grid_search_over_K_and_T(denoising):
    X_train, _, y_train, _ = denoising
    search = GridSearchCV(ReTuneRegularizer(regularizer=REG, max_epochs=1, batch_size=8),
                          {"K": [1, 2], "T": [1, 2], "regularizer__levels": [1, 2]}, cv=2)
    search.fit(X_train[:16], y_train[:16])
    assert set(search.best_params_) == {"K", "T", "regularizer__levels"}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_pipeline_with_preceding_step(denoising):
    X_train, _, y_train, _ = denoising
    pipe = make_pipeline(FunctionTransformer(np.clip, kw_args={"a_min": -0.5, "a_max": 1.5}),
                         ReTuneRegularizer(regularizer=REG, K=1, T=2, max_epochs=2))
    pipe.fit(X_train[:8], y_train[:8])
    assert pipe.predict(X_train[:8]).shape == (8, 32, 32)
    assert np.isfinite(pipe.score(X_train[:8], y_train[:8]))


def test_pickle_round_trip_gives_identical_output(denoising):
    X_train, X_test, y_train, _ = denoising
    est = ReTuneRegularizer(operator=Blur(sigma=1.0), regularizer=REG, K=2, T=2,
                            max_epochs=2).fit(X_train[:8], y_train[:8])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X_test), est.transform(X_test))
    np.testing.assert_array_equal(restored.weights_, est.weights_)


def test_each_loss_wins_on_its_own_criterion(denoising):
    """loss="psnr" maximizes the mean per-sample PSNR, loss="mse" the pooled MSE."""
    X_train, _, y_train, _ = denoising
    params = dict(regularizer=REG, K=1, T=2, learning_rate=0.1, max_epochs=25,
                  batch_size=8, random_state=0)
    by_mse = ReTuneRegularizer(loss="mse", **params).fit(X_train, y_train)
    by_psnr = ReTuneRegularizer(loss="psnr", **params).fit(X_train, y_train)

    def pooled_mse(est):
        return np.mean((est.transform(X_train) - y_train) ** 2)
    assert by_psnr.score(X_train, y_train) > by_mse.score(X_train, y_train)
    assert pooled_mse(by_mse) < pooled_mse(by_psnr)
