"""Classical reconstruction methods, for comparison with learned weights.

Thin wrappers around :mod:`skimage.restoration` and :mod:`skimage.transform`
that act on a stack of grayscale float images, shape (n, H, W) (a single
(H, W) image is also accepted and returned as such). scikit-image is an
optional dependency, imported inside each function.

Methods with a free parameter come with a ``*_grid`` function that picks it
on training pairs by mean squared error, the criterion of the bilevel fit
with ``loss="mse"`` (the benchmarks add mean-PSNR selections, the default
``loss``'s criterion).
"""

import numbers

import numpy as np

from ._optional import import_optional

__all__ = [
    "bayes_shrink",
    "cycle_spin_bayes_shrink",
    "tv_chambolle",
    "tv_chambolle_grid",
    "wiener",
    "wiener_grid",
    "unsupervised_wiener",
    "inpaint_biharmonic",
    "bicubic_upsample",
]


def _restoration():
    return import_optional("skimage.restoration", "scikit-image")


def _as_stack(X, name="X"):
    """Return ``X`` as a float64 (n, H, W) stack and whether it was 2-D."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2:
        return X[None], True
    if X.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n, H, W) or (H, W), got {X.shape}."
        )
    return X, False


def _apply(X, func):
    """Apply ``func`` to each image of ``X`` and stack the results."""
    stack, single = _as_stack(X)
    out = np.stack([np.asarray(func(img), dtype=np.float64) for img in stack])
    return out[0] if single else out


def _check_positive(value, name):
    """Validate a finite, strictly positive number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}.")
    return float(value)


def _check_pairs(X_train, y_train):
    """Validate training pairs of equal (n, H, W) shape."""
    X_train, _ = _as_stack(X_train, "X_train")
    y_train, _ = _as_stack(y_train, "y_train")
    if X_train.shape != y_train.shape:
        raise ValueError(
            f"X_train and y_train must have the same shape, got "
            f"{X_train.shape} and {y_train.shape}."
        )
    return X_train, y_train


