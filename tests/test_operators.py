"""Forward operators against dense linear algebra (independent truth)."""

import numpy as np
import pytest
import torch

from retune_sklearn.operators import Blur, Identity, Inpainting, power_iteration

SHAPES = [(16,), (8, 8), (2, 8, 10)]


def operators_for(shape):
    ndim = 1 if len(shape) == 1 else 2
    kernel = np.arange(1.0, 1.0 + 3 ** ndim).reshape((3,) * ndim)
    return [
        Identity(),
        Blur(sigma=1.0),
        Blur(kernel=kernel / kernel.sum()),
        Inpainting(keep_prob=0.6, random_state=1),
        Inpainting(mask=np.random.default_rng(0).random(shape[-ndim:]) < 0.5),
    ]


def dense_matrix(operator, shape):
    """Columns A e_j, one basis vector at a time."""
    d = int(np.prod(shape))
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return operator.forward(basis).reshape(d, -1).T.numpy()


@pytest.mark.parametrize("shape", SHAPES)
def test_dot_test_adjoint(shape):
    rng = torch.Generator().manual_seed(0)
    for operator in operators_for(shape):
        x = torch.randn((3, *shape), generator=rng, dtype=torch.float64)
        z = torch.randn((3, *operator.measurement_shape(shape)), generator=rng,
                        dtype=torch.float64)
        lhs = torch.sum(operator.forward(x) * z)
        rhs = torch.sum(x * operator.adjoint(z))
        assert torch.isclose(lhs, rhs, rtol=1e-10), operator


@pytest.mark.parametrize("shape", SHAPES)
def test_norm_matches_dense_svd(shape):
    for operator in operators_for(shape):
        exact = np.linalg.norm(dense_matrix(operator, shape), ord=2)
        assert operator.norm(shape) == pytest.approx(exact, rel=1e-2), operator
        # The generic power iteration (used for operators without a closed form).
        gram = power_iteration(lambda x: operator.adjoint(operator.forward(x)), shape)
        assert np.sqrt(gram) == pytest.approx(exact, rel=1e-2), operator


