"""A matrix, sparse matrix or scipy LinearOperator on 1-D signals: :class:`MatrixOperator`."""

import math
import warnings

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from ._base import LinearOperator


class _LinearMap(torch.autograd.Function):
    """``apply(x)`` with the backward pass ``apply_transpose(grad)``.

    Used where autograd cannot see the computation (sparse products, scipy
    LinearOperators on CPU numpy). The backward is itself a ``_LinearMap``,
    so higher-order gradients work too.
    """

    @staticmethod
    def forward(ctx, x, apply, apply_transpose):
        # (Not ``ctx.apply``: that name is the backward node's own method.)
        ctx.map_fn, ctx.transpose_fn = apply, apply_transpose
        return apply(x)

    @staticmethod
    def backward(ctx, grad):
        return _LinearMap.apply(grad, ctx.transpose_fn, ctx.map_fn), None, None


_DENSE_EXACT_NORM_MAX = 2000  # exact ‖A‖₂ by SVD when min(m, d) is at most this


class MatrixOperator(LinearOperator):
    """A matrix acting on 1-D signals: ``A x`` (compressed sensing, tomography, ...).

    Parameters
    ----------
    A : array-like of shape (m, d), scipy sparse matrix/array, or scipy.sparse.linalg.LinearOperator
        The forward matrix. Signals have shape ``(d,)`` and measurements
        ``(m,)``; ``y`` must be given as ``(n_samples, d)`` (or with
        ``signal_shape=(d,)``).

        * dense: converted once per device and dtype to a dense torch tensor
          (``forward`` is a matmul, on GPU when the estimator runs there);
        * sparse: converted once per device and dtype to a torch sparse CSR
          tensor (sparse–dense products, on GPU too);
        * :class:`scipy.sparse.linalg.LinearOperator`: applied through its
          ``matmat``/``rmatmat`` (so it needs ``matvec`` and ``rmatvec``) on
          CPU numpy arrays, in float64. This path is **CPU-bound**: on a GPU
          every application copies the batch to the host and back. Gradients
          flow through it (its backward pass applies the adjoint).

    Notes
    -----
    ``norm`` is exact (equal to ``numpy.linalg.norm(A, 2)``, from the
    eigenvalues of the smaller Gram matrix) for dense and sparse matrices with
    ``min(m, d) <= 2000``; otherwise, and for LinearOperators, it is
    estimated by power iteration on ``AᵀA``. Complex matrices are not supported.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from retune_sklearn.operators import MatrixOperator
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> op = MatrixOperator(A)
    >>> op.measurement_shape((3,))
    (2,)
    >>> op.forward(torch.ones(1, 3, dtype=torch.float64))
    tensor([[ 3., 12.]], dtype=torch.float64)
    """

    _parameter_constraints = {
        "A": ["array-like", "sparse matrix", scipy.sparse.linalg.LinearOperator],
    }

    def __init__(self, A):
        self.A = A

    def _matrix(self):
        """``(kind, matrix)``: kind in {"dense", "sparse", "linop"}; validated once."""
        def build():
            A = self.A
            if isinstance(A, scipy.sparse.linalg.LinearOperator):
                kind, matrix = "linop", A
                if np.issubdtype(np.dtype(A.dtype), np.complexfloating):
                    raise ValueError("MatrixOperator `A` must be real; got a complex "
                                     f"LinearOperator (dtype {A.dtype}).")
            elif scipy.sparse.issparse(A):
                kind = "sparse"
                if np.iscomplexobj(A.data) or not np.issubdtype(A.dtype, np.number):
                    raise ValueError(f"MatrixOperator `A` must be a real numeric matrix; got "
                                     f"a sparse matrix of dtype {A.dtype}.")
                matrix = scipy.sparse.csr_matrix(A, dtype=np.float64)
                matrix.sum_duplicates()
                if not np.all(np.isfinite(matrix.data)):
                    raise ValueError("MatrixOperator `A` holds non-finite (NaN or inf) entries.")
            else:
                if isinstance(A, torch.Tensor):
                    A = A.detach().cpu().numpy()
                try:
                    array = np.asarray(A)
                    if np.iscomplexobj(array):
                        raise TypeError("complex")
                    matrix = array.astype(np.float64)
                except (TypeError, ValueError) as error:
                    raise ValueError("MatrixOperator `A` must be a real numeric array-like, a "
                                     "scipy sparse matrix or a scipy.sparse.linalg."
                                     f"LinearOperator; got {type(self.A).__name__}.") from error
                kind = "dense"
                if matrix.ndim == 2 and not np.all(np.isfinite(matrix)):
                    raise ValueError("MatrixOperator `A` holds non-finite (NaN or inf) entries.")
            shape = tuple(matrix.shape)
            if len(shape) != 2:
                raise ValueError(f"MatrixOperator `A` must be 2-D, of shape (m, d) = "
                                 f"(n_measurements, n_features); got {len(shape)} dimension(s), "
                                 f"shape {shape}.")
            if min(shape) < 1:
                raise ValueError(f"MatrixOperator `A` is empty (shape {shape}).")
            return kind, matrix
        return self._cached(("matrix",), build)

    @property
    def shape(self):
        """``(m, d)``: measurements and features of ``A``."""
        return tuple(self._matrix()[1].shape)

    def _check_signal_shape(self, signal_shape):
        d = self.shape[1]
        if signal_shape != (d,):
            raise ValueError(f"MatrixOperator acts on 1-D signals of length d = A.shape[1] = "
                             f"{d}; got signals of shape {signal_shape}. Give y as "
                             f"(n_samples, {d}) (or signal_shape=({d},)).")

    def measurement_shape(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return (self.shape[0],)

    def _torch_maps(self, device, dtype):
        """``(apply, apply_transpose)`` on 2-D batches ``(k, d)`` / ``(k, m)``."""
        def build():
            kind, matrix = self._matrix()
            if kind == "dense":
                a = torch.as_tensor(matrix, dtype=dtype, device=device)
                return (lambda x: x @ a.T), (lambda z: z @ a)
            if kind == "sparse":
                a, at = (_torch_csr(mat, device, dtype) for mat in (matrix, matrix.T.tocsr()))

                def apply(x):
                    return _LinearMap.apply(x, lambda v: (a @ v.T.contiguous()).T,
                                            lambda w: (at @ w.T.contiguous()).T)

                def apply_transpose(z):
                    return _LinearMap.apply(z, lambda w: (at @ w.T.contiguous()).T,
                                            lambda v: (a @ v.T.contiguous()).T)
                return apply, apply_transpose
            forward = _numpy_map(matrix.matmat, "matmat")
            adjoint = _numpy_map(matrix.rmatmat, "rmatmat")
            return ((lambda x: _LinearMap.apply(x, forward, adjoint)),
                    (lambda z: _LinearMap.apply(z, adjoint, forward)))
        return self._cached(("maps", str(device), dtype), build)

    def _apply(self, x, size, transpose):
        if x.shape[-1] != size:
            m, d = self.shape
            raise ValueError(f"MatrixOperator with A of shape {(m, d)}: "
                             f"{'adjoint' if transpose else 'forward'} expects batches of "
                             f"shape (n, {size}); got {tuple(x.shape)}.")
        apply, apply_transpose = self._torch_maps(x.device, x.dtype)
        flat = x.reshape(-1, size)
        out = (apply_transpose if transpose else apply)(flat)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def forward(self, x):
        return self._apply(x, self.shape[1], transpose=False)

    def normal(self, x):
        """``AᵀA x``; for a dense ``A`` with ``d ≤ 2m``, one product with the cached
        ``d × d`` Gram matrix (no more flops nor memory than ``A`` twice): on the small
        batches of compressed sensing each call's overhead is a good part of a step."""
        gram = self._cached(("gram", x.device, x.dtype), lambda: self._gram(x.device, x.dtype))
        if gram is None:
            return super().normal(x)
        if x.shape[-1] != gram.shape[0]:
            return self.forward(x)  # raises the forward's shape error
        return x @ gram

    def _gram(self, device, dtype):
        """``AᵀA`` as a tensor when ``A`` is dense with ``d ≤ 2m``, else None."""
        kind, matrix = self._matrix()
        m, d = matrix.shape
        if kind != "dense" or d > 2 * m:
            return None
        return torch.as_tensor(matrix.T @ matrix, dtype=dtype, device=device)

    def adjoint(self, z):
        return self._apply(z, self.shape[0], transpose=True)

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        self.check_signal_shape(signal_shape)
        kind, matrix = self._matrix()
        if kind != "linop" and min(matrix.shape) <= _DENSE_EXACT_NORM_MAX:
            def exact():
                # ‖A‖² = largest eigenvalue of the smaller Gram matrix (AAᵀ or AᵀA):
                # the same value as numpy.linalg.norm(A, 2), without densifying a
                # large sparse A nor an SVD of its long side.
                gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
                gram = gram.toarray() if scipy.sparse.issparse(gram) else np.asarray(gram)
                return math.sqrt(max(float(np.linalg.eigvalsh(gram)[-1]), 0.0))
            return self._cached(("norm",), exact)
        return super().norm(signal_shape, device=device, dtype=dtype)

    def _adjoint_hint(self):
        if self._matrix()[0] == "linop":
            return ("Check the `rmatvec`/`rmatmat` of the scipy LinearOperator given as "
                    "MatrixOperator `A`: it must compute Aᵀ z.")
        return "Fix the operator's adjoint."


def _torch_csr(matrix, device, dtype):
    """A scipy CSR matrix as a torch sparse CSR tensor."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(
            torch.as_tensor(matrix.indptr, dtype=torch.int64),
            torch.as_tensor(matrix.indices, dtype=torch.int64),
            torch.as_tensor(matrix.data, dtype=torch.float64),
            size=matrix.shape, check_invariants=True).to(device=device, dtype=dtype)


def _numpy_map(matmat, name):
    """Wrap ``matmat`` (numpy, columns) as a torch map of 2-D row batches."""
    def apply(x):
        # A copy: the user's matmat must not see (and may not modify) the iterate itself.
        array = x.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
        try:
            out = matmat(array.T)
        except (NotImplementedError, TypeError) as error:
            # A LinearOperator built without rmatvec raises one or the other.
            raise ValueError(f"MatrixOperator `A` (a scipy LinearOperator) failed in {name} "
                             f"({type(error).__name__}: {error}); it needs both matvec and "
                             "rmatvec (the adjoint).") from error
        out = np.ascontiguousarray(np.asarray(out, dtype=np.float64).T)
        return torch.as_tensor(out).to(device=x.device, dtype=x.dtype)
    return apply
