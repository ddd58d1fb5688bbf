"""Forward operators ``A`` of the reconstruction model ``X = A(y) + noise``.

Operators: :class:`Identity` (denoising), :class:`Blur` (circular
convolution), :class:`Inpainting` (pixel mask), :class:`Downsampling`
(anti-aliasing blur then decimation: super-resolution),
:class:`MatrixOperator` (a dense or sparse matrix, or a
:class:`scipy.sparse.linalg.LinearOperator`, acting on 1-D signals:
compressed sensing) and :class:`CallableOperator` (your own pair of torch
callables).

Every operator is a small parameter object (``get_params``/``set_params``
come from :class:`sklearn.base.BaseEstimator`, so ``clone`` and grid search
over ``operator__<param>`` work) with three torch methods acting on batches
of shape ``(n_samples, *signal_shape)``:

* ``forward(x)`` returns ``A x`` of shape ``(n_samples, *measurement_shape)``;
* ``adjoint(z)`` returns ``Aᵀ z``;
* ``norm(signal_shape)`` returns ``‖A‖`` (largest singular value).

:func:`check_adjoint` runs the dot test ``⟨A x, z⟩ = ⟨x, Aᵀ z⟩`` on any
operator; the estimator runs it at ``fit``.

Tensors derived from the parameters (FFT of a blur kernel, a random mask)
are built lazily for the shape, device and dtype of the input and cached;
the cache is not pickled.
"""

import math
import numbers
import warnings

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from sklearn.utils import check_random_state

from .._params import ParameterObject, spatial_ndim

__all__ = [
    "Blur",
    "CallableOperator",
    "Downsampling",
    "Identity",
    "Inpainting",
    "LinearOperator",
    "MatrixOperator",
    "check_adjoint",
    "power_iteration",
]


def power_iteration(apply_gram, shape, *, n_iter=100, tol=1e-7, device="cpu",
                    dtype=torch.float64, random_state=0):
    """Largest eigenvalue of a symmetric positive semi-definite linear map.

    Parameters
    ----------
    apply_gram : callable
        Maps a tensor of shape ``(1, *shape)`` to a tensor of the same shape,
        e.g. ``lambda x: A.adjoint(A.forward(x))``.
    shape : tuple of int
        Shape of one input (without the batch axis).
    n_iter : int, default=100
        Maximum number of iterations.
    tol : float, default=1e-7
        Stop when the relative change of the estimate falls below ``tol``.
    device, dtype : torch device and dtype of the iterate.
    random_state : int, default=0
        Seed of the random starting vector (fixed: the estimate is reproducible).

    Returns
    -------
    float
        The estimated largest eigenvalue (``‖A‖²`` for ``AᵀA``).
    """
    generator = torch.Generator().manual_seed(random_state)
    v = torch.randn((1, *shape), generator=generator, dtype=torch.float64)
    v = (v / v.norm()).to(device=device, dtype=dtype)
    estimate = 0.0
    with torch.no_grad():
        for _ in range(n_iter):
            w = apply_gram(v)
            new_estimate = float(torch.sum(v * w))
            w_norm = w.norm()
            if w_norm == 0:
                return 0.0
            v = w / w_norm
            if abs(new_estimate - estimate) <= tol * abs(new_estimate):
                return new_estimate
            estimate = new_estimate
    return estimate


