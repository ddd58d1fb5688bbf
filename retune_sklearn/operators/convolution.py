"""Convolutions: :class:`Blur` and :class:`Downsampling` (blur then decimation).

Both take ``boundary="periodic"`` (circular, by FFT) or ``"reflect"``
(half-sample symmetric extension of the signal, see
:mod:`retune_sklearn._boundary`): the signal is padded symmetrically by the
kernel's radius, convolved circularly on the padded grid (the wrap-around
only reaches the margins) and cropped; the adjoint zero-pads, correlates and
folds the margins back onto the pixels they copy.
"""

import math
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import StrOptions

from .._boundary import boundary_constraint, pad_reflect, pad_reflect_adjoint
from .._params import StrictInterval, positive_int, spatial_ndim
from ._base import LinearOperator


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
    """Convolution with periodic or symmetric (reflective) boundary conditions, by FFT.

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
    boundary : {"periodic", "reflect"}, default="periodic"
        Values outside the signal: ``"periodic"`` wraps around (circular
        convolution); ``"reflect"`` mirrors the signal about its edges,
        the edge pixel included (``x[-1] = x[0]``, as
        ``scipy.ndimage.convolve(mode="reflect")``), which is what a photo
        cropped from a larger scene resembles more.

    Notes
    -----
    Acts on the last axis of 1-D signals and on the last two axes otherwise
    (channels of ``(C, H, W)`` images are blurred independently).

    ``norm`` is exact: the maximum of the transfer function for
    ``"periodic"``; for ``"reflect"`` with a kernel of odd sides symmetric
    along each axis (a Gaussian), the maximum of its DCT-II eigenvalues
    (the transfer function on the doubled grid), otherwise power iteration.
    """

    _parameter_constraints = {
        "sigma": [None, StrictInterval(Real, 0, None, closed="neither")],
        "kernel": [None, "array-like"],
        "size": [None, positive_int()],
        "boundary": boundary_constraint(),
    }

    def __init__(self, sigma=None, kernel=None, size=None, boundary="periodic"):
        self.sigma = sigma
        self.kernel = kernel
        self.size = size
        self.boundary = boundary

    def _explicit_kernel(self, ndim):
        kernel = np.asarray(self.kernel, dtype=np.float64)
        if kernel.ndim != ndim or not np.all(np.isfinite(kernel)):
            raise ValueError(f"Blur `kernel` must be a finite {ndim}-D array for "
                             f"these signals; got shape {kernel.shape}.")
        return kernel

    def kernel_shape(self, ndim):
        """Shape of the kernel with ``ndim`` axes (a Gaussian one is not built)."""
        if (self.sigma is None) == (self.kernel is None):
            raise ValueError("Blur needs exactly one of `sigma` and `kernel`; got "
                             f"sigma={self.sigma!r}, "
                             f"kernel={'given' if self.kernel is not None else None}.")
        if self.kernel is not None:
            return self._explicit_kernel(ndim).shape
        size = self.size if self.size is not None else 2 * math.ceil(3 * self.sigma) + 1
        if size % 2 == 0:
            raise ValueError(f"Blur `size` must be a positive odd integer; got {self.size!r}.")
        return (size,) * ndim

    def kernel_array(self, ndim):
        """The convolution kernel as a float64 numpy array with ``ndim`` axes."""
        shape = self.kernel_shape(ndim)
        if self.kernel is not None:
            return self._explicit_kernel(ndim)
        return gaussian_kernel(self.sigma, shape[0], ndim)

    def _check_kernel_fits(self, spatial_shape, label="Blur kernel",
                           remedy="`sigma`, `size` or `kernel`"):
        """Refuse a kernel larger than the signal, before building it."""
        shape = self.kernel_shape(len(spatial_shape))
        if any(k > s for k, s in zip(shape, spatial_shape)):
            raise ValueError(f"{label} of shape {shape} is larger than the signal's spatial "
                             f"shape {tuple(spatial_shape)}; use a smaller {remedy}.")

    def _check_signal_shape(self, signal_shape):
        self._check_kernel_fits(signal_shape[-spatial_ndim(signal_shape):])

    def padded_kernel(self, spatial_shape):
        """The kernel zero-padded to ``spatial_shape``, centred at index 0 (float64 numpy)."""
        ndim = len(spatial_shape)
        self._check_kernel_fits(spatial_shape)
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

    def reflect_pads(self, ndim):
        """``(before, after)`` symmetric padding per axis that the kernel reads beyond the edges.

        Output pixel ``i`` reads input pixels ``i - c`` to ``i + k - 1 - c``
        (``c = k // 2``, the kernel's centre; the kernel is flipped by the
        convolution): ``k - 1 - c`` before the start and ``c`` after the end.
        """
        return tuple((k - 1 - k // 2, k // 2) for k in self.kernel_shape(ndim))

    def _circular(self, x, ndim, transfer="kernel"):
        """Multiply ``x``'s spectrum by a transfer function: the kernel's (``A``), its
        conjugate (``Aᵀ``) or its squared modulus (``AᵀA`` in one FFT pair)."""
        spatial = tuple(x.shape[-ndim:])
        otf = self._transfer_function(spatial, x.device, x.dtype)
        if transfer == "conjugate":
            otf = otf.conj()
        elif transfer == "gram":
            otf = self._cached(("gram", spatial, str(x.device), x.dtype),
                               lambda: otf.abs().square())
        axes = tuple(range(-ndim, 0))
        return torch.fft.irfftn(torch.fft.rfftn(x, dim=axes) * otf, s=spatial, dim=axes)

    def _apply(self, x, conjugate):
        ndim = 1 if x.dim() == 2 else 2
        if self.boundary != "reflect":
            return self._circular(x, ndim, "conjugate" if conjugate else "kernel")
        pads = self.reflect_pads(ndim)
        # The pads are at most the kernel's radius, so the circular wrap-around on the
        # padded grid only reaches the margins: forward = crop ∘ circ ∘ pad, adjoint reversed.
        if conjugate:
            flat = [p for before_after in reversed(pads) for p in before_after]
            return pad_reflect_adjoint(self._circular(F.pad(x, flat), ndim, "conjugate"), pads)
        crop = (Ellipsis,) + tuple(slice(b, b + s) for (b, _), s in zip(pads, x.shape[-ndim:]))
        return self._circular(pad_reflect(x, pads), ndim)[crop]

    def forward(self, x):
        return self._apply(x, conjugate=False)

    def adjoint(self, z):
        return self._apply(z, conjugate=True)

    def normal(self, x):
        if self.boundary == "reflect":  # pad and crop sit between the two convolutions
            return super().normal(x)
        return self._circular(x, 1 if x.dim() == 2 else 2, "gram")

    def _dct_diagonal(self, ndim):
        """Whether the reflect convolution is diagonal in the DCT-II basis (odd, even kernel)."""
        kernel = self.kernel_array(ndim)
        return all(k % 2 == 1 for k in kernel.shape) and all(
            np.allclose(kernel, np.flip(kernel, axis), rtol=0,
                        atol=1e-14 * np.abs(kernel).max()) for axis in range(ndim))

    def norm(self, signal_shape, *, device="cpu", dtype=torch.float64):
        self.check_signal_shape(signal_shape)
        ndim = spatial_ndim(signal_shape)
        spatial = tuple(signal_shape[-ndim:])
        if self.boundary != "reflect":
            # Circular convolution is diagonalized by the DFT: ‖A‖ = max |OTF|.
            otf = self._transfer_function(spatial, "cpu", torch.float64)
            return float(otf.abs().max())
        if not self._dct_diagonal(ndim):
            return super().norm(signal_shape, device=device, dtype=dtype)
        # A symmetric kernel maps the mirrored signal (period 2N) to the mirrored output:
        # the DCT-II vectors are eigenvectors, with the doubled grid's transfer function at
        # frequencies 0..N-1 as eigenvalues.
        otf = np.fft.fftn(self.padded_kernel(tuple(2 * s for s in spatial)))
        return float(np.abs(otf[tuple(slice(0, s) for s in spatial)]).max())


_FILTERS = ("gaussian", "box", "none")


class Downsampling(LinearOperator):
    """Anti-aliasing blur followed by decimation (super-resolution): ``A = S ∘ H``.

    ``H`` is a convolution (a :class:`Blur`, with ``boundary``) and ``S`` keeps every
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

    boundary : {"periodic", "reflect"}, default="periodic"
        Boundary condition of the filter ``H`` (see :class:`Blur`).

    Notes
    -----
    ``norm`` is exact for ``boundary="periodic"``: ``S H Hᵀ Sᵀ`` is a
    circular convolution on the coarse grid whose transfer function is the
    mean of ``|Ĥ|²`` over the ``factor**ndim`` aliased frequencies. With
    ``"reflect"`` it is estimated by power iteration.

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

    _parameter_constraints = {
        "factor": [positive_int()],
        "filter": [StrOptions(set(_FILTERS)), "array-like"],
        "sigma": [None, StrictInterval(Real, 0, None, closed="neither")],
        "boundary": boundary_constraint(),
    }

    def __init__(self, factor=2, filter="gaussian", sigma=None, boundary="periodic"):
        self.factor = factor
        self.filter = filter
        self.sigma = sigma
        self.boundary = boundary

    def _filter_name(self):
        """The filter's name, or None for an explicit kernel."""
        name = self.filter if isinstance(self.filter, str) else None
        if self.sigma is not None and name != "gaussian":
            shown = repr(name) if name is not None else "an explicit kernel"
            raise ValueError("Downsampling `sigma` is only used with filter='gaussian'; "
                             f"got sigma={self.sigma!r} with filter={shown}.")
        return name

    def blur(self, ndim):
        """The anti-aliasing filter ``H`` as a :class:`Blur` (None for ``filter="none"``).

        Parameters
        ----------
        ndim : {1, 2}
            Number of spatial axes of the signals.
        """
        def build():
            factor, name = int(self.factor), self._filter_name()
            if name == "none":
                return None
            if name == "gaussian":
                return Blur(sigma=float(self.sigma) if self.sigma is not None else factor / 2,
                            boundary=self.boundary)
            if name == "box":
                # Length 2f-1 with its centre at f-1: output i averages x[i .. i+f-1].
                profile = np.r_[np.full(factor, 1.0 / factor), np.zeros(factor - 1)]
                kernel = profile
                for _ in range(ndim - 1):
                    kernel = np.multiply.outer(kernel, profile)
                return Blur(kernel=kernel, boundary=self.boundary)
            try:
                kernel = np.asarray(self.filter, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError("Downsampling `filter` must be one of "
                                 f"{_FILTERS} or a numeric array-like kernel.") from error
            if kernel.ndim != ndim or kernel.size == 0 or not np.all(np.isfinite(kernel)):
                raise ValueError(f"Downsampling `filter` kernel must be a non-empty finite "
                                 f"{ndim}-D array for these signals; got shape {kernel.shape}.")
            return Blur(kernel=kernel, boundary=self.boundary)
        return self._cached(("blur", ndim), build)

    def _check_signal_shape(self, signal_shape):
        factor = int(self.factor)
        spatial = signal_shape[-spatial_ndim(signal_shape):]
        if any(s % factor for s in spatial):
            raise ValueError(f"Downsampling factor={factor} must divide the spatial sizes of "
                             f"the signals; got signal shape {signal_shape} (spatial "
                             f"{spatial}). Crop or pad y, or change `factor`.")
        blur = self.blur(len(spatial))
        if blur is not None:
            blur._check_kernel_fits(spatial, "Downsampling filter", "`sigma` or kernel")

    def measurement_shape(self, signal_shape):
        signal_shape = tuple(signal_shape)
        self.check_signal_shape(signal_shape)
        factor = int(self.factor)
        ndim = spatial_ndim(signal_shape)
        return signal_shape[:-ndim] + tuple(s // factor for s in signal_shape[-ndim:])

    def forward(self, x):
        ndim = 1 if x.dim() == 2 else 2
        factor = int(self.factor)
        blur = self.blur(ndim)
        if blur is not None:
            x = blur.forward(x)
        keep = (Ellipsis,) + (slice(None, None, factor),) * ndim
        return x[keep].contiguous()

    def adjoint(self, z):
        ndim = 1 if z.dim() == 2 else 2
        factor = int(self.factor)
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
        if self.boundary == "reflect":
            return super().norm(signal_shape, device=device, dtype=dtype)
        factor = int(self.factor)
        spatial = signal_shape[-ndim:]
        power = np.abs(np.fft.fftn(blur.padded_kernel(spatial))) ** 2
        # Frequency k + j·(N/f) aliases onto k on the coarse grid: average over j.
        split = []
        for s in spatial:
            split += [factor, s // factor]
        aliased = power.reshape(split).mean(axis=tuple(range(0, 2 * ndim, 2)))
        return math.sqrt(float(aliased.max()))
