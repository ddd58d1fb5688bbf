"""Reflective (symmetric / Neumann) boundaries against independent references.

scipy.ndimage's ``mode="reflect"`` is the half-sample symmetric extension
used here; skimage's ``denoise_tv_chambolle`` is the Neumann-boundary ROF
model; pywt's ``"symmetric"`` padding is the same extension. (Dot tests,
norms against a dense SVD and prox checks of the reflect variants run in
tests/test_contracts.py.)
"""

import numpy as np
import pytest
import pywt
import scipy.ndimage as ndi
import torch
from skimage.restoration import denoise_tv_chambolle

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.operators import Blur, Downsampling
from retune_sklearn.persistence import load_weights, save_weights
from retune_sklearn.regularizers import Tikhonov, TotalVariation, WaveletL1
from retune_sklearn.regularizers._base import _gradient, _gradient_adjoint

RNG = np.random.default_rng(0)
ASYMMETRIC = np.arange(1.0, 10.0).reshape(3, 3) / 45


def as_batch(image):
    return torch.as_tensor(image)[None]


def scalar(weight):
    """A one-weight threshold vector in float64 (float32 would round 0.7)."""
    return torch.tensor([weight], dtype=torch.float64)


@pytest.mark.parametrize("blur, kernel", [
    (Blur(sigma=1.5, boundary="reflect"), None),
    (Blur(kernel=ASYMMETRIC, boundary="reflect"), ASYMMETRIC),
    (Blur(kernel=np.ones((2, 4)) / 8, boundary="reflect"), np.ones((2, 4)) / 8),
], ids=["gaussian", "asymmetric", "even-sides"])
def test_reflect_blur_is_scipy_convolve_reflect(blur, kernel):
    image = RNG.random((20, 17))
    out = blur.forward(as_batch(image))[0].numpy()
    if kernel is None:  # the Gaussian of sigma=1.5 has radius 5 = int(3 * 1.5 + 0.5)
        expected = ndi.gaussian_filter(image, 1.5, mode="reflect", truncate=3.0)
    else:
        expected = ndi.convolve(image, kernel, mode="reflect")
    np.testing.assert_allclose(out, expected, atol=1e-13)


def test_reflect_blur_1d_and_channels_are_scipy_convolve_reflect():
    signal = RNG.random((3, 19))
    out = Blur(sigma=0.8, size=5, boundary="reflect").forward(torch.as_tensor(signal)).numpy()
    kernel = Blur(sigma=0.8, size=5).kernel_array(1)
    np.testing.assert_allclose(out, ndi.convolve1d(signal, kernel, axis=-1, mode="reflect"),
                               atol=1e-13)
    color = RNG.random((2, 3, 9, 8))
    out = Blur(kernel=ASYMMETRIC, boundary="reflect").forward(torch.as_tensor(color)).numpy()
    expected = ndi.convolve(color, ASYMMETRIC[None, None], mode="reflect")
    np.testing.assert_allclose(out, expected, atol=1e-13)


def test_reflect_downsampling_is_reflect_filter_then_decimation():
    image = RNG.random((12, 10))
    op = Downsampling(2, boundary="reflect")
    kernel = op.blur(2).kernel_array(2)
    expected = ndi.convolve(image, kernel, mode="reflect")[::2, ::2]
    np.testing.assert_allclose(op.forward(as_batch(image))[0].numpy(), expected, atol=1e-13)


def test_reflect_and_periodic_blur_agree_away_from_the_border():
    image = RNG.random((24, 24))
    reflect = Blur(sigma=1.0, boundary="reflect").forward(as_batch(image))[0]
    periodic = Blur(sigma=1.0).forward(as_batch(image))[0]
    inner = (slice(3, -3),) * 2  # the kernel's radius is 3
    torch.testing.assert_close(reflect[inner], periodic[inner], rtol=0, atol=1e-13)
    assert (reflect - periodic).abs().max() > 1e-2


def neumann_difference_matrix(n):
    """Forward differences with the last one 0 (dense, built independently)."""
    matrix = np.zeros((n, n))
    for i in range(n - 1):
        matrix[i, i], matrix[i, i + 1] = -1, 1
    return matrix