def check_adjoint(operator, signal_shape, *, n_samples=2, rtol=1e-4, device="cpu",
                  dtype=torch.float64, random_state=0):
    """Dot test: check that ``operator.adjoint`` is the adjoint of ``operator.forward``.

    Draws random ``x`` (signals) and ``z`` (measurements) and compares
    ``⟨A x, z⟩`` with ``⟨x, Aᵀ z⟩``. A wrong adjoint makes the
    forward–backward iterations minimize the wrong energy (or diverge)
    without any other symptom, so the estimator runs this test at ``fit``.

    Parameters
    ----------
    operator : LinearOperator
        Any object with ``forward``, ``adjoint`` and ``measurement_shape``.
    signal_shape : tuple of int
        Shape of one signal (without the batch axis).
    n_samples : int, default=2
        Batch size of the random inputs.
    rtol : float, default=1e-4
        Largest accepted ``|⟨A x, z⟩ − ⟨x, Aᵀ z⟩| / max(‖A x‖‖z‖, ‖x‖‖Aᵀ z‖)``.
    device, dtype : torch device and dtype of the test (float64 by default:
        float32 round-off alone can approach ``rtol`` on large signals).
    random_state : int, default=0
        Seed of the random inputs.

    Returns
    -------
    float
        The relative error.

    Raises
    ------
    ValueError
        If ``forward`` or ``adjoint`` returns the wrong shape or non-finite
        values, or if the relative error exceeds ``rtol``.
    """
    name = type(operator).__name__
    signal_shape = tuple(signal_shape)
    measurement_shape = tuple(operator.measurement_shape(signal_shape))
    generator = torch.Generator().manual_seed(random_state)

    def draw(shape):
        return torch.randn((n_samples, *shape), generator=generator,
                           dtype=torch.float64).to(device=device, dtype=dtype)
    x, z = draw(signal_shape), draw(measurement_shape)
    with torch.no_grad():
        ax, atz = operator.forward(x), operator.adjoint(z)
    for label, out, shape in (("forward", ax, measurement_shape), ("adjoint", atz, signal_shape)):
        if tuple(out.shape) != (n_samples, *shape):
            raise ValueError(f"{name}.{label} returned a batch of shape {tuple(out.shape)}; "
                             f"expected {(n_samples, *shape)} for signals of shape "
                             f"{signal_shape} (measurement_shape {measurement_shape}).")
        if not torch.isfinite(out).all():
            raise ValueError(f"{name}.{label} returned non-finite values on random "
                             f"finite inputs of shape {signal_shape}.")
    lhs, rhs = float(torch.sum(ax * z)), float(torch.sum(x * atz))
    scale = max(float(ax.norm() * z.norm()), float(x.norm() * atz.norm()))
    error = abs(lhs - rhs) / scale if scale > 0 else 0.0
    if not error <= rtol:
        hint = getattr(operator, "_adjoint_hint", None)
        hint = hint() if callable(hint) else "Fix the operator's adjoint."
        raise ValueError(f"{name}.adjoint is not the adjoint of {name}.forward: the dot test "
                         f"gives ⟨A x, z⟩ = {lhs:.6g} but ⟨x, Aᵀ z⟩ = {rhs:.6g} (relative "
                         f"error {error:.1e} > rtol={rtol:g}) on random signals of shape "
                         f"{signal_shape}. {hint}")
    return error


class LinearOperator(ParameterObject):
    """Base class of forward operators.

    Subclasses implement :meth:`forward` and :meth:`adjoint`, and may override
    :meth:`measurement_shape` (default: same as the signal),
    :meth:`check_signal_shape` (validation) and :meth:`norm` (exact value
    instead of power iteration). To plug in an operator written as two torch
    functions without subclassing, use :class:`CallableOperator`.
    """

    def forward(self, x):
        """Apply ``A`` to a batch ``x`` of shape ``(n, *signal_shape)``."""
        raise NotImplementedError

    def adjoint(self, z):
        """Apply ``Aᵀ`` to a batch ``z`` of shape ``(n, *measurement_shape)``."""
        raise NotImplementedError

    def measurement_shape(self, signal_shape):
        """Shape of one measurement for a signal of shape ``signal_shape``."""
        return tuple(signal_shape)

    def check_signal_shape(self, signal_shape):
        """Raise ``ValueError`` if the operator cannot act on ``signal_shape``."""

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        """Operator norm ``‖A‖`` on signals of shape ``signal_shape``.

        Estimated by power iteration on ``AᵀA``; subclasses with a closed
        form override it.
        """
        self.check_signal_shape(signal_shape)
        gram = power_iteration(lambda x: self.adjoint(self.forward(x)),
                               tuple(signal_shape), device=device, dtype=dtype)
        return math.sqrt(max(gram, 0.0))


class Identity(LinearOperator):
    """The identity operator (denoising problems)."""

    def forward(self, x):
        return x

    def adjoint(self, z):
        return z

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        return 1.0


def gaussian_kernel(sigma, size, ndim):
    """Normalized Gaussian kernel of odd length ``size`` along ``ndim`` axes."""
    radius = size // 2
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    profile = np.exp(-0.5 * (t / sigma) ** 2)
    kernel = profile
    for _ in range(ndim - 1):
        kernel = np.multiply.outer(kernel, profile)
    return kernel / kernel.sum()


