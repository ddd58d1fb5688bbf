"""Forward operators ``A`` of the reconstruction model ``X = A(y) + noise``.

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

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._params import ParameterObject

__all__ = ["LinearOperator", "Identity", "Blur", "Inpainting", "power_iteration", "check_adjoint"]


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
        raise ValueError(f"{name}.adjoint is not the adjoint of {name}.forward: the dot test "
                         f"gives ⟨A x, z⟩ = {lhs:.6g} but ⟨x, Aᵀ z⟩ = {rhs:.6g} (relative "
                         f"error {error:.1e} > rtol={rtol:g}) on random signals of shape "
                         f"{signal_shape}. Fix the operator's adjoint.")
    return error


class LinearOperator(ParameterObject):
    """Base class of forward operators.

    Subclasses implement :meth:`forward` and :meth:`adjoint`, and may override
    :meth:`measurement_shape` (default: same as the signal),
    :meth:`check_signal_shape` (validation) and :meth:`norm` (exact value
    instead of power iteration).
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


def _spatial_ndim(signal_shape):
    """1-D signals act on the last axis; everything else on the last two."""
    return 1 if len(signal_shape) == 1 else 2


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
        ndim = _spatial_ndim(signal_shape)
        kernel = self.kernel_array(ndim)
        spatial = tuple(signal_shape[-ndim:])
        if any(k > s for k, s in zip(kernel.shape, spatial)):
            raise ValueError(f"Blur kernel of shape {kernel.shape} is larger than the "
                             f"signal's spatial shape {spatial}; use a smaller `sigma`, "
                             "`size` or `kernel`.")

    def _transfer_function(self, spatial_shape, device, dtype):
        """rFFT of the kernel zero-padded to the signal, centred at index 0."""
        def build():
            ndim = len(spatial_shape)
            kernel = self.kernel_array(ndim)
            padded = np.zeros(spatial_shape)
            padded[tuple(slice(0, k) for k in kernel.shape)] = kernel
            padded = np.roll(padded, [-(k // 2) for k in kernel.shape], axis=tuple(range(ndim)))
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
        ndim = _spatial_ndim(signal_shape)
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

    def forward(self, x):
        return x * self._mask_tensor(x)

    def adjoint(self, z):
        return z * self._mask_tensor(z)

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        return float(self.mask_array(signal_shape).max())