def test_neumann_differences_match_numpy_diff_and_have_norm_at_most_two_per_axis():
    image = RNG.random((2, 6, 5))
    grad = _gradient(torch.as_tensor(image), (-2, -1), "reflect").numpy()
    np.testing.assert_array_equal(grad[:, 0], np.diff(image, axis=1, append=image[:, -1:]))
    np.testing.assert_array_equal(grad[:, 1], np.diff(image, axis=2, append=image[:, :, -1:]))
    dual = RNG.standard_normal((2, 2, 6, 5))
    adjoint = _gradient_adjoint(torch.as_tensor(dual), (-2, -1), "reflect").numpy()
    np.testing.assert_allclose((grad * dual).sum(), (image * adjoint).sum(), rtol=1e-13)
    # ‖D‖² < 4 on each axis (the bound the TV prox's step uses).
    assert np.linalg.norm(neumann_difference_matrix(50), 2) ** 2 < 4


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
@pytest.mark.parametrize("shape", [(2, 7), (2, 6, 5), (2, 3, 6, 5)])  # 1-D, 2-D, colour
def test_differences_match_numpy_and_their_adjoint_on_every_layout(boundary, shape):
    x = RNG.standard_normal(shape)
    axes = (-1,) if len(shape) == 2 else (-2, -1)
    grad = _gradient(torch.as_tensor(x), axes, boundary).numpy()
    for i, axis in enumerate(axes):
        after = np.roll(x, -1, axis) if boundary == "periodic" else np.concatenate(
            [np.take(x, range(1, x.shape[axis]), axis), np.take(x, [-1], axis)], axis)
        np.testing.assert_allclose(grad[:, i], after - x, rtol=0, atol=1e-15)
    dual = RNG.standard_normal(grad.shape)
    if boundary == "reflect":  # the last difference is 0: its dual entry is unused
        for i, axis in enumerate(axes):
            index = [slice(None)] * dual.ndim
            index[1], index[axis] = i, -1
            dual[tuple(index)] = 0
    adjoint = _gradient_adjoint(torch.as_tensor(dual), axes, boundary).numpy()
    np.testing.assert_allclose((grad * dual).sum(), (x * adjoint).sum(), rtol=1e-13)


def test_reflect_tikhonov_prox_is_the_dense_neumann_solve():
    height, width, weight = 6, 5, 0.7
    d_rows, d_cols = neumann_difference_matrix(height), neumann_difference_matrix(width)
    D = np.vstack([np.kron(d_rows, np.eye(width)), np.kron(np.eye(height), d_cols)])
    u = RNG.standard_normal((2, height, width))
    out = Tikhonov(order=1, boundary="reflect").prox(torch.as_tensor(u), scalar(weight))
    expected = np.linalg.solve(np.eye(height * width) + weight * D.T @ D, u.reshape(2, -1).T).T
    np.testing.assert_allclose(out.reshape(2, -1).numpy(), expected, atol=1e-12)


def test_reflect_tv_prox_is_skimage_denoise_tv_chambolle():
    # skimage minimizes ½‖u − f‖² + weight · TV(u) with Neumann differences. Its
    # Chambolle iteration converges slowly: at 5000 iterations it was still 1.7e-5
    # off on some images, hence 20000 (a fixed image, not one that depends on test order).
    image, weight = np.random.default_rng(0).random((16, 16)), 0.1
    expected = denoise_tv_chambolle(image, weight=weight, eps=1e-14, max_num_iter=20000)
    out = TotalVariation(n_inner=1000, boundary="reflect").prox(as_batch(image), scalar(weight))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)
    periodic = TotalVariation(n_inner=1000, boundary="periodic").prox(as_batch(image),
                                                                      scalar(weight))
    assert np.abs(periodic[0].numpy() - expected).max() > 1e-2


@pytest.mark.parametrize("kwargs, shape", [
    (dict(), (8, 8)), (dict(translation_invariant=True), (8, 8)), (dict(), (12,))],
    ids=["2d", "frame-2d", "1d"])