class Blur(LinearOperator):
    """Convolution with circular boundary conditions, applied by FFT.

    Parameters
    ----------
    sigma : float, default=None
        Standard deviation (pixels) of a Gaussian kernel. Exactly one of
        ``sigma`` and ``kernel`` must be given.
    kernel : array-like, default=None
        Explicit kernel: 2-D for images, 1-D for 1-D signals. Its centre is
        the pixel at index ``size // 2`` along each axis.
    size : int, default=None
        Side of the Gaussian kernel (odd); defaults to ``2 * ceil(3 sigma) + 1``.
        Ignored when ``kernel`` is given.

    Notes
    -----
    Acts on the last axis of 1-D signals and on the last two axes otherwise
    (channels of ``(C, H, W)`` images are blurred independently).
    """

    def __init__(self, sigma=None, kernel=None, size=None):
        self.sigma = sigma
        self.kernel = kernel
        self.size = size

    def kernel_array(self, ndim):
        """The convolution kernel as a float64 numpy array with ``ndim`` axes."""
        if (self.sigma is None) == (self.kernel is None):
            raise ValueError("Blur needs exactly one of `sigma` and `kernel`; "
                             f"got sigma={self.sigma!r}, kernel={'given' if self.kernel is not None else None}.")
        if self.kernel is not None:
            kernel = np.asarray(self.kernel, dtype=np.float64)
            if kernel.ndim != ndim or not np.all(np.isfinite(kernel)):
                raise ValueError(f"Blur `kernel` must be a finite {ndim}-D array for "
                                 f"these signals; got shape {kernel.shape}.")
            return kernel
        if not isinstance(self.sigma, numbers.Real) or not self.sigma > 0:
            raise ValueError(f"Blur `sigma` must be a positive number; got {self.sigma!r}.")
        size = self.size if self.size is not None else 2 * math.ceil(3 * self.sigma) + 1
        if not isinstance(size, numbers.Integral) or size < 1 or size % 2 == 0:
            raise ValueError(f"Blur `size` must be a positive odd integer; got {self.size!r}.")
        return gaussian_kernel(self.sigma, size, ndim)

    def check_signal_shape(self, signal_shape):
        ndim = spatial_ndim(signal_shape)
        kernel = self.kernel_array(ndim)
        spatial = tuple(signal_shape[-ndim:])
        if any(k > s for k, s in zip(kernel.shape, spatial)):
            raise ValueError(f"Blur kernel of shape {kernel.shape} is larger than the "
                             f"signal's spatial shape {spatial}; use a smaller `sigma`, "
                             "`size` or `kernel`.")

    def padded_kernel(self, spatial_shape):
        """The kernel zero-padded to ``spatial_shape``, centred at index 0 (float64 numpy)."""
        ndim = len(spatial_shape)
        kernel = self.kernel_array(ndim)
        padded = np.zeros(spatial_shape)
        padded[tuple(slice(0, k) for k in kernel.shape)] = kernel
        return np.roll(padded, [-(k // 2) for k in kernel.shape], axis=tuple(range(ndim)))

    def _transfer_function(self, spatial_shape, device, dtype):
        """rFFT of the kernel zero-padded to the signal, centred at index 0."""
        def build():
            padded = self.padded_kernel(tuple(spatial_shape))
            return torch.fft.rfftn(torch.as_tensor(padded, dtype=dtype, device=device))
        return self._cached(("otf", tuple(spatial_shape), str(device), dtype), build)

    def _apply(self, x, conjugate):
        ndim = 1 if x.dim() == 2 else 2
        spatial = tuple(x.shape[-ndim:])
        otf = self._transfer_function(spatial, x.device, x.dtype)
        if conjugate:
            otf = otf.conj()
        axes = tuple(range(-ndim, 0))
        return torch.fft.irfftn(torch.fft.rfftn(x, dim=axes) * otf, s=spatial, dim=axes)

    def forward(self, x):
        return self._apply(x, conjugate=False)

    def adjoint(self, z):
        return self._apply(z, conjugate=True)

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        # Circular convolution is diagonalized by the DFT: ‖A‖ = max |OTF|.
        self.check_signal_shape(signal_shape)
        ndim = spatial_ndim(signal_shape)
        otf = self._transfer_function(tuple(signal_shape[-ndim:]), "cpu", torch.float64)
        return float(otf.abs().max())


class Inpainting(LinearOperator):
    """Pixel mask: keeps the entries where ``mask`` is 1 and zeroes the others.

    Parameters
    ----------
    mask : array-like of {0, 1}, default=None
        The mask, of the signal's shape or of its trailing spatial shape (then
        shared across channels). If None, a random mask is drawn.
    keep_prob : float in (0, 1], default=0.5
        Probability that an entry is kept when ``mask`` is None.
    random_state : int, RandomState instance or None, default=0
        Seed of the random mask. The default is a fixed seed so that the
        operator used to simulate data and the one given to the estimator
        (which ``clone`` copies by parameters) draw the same mask; with None
        each construction draws a different mask.

    Notes
    -----
    Measurements keep the signal's shape (missing entries are zeros).
    """

    def __init__(self, mask=None, keep_prob=0.5, random_state=0):
        self.mask = mask
        self.keep_prob = keep_prob
        self.random_state = random_state

    def mask_array(self, signal_shape):
        """The mask as a float64 array broadcastable to ``signal_shape``."""
        signal_shape = tuple(signal_shape)
        if self.mask is None:
            if not isinstance(self.keep_prob, numbers.Real) or not 0 < self.keep_prob <= 1:
                raise ValueError("Inpainting `keep_prob` must be in (0, 1]; "
                                 f"got {self.keep_prob!r}.")
            rng = check_random_state(self.random_state)
            return (rng.random_sample(signal_shape) < self.keep_prob).astype(np.float64)
        mask = np.asarray(self.mask)
        if mask.shape != signal_shape[len(signal_shape) - mask.ndim:] or mask.ndim == 0:
            raise ValueError(f"Inpainting `mask` has shape {mask.shape}; expected the "
                             f"signal shape {signal_shape} or its trailing axes.")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("Inpainting `mask` must contain only 0/1 (or booleans).")
        if not mask.any():
            raise ValueError("Inpainting `mask` keeps no entry (all zeros).")
        return mask.astype(np.float64)

    def check_signal_shape(self, signal_shape):
        self.mask_array(signal_shape)

    def _mask_tensor(self, x):
        # The signal shape is unknown here; the cached mask is keyed by the
        # trailing shape of the batch (mask shapes are checked at fit time).
        shape = tuple(x.shape[1:])
        # One draw per shape: with random_state=None, every dtype and device
        # (power iteration in float64, training in float32) must see the same mask.
        mask = self._cached(("mask", shape), lambda: self.mask_array(shape))
        return self._cached(("mask", shape, str(x.device), x.dtype), lambda: torch.as_tensor(
            mask, dtype=x.dtype, device=x.device))

    def __getstate__(self):
        state = super().__getstate__()
        # A mask drawn from random_state=None (or a RandomState) cannot be
        # drawn again: keep the numpy draws so a pickled model predicts alike.
        drawn = {key: mask for key, mask in self.__dict__.get("_cache", {}).items()
                 if key[0] == "mask" and len(key) == 2}
        if drawn and self.mask is None:
            state["_cache"] = drawn
        return state

    def forward(self, x):
        return x * self._mask_tensor(x)

    def adjoint(self, z):
        return z * self._mask_tensor(z)

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        return float(self.mask_array(signal_shape).max())


_FILTERS = ("gaussian", "box", "none")


class Downsampling(LinearOperator):
    """Anti-aliasing blur followed by decimation (super-resolution): ``A = S ∘ H``.

    ``H`` is a circular convolution (a :class:`Blur`) and ``S`` keeps every
    ``factor``-th pixel, starting at index 0, along the spatial axes: the last
    axis of 1-D signals, the last two axes otherwise (channels of
    ``(C, H, W)`` images are processed independently). The adjoint is
    ``Hᵀ ∘ Sᵀ``: zero-upsampling (the measurements are put back at the kept
    pixels, zeros elsewhere) followed by correlation with the filter.

    Measurements are smaller than signals: a signal of spatial shape
    ``(H, W)`` gives measurements of shape ``(H / factor, W / factor)``, so
    ``X`` and ``y`` given to the estimator have different shapes.

    Parameters
    ----------
    factor : int, default=2
        Decimation factor, at least 1. The spatial sizes of the signals must
        be divisible by it.
    filter : {"gaussian", "box", "none"} or array-like, default="gaussian"
        Anti-aliasing filter ``H``:

        * ``"gaussian"``: normalized Gaussian of standard deviation ``sigma``,
          centred on the kept pixels (see :class:`Blur` for its size);
        * ``"box"``: the mean over each ``factor × factor`` block (each kept
          pixel ``i·factor`` is the average of pixels ``i·factor`` to
          ``i·factor + factor − 1``), as
          :func:`skimage.transform.downscale_local_mean`;
        * ``"none"``: plain decimation (no filter, aliasing included);
        * an array: an explicit kernel (1-D for 1-D signals, 2-D for images)
          with the centre convention of :class:`Blur`.
    sigma : float, default=None
        Standard deviation (pixels) of the Gaussian filter; only with
        ``filter="gaussian"``. Defaults to ``factor / 2``, whose frequency
        response at the Nyquist frequency of the coarse grid is
        ``exp(-π²/8) ≈ 0.29`` (a common trade-off between aliasing and
        blur).

    Notes
    -----
    ``norm`` is exact: ``S H Hᵀ Sᵀ`` is a circular convolution on the coarse
    grid whose transfer function is the mean of ``|Ĥ|²`` over the
    ``factor**ndim`` aliased frequencies.

    Examples
    --------
    >>> import torch
    >>> from retune_sklearn.operators import Downsampling
    >>> op = Downsampling(factor=2, filter="box")
    >>> op.measurement_shape((3, 32, 32))
    (3, 16, 16)
    >>> op.forward(torch.ones(5, 3, 32, 32)).shape
    torch.Size([5, 3, 16, 16])
    """

    def __init__(self, factor=2, filter="gaussian", sigma=None):
        self.factor = factor
        self.filter = filter
        self.sigma = sigma

    def _factor(self):
        factor = self.factor
        if (not isinstance(factor, numbers.Integral) or isinstance(factor, bool)
                or factor < 1):
            raise ValueError(f"Downsampling `factor` must be a positive integer; got {factor!r}.")
        return int(factor)

    def _filter_name(self):
        """The filter's name, or None for an explicit kernel."""
        if isinstance(self.filter, str):
            if self.filter not in _FILTERS:
                raise ValueError(f"Downsampling `filter` must be one of {_FILTERS} or an "
                                 f"array-like kernel; got {self.filter!r}.")
            name = self.filter
        elif self.filter is None:
            raise ValueError(f"Downsampling `filter` must be one of {_FILTERS} or an "
                             "array-like kernel; got None (use filter='none' for no filter).")
        else:
            name = None
        if self.sigma is not None:
            if name != "gaussian":
                shown = repr(name) if name is not None else "an explicit kernel"
                raise ValueError("Downsampling `sigma` is only used with filter='gaussian'; "
                                 f"got sigma={self.sigma!r} with filter={shown}.")
            if (not isinstance(self.sigma, numbers.Real) or isinstance(self.sigma, bool)
                    or not 0 < self.sigma < math.inf):
                raise ValueError("Downsampling `sigma` must be a positive number; "
                                 f"got {self.sigma!r}.")
        return name

    def blur(self, ndim):
        """The anti-aliasing filter ``H`` as a :class:`Blur` (None for ``filter="none"``).

        Parameters
        ----------
        ndim : {1, 2}
            Number of spatial axes of the signals.
        """
        def build():
            factor, name = self._factor(), self._filter_name()
            if name == "none":
                return None
            if name == "gaussian":
                return Blur(sigma=float(self.sigma) if self.sigma is not None else factor / 2)
            if name == "box":
                # Length 2f-1 with its centre at f-1: output i averages x[i .. i+f-1].
                profile = np.r_[np.full(factor, 1.0 / factor), np.zeros(factor - 1)]
                kernel = profile
                for _ in range(ndim - 1):
                    kernel = np.multiply.outer(kernel, profile)
                return Blur(kernel=kernel)
            try:
                kernel = np.asarray(self.filter, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError("Downsampling `filter` must be one of "
                                 f"{_FILTERS} or a numeric array-like kernel.") from error
            if kernel.ndim != ndim or kernel.size == 0 or not np.all(np.isfinite(kernel)):
                raise ValueError(f"Downsampling `filter` kernel must be a non-empty finite "
                                 f"{ndim}-D array for these signals; got shape {kernel.shape}.")
            return Blur(kernel=kernel)
        return self._cached(("blur", ndim), build)

    def check_signal_shape(self, signal_shape):
        signal_shape = tuple(signal_shape)
        factor = self._factor()
        ndim = spatial_ndim(signal_shape)
        spatial = signal_shape[-ndim:]
        if any(s % factor for s in spatial):
            raise ValueError(f"Downsampling factor={factor} must divide the spatial sizes of "
                             f"the signals; got signal shape {signal_shape} (spatial "
                             f"{spatial}). Crop or pad y, or change `factor`.")
        blur = self.blur(ndim)
        if blur is not None:
            kernel_shape = blur.kernel_array(ndim).shape
            if any(k > s for k, s in zip(kernel_shape, spatial)):
                raise ValueError(f"Downsampling filter of shape {kernel_shape} is larger than "
                                 f"the signal's spatial shape {spatial}; use a smaller "
                                 "`sigma` or kernel.")

    def measurement_shape(self, signal_shape):
        signal_shape = tuple(signal_shape)
        self.check_signal_shape(signal_shape)
        factor = self._factor()
        ndim = spatial_ndim(signal_shape)
        return signal_shape[:-ndim] + tuple(s // factor for s in signal_shape[-ndim:])

    def forward(self, x):
        ndim = 1 if x.dim() == 2 else 2
        factor = self._factor()
        blur = self.blur(ndim)
        if blur is not None:
            x = blur.forward(x)
        keep = (Ellipsis,) + (slice(None, None, factor),) * ndim
        return x[keep].contiguous()

    def adjoint(self, z):
        ndim = 1 if z.dim() == 2 else 2
        factor = self._factor()
        shape = tuple(z.shape[:-ndim]) + tuple(s * factor for s in z.shape[-ndim:])
        up = z.new_zeros(shape)
        up[(Ellipsis,) + (slice(None, None, factor),) * ndim] = z
        blur = self.blur(ndim)
        return up if blur is None else blur.adjoint(up)

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        signal_shape = tuple(signal_shape)
        self.check_signal_shape(signal_shape)
        ndim = spatial_ndim(signal_shape)
        blur = self.blur(ndim)
        if blur is None:
            return 1.0
        factor = self._factor()
        spatial = signal_shape[-ndim:]
        power = np.abs(np.fft.fftn(blur.padded_kernel(spatial))) ** 2
        # Frequency k + j·(N/f) aliases onto k on the coarse grid: average over j.
        split = []
        for s in spatial:
            split += [factor, s // factor]
        aliased = power.reshape(split).mean(axis=tuple(range(0, 2 * ndim, 2)))
        return math.sqrt(float(aliased.max()))


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

    def check_signal_shape(self, signal_shape):
        d = self.shape[1]
        signal_shape = tuple(signal_shape)
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
        array = x.detach().to(device="cpu", dtype=torch.float64).numpy()
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


class CallableOperator(LinearOperator):
    """A forward operator given as two torch callables: the way to plug in your own.

    Parameters
    ----------
    forward : callable
        ``forward(x) -> A x``: maps a torch tensor of shape
        ``(n, *signal_shape)`` to one of shape ``(n, *measurement_shape)``,
        keeping the input's device and dtype (the estimator calls it in
        float64 for its checks and in its own dtype for training, on its
        device). It must be linear and differentiable by autograd (plain torch
        operations are), or gradients will not reach the learned weights.
    adjoint : callable
        ``adjoint(z) -> Aᵀ z``: the transpose of ``forward``, from
        ``(n, *measurement_shape)`` to ``(n, *signal_shape)``. The estimator
        checks it with a dot test at ``fit`` (:func:`check_adjoint`) and
        raises a ``ValueError`` if it is wrong. If you only have
        ``forward``, ``torch.func.vjp(forward, x)[1]`` computes its adjoint.
    measurement_shape : tuple of int, callable or None, default=None
        Shape of one measurement: a fixed tuple, or a callable
        ``signal_shape -> tuple``. None means the signal's shape.

    Notes
    -----
    The parameters are readable with ``get_params()`` (``op.forward`` is the
    method that calls the ``forward`` parameter). Pickling (and so
    ``joblib`` parallelism in ``GridSearchCV(n_jobs>1)`` and saving a fitted
    estimator) pickles the callables by reference: use module-level
    functions (or ``functools.partial`` of them), not lambdas or nested
    functions. ``clone`` copies them with :func:`copy.deepcopy`, which keeps
    functions as they are. ``norm`` is estimated by power iteration.

    Examples
    --------
    >>> import torch
    >>> from retune_sklearn.operators import CallableOperator, check_adjoint
    >>> def crop(x):
    ...     return x[..., 2:-2]
    >>> def pad(z):
    ...     return torch.nn.functional.pad(z, (2, 2))
    >>> op = CallableOperator(crop, pad, measurement_shape=lambda s: (s[0] - 4,))
    >>> op.measurement_shape((16,))
    (12,)
    >>> check_adjoint(op, (16,)) < 1e-12
    True
    """

    _PARAMS = ("forward", "adjoint", "measurement_shape")

    def __init__(self, forward, adjoint, measurement_shape=None):
        # Stored under private names: `forward`, `adjoint` and `measurement_shape`
        # are the operator's methods (get_params/set_params below map the names).
        self._forward_fn = forward
        self._adjoint_fn = adjoint
        self._measurement_shape_spec = measurement_shape

    def _param_values(self):
        return {"forward": self._forward_fn, "adjoint": self._adjoint_fn,
                "measurement_shape": self._measurement_shape_spec}

    def get_params(self, deep=True):
        """Get the parameters ``forward``, ``adjoint`` and ``measurement_shape``.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of parameters that have ``get_params``.

        Returns
        -------
        dict
        """
        out = {}
        for key, value in self._param_values().items():
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params):
        """Set the parameters ``forward``, ``adjoint`` and ``measurement_shape``.

        Returns
        -------
        self : CallableOperator
        """
        attributes = {"forward": "_forward_fn", "adjoint": "_adjoint_fn",
                      "measurement_shape": "_measurement_shape_spec"}
        nested = {}
        for key, value in params.items():
            name, delim, sub_key = key.partition("__")
            if name not in attributes:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. Valid "
                                 f"parameters are: {list(self._PARAMS)!r}.")
            if delim:
                nested.setdefault(name, {})[sub_key] = value
            else:
                setattr(self, attributes[name], value)
        for name, sub_params in nested.items():
            getattr(self, attributes[name]).set_params(**sub_params)
        self.__dict__.pop("_cache", None)
        return self

    def _callable(self, name):
        function = self._param_values()[name]
        if not callable(function):
            raise TypeError(f"CallableOperator `{name}` must be a callable mapping torch "
                            f"tensors to torch tensors; got {type(function).__name__}.")
        return function

    def check_signal_shape(self, signal_shape):
        self._callable("forward")
        self._callable("adjoint")
        self.measurement_shape(signal_shape)

    def measurement_shape(self, signal_shape):
        signal_shape = tuple(signal_shape)
        spec = self._measurement_shape_spec
        if spec is None:
            return signal_shape
        value = spec(signal_shape) if callable(spec) else spec
        try:
            shape = tuple(value)
        except TypeError:
            shape = ()
        if not shape or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                and s > 0 for s in shape):
            where = "returned" if callable(spec) else "is"
            raise ValueError(f"CallableOperator `measurement_shape` must be a tuple of positive "
                             f"integers or a callable returning one; it {where} {value!r} for "
                             f"signals of shape {signal_shape}.")
        return tuple(int(s) for s in shape)

    def _call(self, name, tensor):
        out = self._callable(name)(tensor)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"CallableOperator `{name}` must return a torch.Tensor; got "
                            f"{type(out).__name__}.")
        return out

    def forward(self, x):
        return self._call("forward", x)

    def adjoint(self, z):
        return self._call("adjoint", z)

    def _adjoint_hint(self):
        return ("Check the `adjoint` callable given to CallableOperator: it must compute the "
                "transpose of `forward` (⟨forward(x), z⟩ = ⟨x, adjoint(z)⟩ for all x, z); "
                "torch.func.vjp(forward, x)[1](z) computes it.")