def test_blur_is_circular_convolution_like_scipy():
    from scipy.ndimage import convolve

    rng = np.random.default_rng(0)
    image = rng.random((10, 12))
    kernel = rng.random((3, 5))
    expected = convolve(image, kernel, mode="wrap")
    got = Blur(kernel=kernel).forward(torch.as_tensor(image[None]))[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_gaussian_blur_kernel_is_normalized_and_preserves_constants():
    x = torch.ones((2, 16, 16), dtype=torch.float64)
    np.testing.assert_allclose(Blur(sigma=1.5, size=9).forward(x).numpy(), 1.0, atol=1e-12)


def test_inpainting_mask_reproducible_and_shared_across_channels():
    a = Inpainting(keep_prob=0.5, random_state=3).mask_array((8, 8))
    b = Inpainting(keep_prob=0.5, random_state=3).mask_array((8, 8))
    np.testing.assert_array_equal(a, b)
    mask = np.zeros((4, 4), dtype=bool)
    mask[::2] = True
    x = torch.ones((1, 3, 4, 4), dtype=torch.float64)
    out = Inpainting(mask=mask).forward(x)[0].numpy()
    for channel in out:
        np.testing.assert_array_equal(channel, mask)


def test_operator_cache_is_not_pickled_and_clone_is_clean():
    import pickle

    from sklearn.base import clone

    blur = Blur(sigma=1.0)
    blur.forward(torch.zeros((1, 8, 8)))
    assert "_cache" in blur.__dict__
    assert "_cache" not in pickle.loads(pickle.dumps(blur)).__dict__
    assert "_cache" not in clone(blur).__dict__


def test_set_params_drops_cached_kernel():
    blur = Blur(sigma=0.5)
    x = torch.zeros((1, 16, 16), dtype=torch.float64)
    x[0, 8, 8] = 1.0
    narrow = blur.forward(x)
    blur.set_params(sigma=2.0)
    wide = blur.forward(x)
    assert wide.max() < narrow.max()


def test_inpainting_mask_drawn_without_seed_survives_pickling():
    import pickle

    operator = Inpainting(keep_prob=0.5, random_state=None)
    x = torch.ones((1, 8, 8))
    before = operator.forward(x)
    assert torch.equal(pickle.loads(pickle.dumps(operator)).forward(x), before)
    assert torch.equal(operator.forward(x), before)  # pickling keeps the live cache


def test_assigning_a_parameter_drops_cached_tensors():
    """Issue 13: `op.sigma = 3.0` after a first use must not keep the σ=1 kernel."""
    from retune_sklearn.operators import MatrixOperator

    x = torch.zeros((1, 32, 32), dtype=torch.float64)
    x[0, 8, 8] = 1.0
    blur = Blur(sigma=1.0)
    blur.forward(x)
    blur.sigma = 3.0
    torch.testing.assert_close(blur.forward(x), Blur(sigma=3.0).forward(x))

    inpainting = Inpainting(mask=np.ones((32, 32)))
    inpainting.forward(x)
    half = np.ones((32, 32))
    half[:16] = 0
    inpainting.mask = half
    assert torch.equal(inpainting.forward(x), torch.zeros_like(x))  # the impulse is at row 8

    matrix = MatrixOperator(np.eye(3))
    matrix.forward(torch.ones(1, 3, dtype=torch.float64))
    matrix.A = 2 * np.eye(3)
    assert torch.equal(matrix.forward(torch.ones(1, 3, dtype=torch.float64)),
                       torch.full((1, 3), 2.0, dtype=torch.float64))


@pytest.mark.parametrize("operator, label", [
    (Blur(sigma=1e5), r"Blur kernel of shape \(600001, 600001\) is larger"),
    (Blur(sigma=1.0, size=10**6 + 1), r"Blur kernel of shape \(1000001, 1000001\) is larger"),
])
def test_huge_kernel_is_refused_before_it_is_built(operator, label):
    """Issue 13: the size check must come before a kernel of terabytes is allocated."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=label):
            operator.check_signal_shape((16, 16))
        with pytest.raises(ValueError, match=label):
            operator.forward(torch.zeros(1, 16, 16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10**7


def test_huge_downsampling_filter_is_refused_before_it_is_built():
    from retune_sklearn.operators import Downsampling

    with pytest.raises(ValueError, match=r"Downsampling filter of shape \(600001, 600001\)"):
        Downsampling(2, sigma=1e5).check_signal_shape((16, 16))


class ScaledAdjointBlur(Blur):
    """A blur whose adjoint is off by the relative factor ``offset``."""

    offset = 1e-3

    def adjoint(self, z):
        return (1 + self.offset) * super().adjoint(z)


class PerturbedAdjointBlur(Blur):
    """A blur whose adjoint correlates with a kernel perturbed by ``offset`` (relative)."""

    offset = 1e-3

    def adjoint(self, z):
        kernel = np.asarray(self.kernel)
        wrong = Blur(kernel=kernel * (1 + self.offset * np.linspace(-1, 1, kernel.size)
                                      .reshape(kernel.shape)))
        return wrong.adjoint(z)


@pytest.mark.parametrize("kind", [ScaledAdjointBlur, PerturbedAdjointBlur])
@pytest.mark.parametrize("offset, side", [(1e-3, 16), (1e-3, 64), (1e-2, 64)])
def test_dot_test_rejects_slightly_wrong_adjoints(kind, offset, side):
    """Issue 13: normalized by ‖Ax‖‖z‖, these errors hid behind a factor √N."""
    from retune_sklearn.operators import check_adjoint

    kernel = np.random.default_rng(0).random((3, 3))
    operator = type(kind.__name__, (kind,), {"offset": offset})(kernel=kernel / kernel.sum())
    with pytest.raises(ValueError, match="is not the adjoint"):
        check_adjoint(operator, (side, side))
    assert check_adjoint(Blur(kernel=kernel), (side, side)) < 1e-12  # the correct one passes


def test_dot_test_in_float32_accepts_correct_operators_and_rejects_wrong_ones():
    from retune_sklearn.operators import check_adjoint

    kernel = np.random.default_rng(0).random((5, 5))
    assert check_adjoint(Blur(kernel=kernel), (128, 128), dtype=torch.float32) < 1e-5
    operator = type("Off", (ScaledAdjointBlur,), {"offset": 1e-3})(kernel=kernel)
    with pytest.raises(ValueError, match="is not the adjoint"):
        check_adjoint(operator, (128, 128), dtype=torch.float32)


@pytest.mark.parametrize("shape", SHAPES)
def test_normal_is_the_dense_gram_matrix(shape):
    """``normal`` (the solvers' ``AᵀA``, one FFT pair for a periodic blur) against
    ``DᵀD`` of the dense matrix, for every operator and both blur boundaries."""
    from retune_sklearn.operators import Downsampling

    ndim = 1 if len(shape) == 1 else 2
    extra = [Blur(sigma=1.0, boundary="reflect")]
    if all(s % 2 == 0 for s in shape[-ndim:]):
        extra.append(Downsampling(2))
    x = torch.randn((3, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for operator in operators_for(shape) + extra:
        dense = dense_matrix(operator, shape)
        expected = (x.reshape(3, -1).numpy() @ (dense.T @ dense).T).reshape(x.shape)
        np.testing.assert_allclose(operator.normal(x).numpy(), expected, atol=1e-12,
                                   err_msg=repr(operator))


def test_model_lipschitz_and_identity_gram_against_the_dense_matrix():
    """``ForwardBackward.lipschitz`` (power iteration on ``W AᵀA W*``, through
    ``normal``) is ``‖A‖₂²`` with an orthonormal basis; the identity-Gram check
    holds only for the identity."""
    from retune_sklearn.regularizers import WaveletL1
    from retune_sklearn.solvers import ForwardBackward

    shape = (8, 8)
    for operator in operators_for(shape):
        model = ForwardBackward(operator, WaveletL1(wavelet="haar", levels=2))
        expected = np.linalg.norm(dense_matrix(operator, shape), 2) ** 2
        np.testing.assert_allclose(float(model.lipschitz(shape)), expected, rtol=1e-6,
                                   err_msg=repr(operator))
        assert model.check_identity_gram(shape) == isinstance(operator, Identity)


def test_dot_test_rejects_a_wrong_normal():
    from retune_sklearn.operators import check_adjoint

    class WrongNormalBlur(Blur):
        def normal(self, x):
            return 1.001 * super().normal(x)

    with pytest.raises(ValueError, match="WrongNormalBlur.normal is not"):
        check_adjoint(WrongNormalBlur(sigma=1.0), (16, 16))


@pytest.mark.parametrize("operator", [Blur(sigma=1.5), Blur(sigma=1.5, boundary="reflect"),
                                      Identity(), Inpainting(keep_prob=0.5)])
def test_a_step_from_the_back_projection_equals_the_residual_step(operator):
    """``u − τ W(AᵀA x − Aᵀy)`` (what the solvers run) against ``u − τ W Aᵀ(A x − y)``."""
    from retune_sklearn.regularizers import TotalVariation, WaveletL1
    from retune_sklearn.solvers import ForwardBackward

    generator = torch.Generator().manual_seed(0)
    y = torch.rand((2, 16, 16), generator=generator, dtype=torch.float64)
    for regularizer in (WaveletL1(wavelet="haar", levels=2), TotalVariation()):
        model = ForwardBackward(operator, regularizer)
        u = model.initial_point(y) + 0.1
        weights, tau = torch.tensor([0.05]), torch.tensor(0.7)
        if isinstance(regularizer, WaveletL1):
            weights = torch.full((len(regularizer.weight_names((16, 16))),), 0.05)
        back_projection = model.back_projection(y)
        assert back_projection is not None
        fast = model.step(u, y, weights, tau, back_projection=back_projection)
        torch.testing.assert_close(fast, model.step(u, y, weights, tau), rtol=0, atol=1e-12)
        torch.testing.assert_close(model.initial_point(y, back_projection=back_projection),
                                   model.initial_point(y), rtol=0, atol=1e-12)
        assert model.back_projection(y, mask=torch.ones_like(y)) is None  # masked: old path
