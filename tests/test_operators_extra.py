"""Downsampling, MatrixOperator and CallableOperator against independent truths.

Dot tests and norms against dense linear algebra, the box filter against
scikit-image, the Gaussian filter against scipy.ndimage, matrices against
numpy products, gradients against finite differences (gradcheck), and short
fits of the estimator.
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from sklearn.base import clone

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_sparse_signal_problem
from retune_sklearn.metrics import psnr
from retune_sklearn.operators import (
    CallableOperator,
    Downsampling,
    MatrixOperator,
    check_adjoint,
)
from retune_sklearn.regularizers import WaveletL1


def dense_matrix(operator, shape):
    """Columns A e_j, one basis vector at a time."""
    d = int(np.prod(shape))
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return operator.forward(basis).reshape(d, -1).T.numpy()


def dot_test(operator, shape, n=3, seed=0):
    rng = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=rng, dtype=torch.float64)
    z = torch.randn((n, *operator.measurement_shape(shape)), generator=rng, dtype=torch.float64)
    ax, atz = operator.forward(x), operator.adjoint(z)
    assert ax.shape == z.shape and atz.shape == x.shape
    lhs, rhs = torch.sum(ax * z), torch.sum(x * atz)
    assert torch.isclose(lhs, rhs, rtol=1e-10), (operator, shape, float(lhs), float(rhs))


# Module-level callables, so that CallableOperator pickles.
def crop_forward(x):
    return x[..., 2:-2]


def crop_adjoint(z):
    return torch.nn.functional.pad(z, (2, 2))


def crop_shape(signal_shape):
    return (*signal_shape[:-1], signal_shape[-1] - 4)


def double_forward(x):
    return 2.0 * x


def wrong_adjoint(z):
    return z  # the adjoint of 2·I is 2·I, not I


def returns_numpy(x):
    return x.numpy()


def random_matrices(m=7, d=11, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((m, d))
    sparse = scipy.sparse.random(m, d, density=0.3, format="csr", random_state=seed)
    return {
        "dense": dense,
        "dense-list": dense.tolist(),
        "dense-int": rng.integers(-3, 4, size=(m, d)),
        "csr": sparse,
        "coo": sparse.tocoo(),
        "csc-array": scipy.sparse.csc_array(sparse),
        "linop-dense": scipy.sparse.linalg.aslinearoperator(dense),
        "linop-sparse": scipy.sparse.linalg.aslinearoperator(sparse),
        "linop-custom": scipy.sparse.linalg.LinearOperator(
            (m, d), matvec=lambda v: dense @ v, rmatvec=lambda v: dense.T @ v, dtype=np.float64),
    }


def as_dense(A):
    if isinstance(A, scipy.sparse.linalg.LinearOperator):
        return A @ np.eye(A.shape[1])
    if scipy.sparse.issparse(A):
        return A.toarray()
    return np.asarray(A, dtype=np.float64)


MATRICES = list(random_matrices())

# (operator, signal shape): 1-D and 2-D, channels, factors 2 and 3, every filter.
DOWNSAMPLINGS = [
    (Downsampling(2), (16,)),
    (Downsampling(2), (8, 8)),
    (Downsampling(2), (2, 8, 10)),
    (Downsampling(3), (24,)),
    (Downsampling(3), (12, 15)),
    (Downsampling(3), (3, 12, 12)),
    (Downsampling(2, sigma=0.7), (10, 12)),
    (Downsampling(2, filter="box"), (2, 8, 6)),
    (Downsampling(3, filter="box"), (18,)),
    (Downsampling(3, filter="none"), (9, 6)),
    (Downsampling(2, filter=[0.25, 0.5, 0.25, 0.0]), (12,)),
    (Downsampling(3, filter=np.arange(1.0, 7.0).reshape(2, 3)), (2, 9, 6)),
    (Downsampling(1, filter="box"), (5, 7)),
]


# ---------------------------------------------------------------- Downsampling
@pytest.mark.parametrize("operator, shape", DOWNSAMPLINGS, ids=str)
def test_downsampling_dot_test_and_exact_norm(operator, shape):
    dot_test(operator, shape)
    matrix = dense_matrix(operator, shape)
    assert matrix.shape == (int(np.prod(operator.measurement_shape(shape))), int(np.prod(shape)))
    assert operator.norm(shape) == pytest.approx(np.linalg.norm(matrix, 2), rel=1e-10)
    assert check_adjoint(operator, shape) < 1e-12


@pytest.mark.parametrize("factor", [2, 3])
def test_downsampling_box_is_block_mean_like_skimage(factor):
    from skimage.transform import downscale_local_mean

    images = np.random.default_rng(factor).random((2, 3, 12, 18))
    got = Downsampling(factor, filter="box").forward(torch.as_tensor(images)).numpy()
    np.testing.assert_allclose(got, downscale_local_mean(images, (1, 1, factor, factor)),
                               atol=1e-12)
    signals = images[0, 0]
    got = Downsampling(factor, filter="box").forward(torch.as_tensor(signals)).numpy()
    np.testing.assert_allclose(got, downscale_local_mean(signals, (1, factor)), atol=1e-12)


def test_downsampling_gaussian_is_wrapped_gaussian_filter_then_decimation():
    from scipy.ndimage import gaussian_filter

    images = np.random.default_rng(0).random((2, 20, 24))
    for factor in (2, 3):
        sigma = factor / 2  # the documented default; Blur truncates at 3 sigma
        expected = gaussian_filter(images, (0, sigma, sigma), mode="wrap",
                                   truncate=3.0)[:, ::factor, ::factor]
        got = Downsampling(factor).forward(torch.as_tensor(images)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_downsampling_adjoint_is_zero_upsampling_for_no_filter():
    z = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(1, 2, 3)
    up = Downsampling(2, filter="none").adjoint(z)
    expected = torch.zeros(1, 4, 6, dtype=torch.float64)
    expected[:, ::2, ::2] = z
    assert torch.equal(up, expected)


def test_downsampling_keeps_dtype_device_and_gradients():
    op = Downsampling(2)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    y = op.forward(x)
    assert y.dtype == torch.float32 and y.shape == (2, 3, 4, 4) and y.device == x.device
    (op.adjoint(y) ** 2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_downsampling_measurement_shape_and_estimator_layouts():
    rng = np.random.default_rng(0)
    y = rng.random((6, 32, 32))
    op = Downsampling(2)
    assert op.measurement_shape((32, 32)) == (16, 16)
    assert op.measurement_shape((3, 12, 18)) == (3, 6, 9)
    X = op.forward(torch.as_tensor(y)).numpy() + 0.01 * rng.standard_normal((6, 16, 16))
    est = ReTuneRegularizer(operator=Downsampling(2), regularizer=WaveletL1("haar", levels=2),
                            K=2, T=2, max_epochs=1, device="cpu", random_state=0).fit(X, y)
    assert est.measurement_shape_ == (16, 16) and est.signal_shape_ == (32, 32)
    assert est.transform(X).shape == y.shape
    assert est.transform(X.reshape(6, -1)).shape == y.shape  # flat measurements
    assert np.isfinite(est.score(X, y))


# -------------------------------------------------------------- MatrixOperator
@pytest.mark.parametrize("kind", MATRICES)
def test_matrix_operator_matches_numpy_and_dot_test(kind):
    A = random_matrices()[kind]
    dense = as_dense(A)
    op = MatrixOperator(A)
    m, d = dense.shape
    assert op.measurement_shape((d,)) == (m,)
    x = np.random.default_rng(1).standard_normal((4, d))
    z = np.random.default_rng(2).standard_normal((4, m))
    np.testing.assert_allclose(op.forward(torch.as_tensor(x)).numpy(), x @ dense.T, atol=1e-12)
    np.testing.assert_allclose(op.adjoint(torch.as_tensor(z)).numpy(), z @ dense, atol=1e-12)
    out32 = op.forward(torch.as_tensor(x, dtype=torch.float32))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), x @ dense.T, rtol=1e-4, atol=1e-4)
    dot_test(op, (d,))
    assert check_adjoint(op, (d,)) < 1e-12


@pytest.mark.parametrize("kind", MATRICES)
@pytest.mark.parametrize("m", [7, 3], ids=["gram-product", "two-products"])
def test_matrix_operator_normal_is_the_gram_matrix(kind, m):
    """``normal`` against ``AᵀA`` of the dense matrix: the dense Gram path (d ≤ 2m),
    the two products (d > 2m) and the sparse / LinearOperator ones, in float64 and
    float32, with batch axes, and differentiable."""
    A = random_matrices(m=m)[kind]
    dense = as_dense(A)
    op = MatrixOperator(A)
    x = np.random.default_rng(1).standard_normal((2, 3, dense.shape[1]))
    expected = x @ (dense.T @ dense)
    np.testing.assert_allclose(op.normal(torch.as_tensor(x)).numpy(), expected, atol=1e-12)
    out32 = op.normal(torch.as_tensor(x, dtype=torch.float32))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), expected, rtol=1e-4, atol=1e-4)
    x_t = torch.as_tensor(x[0], dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(op.normal, (x_t,))
    with pytest.raises(ValueError, match="expects batches of shape"):
        op.normal(torch.ones(2, dense.shape[1] + 1, dtype=torch.float64))


@pytest.mark.parametrize("kind", MATRICES)
def test_matrix_operator_norm_matches_dense_svd(kind):
    A = random_matrices()[kind]
    exact = np.linalg.norm(as_dense(A), 2)
    op = MatrixOperator(A)
    rel = 1e-2 if kind.startswith("linop") else 1e-10  # power iteration or exact
    assert op.norm((11,)) == pytest.approx(exact, rel=rel)


def test_matrix_operator_exact_norm_of_tall_matrices():
    A = np.random.default_rng(3).standard_normal((13, 5))
    for matrix in (A, scipy.sparse.csr_matrix(A)):
        assert MatrixOperator(matrix).norm((5,)) == pytest.approx(np.linalg.norm(A, 2),
                                                                  rel=1e-10)


def test_matrix_operator_norm_power_iteration_for_large_matrices(monkeypatch):
    from retune_sklearn.operators import matrix

    A = np.random.default_rng(0).standard_normal((30, 40))
    monkeypatch.setattr(matrix, "_DENSE_EXACT_NORM_MAX", 10)  # force the iterative path
    assert MatrixOperator(A).norm((40,)) == pytest.approx(np.linalg.norm(A, 2), rel=1e-2)


@pytest.mark.parametrize("kind", ["csr", "linop-custom", "dense"])
def test_matrix_operator_gradients_flow(kind):
    A = random_matrices(m=3, d=4)[kind]
    op = MatrixOperator(A)
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.forward, (x,))
    assert torch.autograd.gradcheck(op.adjoint, (z,))
    assert torch.autograd.gradgradcheck(lambda v: op.adjoint(op.forward(v)) ** 2, (x,))


def test_matrix_operator_sparse_path_raises_no_warning():
    op = MatrixOperator(random_matrices()["csr"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op.forward(torch.ones(2, 11, dtype=torch.float64))
        op.adjoint(torch.ones(2, 7))


def test_matrix_operator_batch_axes_and_missing_rmatvec():
    A = np.random.default_rng(0).standard_normal((5, 6))
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    out = MatrixOperator(A).forward(x)
    np.testing.assert_allclose(out.numpy(), x.numpy() @ A.T, atol=1e-12)
    no_rmatvec = scipy.sparse.linalg.LinearOperator((5, 6), matvec=lambda v: A @ v,
                                                    dtype=np.float64)
    op = MatrixOperator(no_rmatvec)
    assert op.forward(x).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="failed in rmatmat.*needs both matvec and"):
        op.adjoint(torch.ones(1, 5, dtype=torch.float64))


def test_compressed_sensing_fit_improves_on_back_projection_and_initial_weights():
    X, y, A = make_sparse_signal_problem(n_samples=96, n_features=64, n_measurements=40,
                                         n_nonzero=4, noise_sigma=0.01, random_state=0)
    train, test = slice(0, 64), slice(64, None)
    data_range = float(np.ptp(y))
    params = {"operator": MatrixOperator(A), "regularizer": WaveletL1("haar", levels=1),
              "K": 10, "T": 5, "max_epochs": 10, "batch_size": 16, "learning_rate": 0.1,
              "data_range": data_range, "device": "cpu", "random_state": 0}
    learned = ReTuneRegularizer(**params).fit(X[train], y[train])
    initial = ReTuneRegularizer(**params, learn_weights=False).fit(X[train], y[train])
    assert learned.transform(X[test]).shape == y[test].shape
    back_projection = psnr(y[test], X[test] @ A, data_range=data_range)
    score_learned, score_initial = learned.score(X[test], y[test]), initial.score(X[test], y[test])
    assert score_learned > back_projection + 5.0
    assert score_learned > score_initial + 1.0


# ------------------------------------------------------------ CallableOperator
def test_callable_operator_dot_test_and_shapes():
    op = CallableOperator(crop_forward, crop_adjoint, measurement_shape=crop_shape)
    assert op.measurement_shape((16,)) == (12,)
    assert op.measurement_shape((2, 8, 10)) == (2, 8, 6)
    for shape in [(16,), (8, 8), (2, 8, 10)]:
        dot_test(op, shape)
        exact = np.linalg.norm(dense_matrix(op, shape), 2)
        assert op.norm(shape) == pytest.approx(exact, rel=1e-2)
    fixed = CallableOperator(crop_forward, crop_adjoint, measurement_shape=(12,))
    assert fixed.measurement_shape((16,)) == (12,)
    same = CallableOperator(double_forward, double_forward)
    assert same.measurement_shape((3, 4)) == (3, 4)
    assert same.norm((3, 4)) == pytest.approx(2.0, rel=1e-6)


def test_callable_operator_params_set_params_and_nested_grid():
    op = CallableOperator(crop_forward, crop_adjoint, measurement_shape=crop_shape)
    assert op.get_params() == {"forward": crop_forward, "adjoint": crop_adjoint,
                               "measurement_shape": crop_shape}
    op.set_params(forward=double_forward, adjoint=double_forward, measurement_shape=None)
    assert op.measurement_shape((5,)) == (5,)
    assert torch.equal(op.forward(torch.ones(1, 5)), torch.full((1, 5), 2.0))
    with pytest.raises(ValueError, match="Invalid parameter 'sigma'"):
        op.set_params(sigma=1.0)
    est = ReTuneRegularizer(operator=op)
    assert est.get_params()["operator__forward"] is double_forward
    est.set_params(operator__adjoint=wrong_adjoint)
    assert op.get_params()["adjoint"] is wrong_adjoint
    assert "CallableOperator(adjoint=" in repr(op)


def test_callable_operator_wrong_adjoint_fails_fit_naming_the_adjoint():
    rng = np.random.default_rng(0)
    y = rng.random((4, 16))
    X = 2.0 * y
    est = ReTuneRegularizer(operator=CallableOperator(double_forward, wrong_adjoint),
                            regularizer=WaveletL1("haar", levels=1), K=2, T=1, max_epochs=1)
    with pytest.raises(ValueError, match=r"CallableOperator\.adjoint is not the adjoint"
                                         r"(.|\n)*`adjoint` callable"):
        est.fit(X, y)
    assert not hasattr(est, "operator_")


def test_callable_operator_fits_with_correct_adjoint():
    rng = np.random.default_rng(0)
    y = rng.random((6, 16))
    X = y[:, 2:-2] + 0.01 * rng.standard_normal((6, 12))
    est = ReTuneRegularizer(operator=CallableOperator(crop_forward, crop_adjoint, crop_shape),
                            regularizer=WaveletL1("haar", levels=1), K=2, T=2, max_epochs=1,
                            device="cpu").fit(X, y)
    assert est.transform(X).shape == y.shape
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.transform(X), est.transform(X))


@pytest.mark.parametrize("params, error, match", [
    ({"forward": None, "adjoint": crop_adjoint}, TypeError,
     "'forward' parameter of CallableOperator must be a callable"),
    ({"forward": crop_forward, "adjoint": 3}, TypeError,
     "'adjoint' parameter of CallableOperator must be a callable"),
    ({"forward": crop_forward, "adjoint": crop_adjoint, "measurement_shape": (0,)}, ValueError,
     "`measurement_shape` must be a tuple of positive integers"),
    ({"forward": crop_forward, "adjoint": crop_adjoint, "measurement_shape": 12}, ValueError,
     "'measurement_shape' parameter of CallableOperator must be None, an instance of 'tuple'"),
    ({"forward": crop_forward, "adjoint": crop_adjoint, "measurement_shape": lambda s: None},
     ValueError, "it returned None"),
])
def test_callable_operator_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        CallableOperator(**params).check_signal_shape((16,))


def test_callable_operator_must_return_a_tensor():
    with pytest.raises(TypeError, match="`forward` must return a torch.Tensor; got ndarray"):
        CallableOperator(returns_numpy, crop_adjoint).forward(torch.ones(1, 4))


# ---------------------------------------------------- pickling, clone, errors
PICKLABLE = [
    (Downsampling(3, filter="box"), (2, 9, 12)),
    (Downsampling(2, filter=np.ones((3, 3)) / 9), (8, 8)),
    (MatrixOperator(random_matrices()["dense"]), (11,)),
    (MatrixOperator(random_matrices()["csr"]), (11,)),
    (MatrixOperator(random_matrices()["linop-sparse"]), (11,)),
    (CallableOperator(crop_forward, crop_adjoint, crop_shape), (16,)),
]


@pytest.mark.parametrize("operator, shape", PICKLABLE, ids=lambda v: type(v).__name__)
def test_pickle_and_clone_reproduce_the_operator(operator, shape):
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    expected = operator.forward(x)
    assert "_cache" in operator.__dict__ or isinstance(operator, CallableOperator)
    restored = pickle.loads(pickle.dumps(operator))
    cloned = clone(operator)
    for copy in (restored, cloned):
        assert "_cache" not in copy.__dict__
        assert type(copy) is type(operator)
        assert copy.get_params().keys() == operator.get_params().keys()
        torch.testing.assert_close(copy.forward(x), expected)
        torch.testing.assert_close(copy.adjoint(expected), operator.adjoint(expected))


def test_set_params_rebuilds_derived_tensors():
    op = Downsampling(2, filter="none")
    x = torch.arange(8.0, dtype=torch.float64)[None]
    assert torch.equal(op.forward(x), x[:, ::2])
    op.set_params(filter="box")
    torch.testing.assert_close(op.forward(x), x.reshape(1, 4, 2).mean(-1))
    op = MatrixOperator(np.eye(3))
    op.forward(torch.ones(1, 3))
    op.set_params(A=2 * np.eye(3))
    assert torch.equal(op.forward(torch.ones(1, 3)), torch.full((1, 3), 2.0))
    assert op.norm((3,)) == pytest.approx(2.0)


@pytest.mark.parametrize("operator, shape, match", [
    (Downsampling(0), (8, 8), r"'factor' parameter of Downsampling must be an int in the range "
                               r"\[1, inf\). Got 0 instead"),
    (Downsampling(2.0), (8, 8), "'factor' parameter of Downsampling must be an int.*Got 2.0"),
    (Downsampling(True), (8, 8), "'factor' parameter of Downsampling must be an int.*Got True"),
    (Downsampling(3), (16, 15), r"factor=3 must divide the spatial sizes.*\(16, 15\)"),
    (Downsampling(2), (2, 9, 8), r"factor=2 must divide.*spatial \(9, 8\)"),
    (Downsampling(2, filter="bicubic"), (8, 8), "'filter' parameter of Downsampling must be a str "
                                                "among .* or an array-like. Got 'bicubic'"),
    (Downsampling(2, filter=None), (8, 8), "'filter' parameter.*Got None instead"),
    (Downsampling(2, filter="box", sigma=1.0), (8, 8), "`sigma` is only used with"),
    (Downsampling(2, sigma=-1.0), (8, 8), r"'sigma' parameter of Downsampling must be None or "
                                          r"a float in the range \(0.0, inf\)"),
    (Downsampling(2, filter=np.ones(3)), (8, 8), "`filter` kernel must be a non-empty finite 2-D"),
    (Downsampling(2, filter=[[np.nan]]), (8, 8), "`filter` kernel must be a non-empty finite"),
    (Downsampling(2, filter=["a"]), (8,), "numeric array-like kernel"),
    (Downsampling(4), (8, 8), r"filter of shape \(13, 13\) is larger"),
    (MatrixOperator(np.ones(5)), (5,), "`A` must be 2-D.*got 1 dimension"),
    (MatrixOperator(np.ones((2, 3, 4))), (4,), "`A` must be 2-D.*got 3 dimension"),
    (MatrixOperator(np.ones((0, 3))), (3,), "`A` is empty"),
    (MatrixOperator(np.array([[1.0, np.inf]])), (2,), "non-finite"),
    (MatrixOperator(np.ones((2, 2)) * 1j), (2,), "must be a real numeric"),
    (MatrixOperator("abc"), (3,), "'A' parameter of MatrixOperator must be an array-like"),
    (MatrixOperator(np.ones((4, 6))), (5,), (r"length d = A.shape\[1\] = 6; got signals of "
                                            r"shape \(5,\)")),
    (MatrixOperator(np.ones((4, 6))), (2, 3), r"\(n_samples, 6\)"),
    (MatrixOperator(scipy.sparse.eye(4, format="csr")), (4, 1), "length d = A.shape"),
    (MatrixOperator(scipy.sparse.linalg.aslinearoperator(np.ones((4, 6)))), (4,),
     "length d = A.shape"),
])
def test_bad_parameters_and_shapes(operator, shape, match):
    with pytest.raises(ValueError, match=match):
        operator.check_signal_shape(shape)
    with pytest.raises(ValueError, match=match):
        operator.measurement_shape(shape)


def test_matrix_operator_shape_mismatch_in_fit_and_forward():
    A = np.ones((4, 6))
    with pytest.raises(ValueError, match=r"expects batches of shape \(n, 6\); got \(2, 5\)"):
        MatrixOperator(A).forward(torch.ones(2, 5))
    est = ReTuneRegularizer(operator=MatrixOperator(A), regularizer=WaveletL1("haar", levels=1))
    with pytest.raises(ValueError, match="MatrixOperator acts on 1-D signals of length d"):
        est.fit(np.ones((3, 4)), np.ones((3, 8)))


# Issue 13: a user callable that works in place must not change the user's data.
HALF_MASK = (np.arange(16) % 2).astype(np.float64)


def masked_in_place(z):
    return z.mul_(torch.as_tensor(HALF_MASK, dtype=z.dtype))


def test_callable_operator_working_in_place_leaves_X_unchanged():
    rng = np.random.default_rng(0)
    y = rng.random((4, 16))
    X = y * HALF_MASK + 0.01 * rng.standard_normal((4, 16))
    X_before = X.copy()
    op = CallableOperator(masked_in_place, masked_in_place)
    est = ReTuneRegularizer(operator=op, regularizer=WaveletL1("haar", levels=1), K=2, T=2,
                            max_epochs=1, dtype="float64", device="cpu").fit(X, y)
    np.testing.assert_array_equal(X, X_before)
    est.transform(X)
    np.testing.assert_array_equal(X, X_before)
    x = torch.ones(1, 16, dtype=torch.float64)
    op.forward(x)
    assert torch.equal(x, torch.ones(1, 16, dtype=torch.float64))