def test_reflect_wavelet_frame_is_parseval(kwargs, shape):
    reg = WaveletL1("db2", 2, boundary="reflect", **kwargs)
    reg.check_signal_shape(shape)
    d = int(np.prod(shape))
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    coefficients = reg.analysis(basis)
    assert coefficients[0].numel() == d * 2 ** len(shape) * (4 if kwargs else 1)
    analysis = coefficients.reshape(d, -1).T.numpy()
    np.testing.assert_allclose(analysis.T @ analysis, np.eye(d), atol=1e-12)  # W* W = I
    np.testing.assert_allclose(reg.synthesis(coefficients).reshape(d, d).numpy(), np.eye(d),
                               atol=1e-12)
    z = torch.as_tensor(RNG.standard_normal((1, *coefficients.shape[1:])))
    np.testing.assert_allclose(reg.synthesis(z).reshape(-1).numpy(),
                               analysis.T @ z.reshape(-1).numpy(), atol=1e-12)  # W* = Wᵀ


def test_reflect_wavelet_coefficients_are_pywt_of_the_symmetric_extension():
    image = RNG.random((8, 12))
    mirrored = np.pad(image, ((0, 8), (0, 12)), mode="symmetric")
    expected, _ = pywt.coeffs_to_array(pywt.wavedec2(mirrored, "db2", mode="periodization",
                                                     level=2))
    out = WaveletL1("db2", 2, boundary="reflect").analysis(as_batch(image))[0].numpy()
    np.testing.assert_allclose(out, expected / 2, atol=1e-12)  # 1/√2 per axis


def test_reflect_wavelets_allow_one_level_more():
    # The mirrored 12×12 signal is 24×24: divisible by 2**3, where 12 is not.
    with pytest.raises(ValueError, match="levels=3 needs every size divisible"):
        WaveletL1("haar", 3).check_signal_shape((12, 12))
    WaveletL1("haar", 3, boundary="reflect").check_signal_shape((12, 12))
    with pytest.raises(ValueError, match="levels=4 needs .* the mirrored signal, twice"):
        WaveletL1("haar", 4, boundary="reflect").check_signal_shape((12, 12))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # K·T = 4 is tiny
def test_reflect_model_fits_and_its_weights_file_round_trips(tmp_path):
    y = RNG.random((4, 16, 16))
    blur = Blur(sigma=1.0, boundary="reflect")
    X = blur.forward(torch.as_tensor(y)).numpy() + 0.02 * RNG.standard_normal(y.shape)
    est = ReTuneRegularizer(operator=blur, regularizer=TotalVariation(boundary="reflect"),
                            K=2, T=2, max_epochs=1, batch_size=4, random_state=0).fit(X, y)
    save_weights(est, tmp_path / "model.npz")
    loaded = load_weights(tmp_path / "model.npz")
    assert loaded.regularizer.boundary == "reflect" and loaded.operator.boundary == "reflect"
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


def _load_bench_boundary():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_boundary.py"
    spec = importlib.util.spec_from_file_location("bench_boundary", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("factor, sigma, operator, radius", [
    (1, 1.5, Blur(sigma=1.5), 5), (2, 1.0, Downsampling(2), 2)], ids=["blur", "downsampling"])
def test_benchmark_camera_data_is_the_operator_away_from_the_crop_border(factor, sigma, operator,
                                                                        radius):
    # bench_boundary degrades a larger patch and crops: inside the crop, farther from its
    # border than the kernel's radius, the measurement must be the model's own A y.
    bench = _load_bench_boundary()
    big = RNG.random((2, bench.PATCH + 2 * bench.MARGIN, bench.PATCH + 2 * bench.MARGIN))
    X, y = bench._camera(big, factor, sigma)
    expected = operator.forward(torch.as_tensor(y)).numpy()
    assert X.shape == expected.shape
    inner = (slice(None),) + (slice(radius, -radius),) * 2  # 3 fine pixels: 2 coarse ones
    np.testing.assert_allclose(X[inner], expected[inner], atol=1e-12)
