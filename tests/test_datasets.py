"""Tests of retune_sklearn.datasets and retune_sklearn.baselines."""

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from skimage.metrics import peak_signal_noise_ratio  # noqa: E402

from retune_sklearn import baselines  # noqa: E402
from retune_sklearn.datasets import (  # noqa: E402
    TEST_IMAGES,
    TRAIN_IMAGES,
    load_image_patches,
    make_denoising_problem,
    make_image_problem,
    make_sparse_signal_problem,
)


class Half:
    """Stand-in operator: multiplies by 0.5."""

    def forward(self, x):
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
        return 0.5 * x


def test_train_test_sources_disjoint():
    assert set(TRAIN_IMAGES).isdisjoint(TEST_IMAGES)
    # skimage.data.cat is the same photo as chelsea.
    assert not ({"cat", "chelsea"} <= set(TRAIN_IMAGES) | set(TEST_IMAGES))


@pytest.mark.parametrize("images", ["train", "test", ["camera", "moon"]])
def test_patches_gray_shape_dtype_range(images):
    patches = load_image_patches(images, patch_size=16, n_patches=13)
    assert patches.shape == (13, 16, 16)
    assert patches.dtype == np.float64
    assert patches.min() >= 0.0 and patches.max() <= 1.0
    assert patches.std() > 0.01


def test_patches_color_shape():
    patches = load_image_patches("test", patch_size=8, n_patches=6, color=True)
    assert patches.shape == (6, 3, 8, 8)
    assert patches.dtype == np.float64
    assert patches.min() >= 0.0 and patches.max() <= 1.0
    # Gray test sources are replicated to three identical channels.
    gray = load_image_patches(["moon"], patch_size=8, n_patches=2, color=True)
    np.testing.assert_array_equal(gray[:, 0], gray[:, 2])


def test_patches_spread_over_sources(monkeypatch):
    from retune_sklearn import datasets

    values = {"camera": 0.1, "moon": 0.5, "coins": 0.9}

    def fake_source(name, color):
        return np.full((20, 30), values[name])

    monkeypatch.setattr(datasets, "_load_source", fake_source)
    patches = datasets.load_image_patches(list(values), 8, n_patches=11)
    counts = [np.sum(patches[:, 0, 0] == v) for v in values.values()]
    assert counts == [4, 4, 3]
    # Patches are shuffled, not grouped by source image.
    assert not np.all(np.diff(patches[:, 0, 0]) >= 0)


def test_patches_reproducible_and_seeded():
    a = load_image_patches("train", 16, 10, random_state=1)
    b = load_image_patches("train", 16, 10, random_state=1)
    c = load_image_patches("train", 16, 10, random_state=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    a[...] = 0  # the returned array is writable and not the cached source
    np.testing.assert_array_equal(
        load_image_patches("train", 16, 10, random_state=1), b
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(images="valid"), "images"),
        (dict(images=["eagle"]), "images"),
        (dict(images=[]), "images"),
        (dict(patch_size=0), "patch_size"),
        (dict(patch_size=2.5), "patch_size"),
        (dict(patch_size=10_000), "patch_size"),
        (dict(n_patches=0), "n_patches"),
        (dict(random_state="seed"), "random_state"),
    ],
)
def test_patches_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        load_image_patches(**kwargs)


def test_image_problem_shapes_and_reproducible():
    kwargs = dict(patch_size=16, n_train=12, n_test=6, random_state=3)
    first = make_image_problem(Half(), noise_sigma=0.05, **kwargs)
    second = make_image_problem(Half(), noise_sigma=0.05, **kwargs)
    X_train, X_test, y_train, y_test = first
    assert X_train.shape == y_train.shape == (12, 16, 16)
    assert X_test.shape == y_test.shape == (6, 16, 16)
    for a, b in zip(first, second):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
    noiseless = make_image_problem(Half(), noise_sigma=0.0, **kwargs)
    np.testing.assert_allclose(noiseless[0], 0.5 * y_train)
    other = make_image_problem(Half(), noise_sigma=0.05, patch_size=16,
                               n_train=12, n_test=6, random_state=4)
    assert not np.array_equal(other[0], X_train)