def _grid_search(X_train, y_train, grid, name, method):
    """Return the grid value whose ``method(X_train, value)`` has least MSE."""
    X_train, y_train = _check_pairs(X_train, y_train)
    grid = np.atleast_1d(np.asarray(grid, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence.")
    errors = [np.mean((method(X_train, v) - y_train) ** 2) for v in grid]
    return float(grid[int(np.argmin(errors))])


def _bayes_shrink_kwargs(sigma, wavelet, levels):
    """``denoise_wavelet`` arguments of BayesShrink at explicit levels (skimage
    defaults to fewer levels on small images, which is much worse)."""
    return dict(sigma=sigma, wavelet=wavelet, mode="soft", wavelet_levels=levels,
                method="BayesShrink", rescale_sigma=True, channel_axis=None)


def bayes_shrink(X, sigma, wavelet="db4", levels=3):
    """Wavelet denoising with BayesShrink soft thresholds.

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Noisy images.
    sigma : float
        Standard deviation of the noise.
    wavelet : str, default="db4"
        PyWavelets wavelet name.
    levels : int, default=3
        Decomposition levels. Set explicitly: scikit-image's automatic choice
        uses a single level on 64x64 images, which denoises much worse.

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Denoised images (scikit-image clips them to [-1, 1] when the input
        has negative values, else to [0, 1]).
    """
    restoration = _restoration()
    sigma = _check_positive(sigma, "sigma")
    kwargs = _bayes_shrink_kwargs(sigma, wavelet, levels)
    return _apply(X, lambda img: restoration.denoise_wavelet(img, **kwargs))


def cycle_spin_bayes_shrink(X, sigma, wavelet="db4", levels=3, max_shifts=3):
    """BayesShrink averaged over circular shifts (cycle spinning).

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Noisy images.
    sigma : float
        Standard deviation of the noise.
    wavelet : str, default="db4"
        PyWavelets wavelet name.
    levels : int, default=3
        Decomposition levels.
    max_shifts : int, default=3
        Shifts 0..max_shifts along each axis are averaged, i.e.
        ``(max_shifts + 1) ** 2`` shifts (16 by default).

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Denoised images.
    """
    restoration = _restoration()
    sigma = _check_positive(sigma, "sigma")
    func_kw = _bayes_shrink_kwargs(sigma, wavelet, levels)

    def spin(img):
        return restoration.cycle_spin(
            img,
            func=restoration.denoise_wavelet,
            max_shifts=max_shifts,
            func_kw=func_kw,
            channel_axis=None,
            **_one_worker(restoration.cycle_spin),
        )

    return _apply(X, spin)


def _one_worker(cycle_spin):
    """Keyword asking ``cycle_spin`` for one worker (renamed in skimage)."""
    import inspect

    params = inspect.signature(cycle_spin).parameters
    return {"workers": 1} if "workers" in params else {"num_workers": 1}


def tv_chambolle(X, weight):
    """Total-variation denoising (Chambolle's projection algorithm).

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Noisy images.
    weight : float
        Denoising weight; larger means smoother.

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Denoised images.
    """
    restoration = _restoration()
    weight = _check_positive(weight, "weight")
    return _apply(
        X,
        lambda img: restoration.denoise_tv_chambolle(
            img, weight=weight, channel_axis=None
        ),
    )


def tv_chambolle_grid(X_train, y_train, weights=np.geomspace(0.01, 0.5, 20)):
    """Pick the :func:`tv_chambolle` weight with least training MSE.

    Parameters
    ----------
    X_train : array-like of shape (n, H, W)
        Noisy training images.
    y_train : array-like of shape (n, H, W)
        Clean training images.
    weights : array-like of float, default=np.geomspace(0.01, 0.5, 20)
        Candidate weights.

    Returns
    -------
    float
        The candidate weight with the least mean squared error.
    """
    return _grid_search(X_train, y_train, weights, "weights", tv_chambolle)


def wiener(X, psf, balance):
    """Wiener-Hunt deconvolution with a fixed balance.

    scikit-image models the blur as a circular convolution with ``psf``
    centred on the origin (the PSF is zero-padded to the image size).

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Blurred, noisy images.
    psf : array-like of shape (h, w)
        Point spread function.
    balance : float
        Regularization weight (Laplacian prior) relative to data fidelity.

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Deconvolved images (not clipped).
    """
    restoration = _restoration()
    balance = _check_positive(balance, "balance")
    psf = np.asarray(psf, dtype=np.float64)
    return _apply(
        X, lambda img: restoration.wiener(img, psf, balance, clip=False)
    )


def wiener_grid(
    X_train, y_train, psf, balances=np.geomspace(1e-4, 1e2, 25)
):
    """Pick the :func:`wiener` balance with least training MSE.

    Parameters
    ----------
    X_train : array-like of shape (n, H, W)
        Blurred, noisy training images.
    y_train : array-like of shape (n, H, W)
        Clean training images.
    psf : array-like of shape (h, w)
        Point spread function.
    balances : array-like of float, default=np.geomspace(1e-4, 100, 25)
        Candidate balances.

    Returns
    -------
    float
        The candidate balance with the least mean squared error.
    """
    return _grid_search(
        X_train, y_train, balances, "balances",
        lambda X, b: wiener(X, psf, b),
    )


def unsupervised_wiener(X, psf, random_state=0):
    """Wiener-Hunt deconvolution with self-tuned (Gibbs-sampled) balance.

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Blurred, noisy images.
    psf : array-like of shape (h, w)
        Point spread function (circular convolution, see :func:`wiener`).
    random_state : int or None, default=0
        Seed of the Gibbs sampler, for reproducible results.

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Posterior-mean estimates (not clipped).
    """
    restoration = _restoration()
    psf = np.asarray(psf, dtype=np.float64)
    rng = np.random.default_rng(random_state)

    def deconvolve(img):
        return restoration.unsupervised_wiener(
            img, psf, clip=False, rng=rng
        )[0]

    return _apply(X, deconvolve)


def inpaint_biharmonic(X, mask):
    """Fill missing pixels by biharmonic inpainting.

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Images; values at missing pixels are ignored.
    mask : array-like of shape (H, W) or like ``X``
        Our convention: nonzero/True where pixels are **kept** (observed),
        0/False where missing. (scikit-image's own mask is the opposite; it
        is inverted here.) A single (H, W) mask applies to every image.

    Returns
    -------
    ndarray of float64, same shape as ``X``
        Inpainted images.
    """
    restoration = _restoration()
    stack, single = _as_stack(X)
    kept = np.asarray(mask).astype(bool)
    if kept.shape == stack.shape[1:]:
        kept = np.broadcast_to(kept, stack.shape)
    elif kept.shape != stack.shape:
        raise ValueError(
            f"mask must have shape {stack.shape[1:]} or the shape of X, "
            f"got {kept.shape}."
        )
    out = np.stack([
        restoration.inpaint_biharmonic(img, ~keep)
        for img, keep in zip(stack, kept)
    ]).astype(np.float64)
    return out[0] if single else out


def bicubic_upsample(X, factor):
    """Upsample images by bicubic interpolation.

    Parameters
    ----------
    X : array-like of shape (n, H, W) or (H, W)
        Low-resolution images.
    factor : float
        Scale factor; output images have shape
        ``(round(H * factor), round(W * factor))``.

    Returns
    -------
    ndarray of float64
        Upsampled images, shape (n, H * factor, W * factor).
    """
    try:
        from skimage.transform import rescale
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(
            "This function needs scikit-image: pip install scikit-image"
        ) from exc
    factor = _check_positive(factor, "factor")
    return _apply(
        X,
        lambda img: rescale(img, factor, order=3, anti_aliasing=False),
    )