def test_denoising_noise_level():
    X_train, X_test, y_train, y_test = make_denoising_problem(
        noise_sigma=0.1, patch_size=32, n_train=16, n_test=8
    )
    # 16 * 32 * 32 samples: the std estimate is within ~1% (5 sigma: 3%).
    assert abs((X_train - y_train).std() - 0.1) < 0.003
    assert abs((X_test - y_test).std() - 0.1) < 0.005
    assert abs((X_train - y_train).mean()) < 0.003
    # Train and test noise are independent draws.
    r_train = (X_train - y_train)[:8].ravel()
    r_test = (X_test - y_test).ravel()
    assert abs(np.corrcoef(r_train, r_test)[0, 1]) < 0.05


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(noise_sigma=-0.1), "noise_sigma"),
        (dict(noise_sigma=np.nan), "noise_sigma"),
        (dict(n_train=0), "n_train"),
        (dict(n_test=-1), "n_test"),
        (dict(operator=object()), "operator"),
    ],
)
def test_image_problem_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_image_problem(patch_size=8, **kwargs)


def test_sparse_signal_problem():
    X, y, A = make_sparse_signal_problem(
        n_samples=30, n_features=40, n_measurements=20, n_nonzero=5,
        noise_sigma=0.01, random_state=0,
    )
    assert X.shape == (30, 20) and y.shape == (30, 40) and A.shape == (20, 40)
    assert X.dtype == y.dtype == A.dtype == np.float64
    np.testing.assert_array_equal(np.count_nonzero(y, axis=1), 5)
    residual = X - y @ A.T
    assert 0.005 < residual.std() < 0.015
    # Columns of A have unit expected squared norm.
    assert 0.5 < np.mean(np.sum(A**2, axis=0)) < 1.5
    again = make_sparse_signal_problem(
        n_samples=30, n_features=40, n_measurements=20, n_nonzero=5,
    )
    for a, b in zip((X, y, A), again):
        np.testing.assert_array_equal(a, b)
    other = make_sparse_signal_problem(
        n_samples=30, n_features=40, n_measurements=20, n_nonzero=5,
        random_state=1,
    )
    assert not np.array_equal(other[1], y)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_nonzero=200), "n_nonzero"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_features=1.5), "n_features"),
        (dict(n_measurements=0), "n_measurements"),
        (dict(noise_sigma=-1.0), "noise_sigma"),
    ],
)
def test_sparse_signal_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_sparse_signal_problem(**kwargs)


def _psnr(clean, restored):
    return np.mean([
        peak_signal_noise_ratio(c, r, data_range=1.0)
        for c, r in zip(clean, restored)
    ])


def test_bayes_shrink_improves_psnr():
    _, X, _, y = make_denoising_problem(
        noise_sigma=0.1, patch_size=64, n_train=1, n_test=4
    )
    denoised = baselines.bayes_shrink(X, sigma=0.1)
    assert denoised.shape == X.shape
    assert _psnr(y, denoised) > _psnr(y, X) + 3.0
    single = baselines.bayes_shrink(X[0], sigma=0.1)
    np.testing.assert_allclose(single, denoised[0])


def test_tv_grid_picks_weight_in_grid():
    X_train, _, y_train, _ = make_denoising_problem(
        noise_sigma=0.1, patch_size=32, n_train=4, n_test=1
    )
    grid = np.geomspace(0.01, 0.5, 6)
    weight = baselines.tv_chambolle_grid(X_train, y_train, weights=grid)
    assert weight in grid
    assert 0.01 < weight < 0.5  # not at the edge for sigma = 0.1
    denoised = baselines.tv_chambolle(X_train, weight)
    assert _psnr(y_train, denoised) > _psnr(y_train, X_train)


def test_bicubic_upsample_shape():
    X = load_image_patches("test", patch_size=8, n_patches=3)
    up = baselines.bicubic_upsample(X, 2)
    assert up.shape == (3, 16, 16)
    assert up.dtype == np.float64


def test_inpaint_biharmonic_keeps_observed_pixels():
    y = load_image_patches("test", patch_size=16, n_patches=2)
    kept = np.random.default_rng(0).random((16, 16)) > 0.3
    out = baselines.inpaint_biharmonic(np.where(kept, y, 0.0), kept)
    assert out.shape == y.shape
    np.testing.assert_allclose(out[:, kept], y[:, kept])
    with pytest.raises(ValueError, match="mask"):
        baselines.inpaint_biharmonic(y, kept[:8])


def test_baselines_bad_arguments():
    X = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="sigma"):
        baselines.bayes_shrink(X, sigma=-1.0)
    with pytest.raises(ValueError, match="X"):
        baselines.tv_chambolle(np.zeros(8), 0.1)
    with pytest.raises(ValueError, match="X_train"):
        baselines.tv_chambolle_grid(X, X[:1])
