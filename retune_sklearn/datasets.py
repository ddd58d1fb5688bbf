"""Offline image and signal data sets for learning regularization weights.

Every data set here is either generated or cut from images that ship inside
scikit-image (:mod:`skimage.data`); nothing is downloaded at run time.

Image patches come from two *disjoint* lists of source photographs,
:data:`TRAIN_IMAGES` and :data:`TEST_IMAGES`: train and test patches are
cut from different photos, so a test score measures generalization to new
images, not to new crops of the same images.
"""

import functools
import numbers

import numpy as np

from ._optional import import_optional

__all__ = [
    "TRAIN_IMAGES",
    "TEST_IMAGES",
    "AVAILABLE_IMAGES",
    "load_image_patches",
    "make_image_problem",
    "make_denoising_problem",
    "make_sparse_signal_problem",
]

#: Source images of the training patches: portrait, scenes with smooth
#: regions and edges (camera, astronaut, coffee, chelsea, rocket), regular and
#: stochastic textures (brick, grass) and a microscopy slide.
TRAIN_IMAGES = (
    "camera",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "immunohistochemistry",
)

#: Source images of the test patches, disjoint from :data:`TRAIN_IMAGES`:
#: smooth shading and craters (moon), objects with sharp edges (coins, clock),
#: stochastic texture (gravel), printed text (page) and microscopy (cell).
#: ``skimage.data.cat`` is deliberately absent: it is the same photo as
#: ``chelsea``, a training image.
TEST_IMAGES = (
    "moon",
    "coins",
    "clock",
    "gravel",
    "page",
    "cell",
)

#: Names accepted in an explicit ``images`` list: the :mod:`skimage.data`
#: images that load offline (no pooch download).
AVAILABLE_IMAGES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "shepp_logan_phantom",
    "text",
)


def _import_skimage():
    """scikit-image with the submodules used here, or a helpful ImportError."""
    for module in ("skimage.color", "skimage.data", "skimage.util"):
        import_optional(module, "scikit-image")
    return import_optional("skimage", "scikit-image")


def _check_int(value, name, minimum=1):
    """Validate that ``value`` is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Integral
    ):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return int(value)


def _check_sigma(value, name="noise_sigma"):
    """Validate a finite, non-negative noise level."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}.")
    return float(value)


def _seed_sequence(random_state):
    """Turn ``random_state`` (None, int, Generator or SeedSequence) into a
    SeedSequence."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63)))
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        if random_state < 0:
            raise ValueError(
                f"random_state must be >= 0, got {random_state!r}."
            )
        return np.random.SeedSequence(int(random_state))
    raise ValueError(
        "random_state must be None, a non-negative int or a "
        f"numpy.random.Generator, got {random_state!r}."
    )


def _resolve_images(images):
    """Turn ``images`` ("train", "test" or a list of names) into a tuple."""
    if isinstance(images, str):
        if images == "train":
            return TRAIN_IMAGES
        if images == "test":
            return TEST_IMAGES
        raise ValueError(
            "images must be 'train', 'test' or a list of skimage.data "
            f"names, got {images!r}."
        )
    try:
        names = tuple(images)
    except TypeError:
        raise ValueError(
            "images must be 'train', 'test' or a list of skimage.data "
            f"names, got {images!r}."
        ) from None
    if not names:
        raise ValueError("images must not be empty.")
    unknown = [n for n in names if n not in AVAILABLE_IMAGES]
    if unknown:
        raise ValueError(
            f"images contains unknown or non-offline names {unknown}; "
            f"choose from {AVAILABLE_IMAGES}."
        )
    return names


@functools.lru_cache(maxsize=None)
def _load_source(name, color):
    """Load one :mod:`skimage.data` image as a read-only float64 array.

    Returns shape (H, W) in gray mode and (3, H, W) in color mode (gray
    sources are replicated to three channels, alpha channels dropped).
    """
    skimage = _import_skimage()
    image = skimage.util.img_as_float(getattr(skimage.data, name)())
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image[..., :3]
    if color:
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        image = np.moveaxis(image, -1, 0)
    elif image.ndim == 3:
        image = skimage.color.rgb2gray(image)
    image = np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float64)
    image.setflags(write=False)
    return image


def _split_evenly(total, parts):
    """Split ``total`` into ``parts`` counts that differ by at most one."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def load_image_patches(
    images="train", patch_size=64, n_patches=200, color=False, random_state=0
):
    """Cut random square patches from offline scikit-image photographs.

    Parameters
    ----------
    images : {"train", "test"} or list of str, default="train"
        Source images: :data:`TRAIN_IMAGES`, :data:`TEST_IMAGES` (disjoint
        photos) or an explicit list of names from :data:`AVAILABLE_IMAGES`.
    patch_size : int, default=64
        Side length of the square patches; must fit in every source image.
    n_patches : int, default=200
        Number of patches, spread evenly across the source images (counts
        differ by at most one) and returned in a random (seeded) order.
    color : bool, default=False
        If False, color sources are converted with
        :func:`skimage.color.rgb2gray`. If True, patches are RGB, channels
        first; grayscale sources are replicated to three identical channels.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the patch positions and order.

    Returns
    -------
    patches : ndarray of float64
        Shape (n_patches, patch_size, patch_size) if ``color`` is False,
        else (n_patches, 3, patch_size, patch_size); values in [0, 1].

    Raises
    ------
    ImportError
        If scikit-image is not installed.
    ValueError
        If an argument is invalid or ``patch_size`` exceeds a source image.
    """
    names = _resolve_images(images)
    patch_size = _check_int(patch_size, "patch_size")
    n_patches = _check_int(n_patches, "n_patches")
    color = bool(color)
    rng = np.random.default_rng(_seed_sequence(random_state))
    patches = []
    for name, count in zip(names, _split_evenly(n_patches, len(names))):
        source = _load_source(name, color)
        height, width = source.shape[-2:]
        if patch_size > min(height, width):
            raise ValueError(
                f"patch_size={patch_size} exceeds the size {height}x{width} "
                f"of source image {name!r}."
            )
        rows = rng.integers(0, height - patch_size + 1, size=count)
        cols = rng.integers(0, width - patch_size + 1, size=count)
        for r, c in zip(rows, cols):
            patches.append(source[..., r:r + patch_size, c:c + patch_size])
    out = np.stack(patches).astype(np.float64, copy=True)
    return out[rng.permutation(n_patches)]


def _apply_operator(operator, y):
    """Apply ``operator.forward`` to a numpy batch; identity if None."""
    if operator is None:
        return np.array(y, dtype=np.float64, copy=True)
    if not callable(getattr(operator, "forward", None)):
        raise ValueError(
            "operator must be None or have a callable forward method, "
            f"got {operator!r}."
        )
    import torch

    with torch.no_grad():
        x = operator.forward(torch.as_tensor(y, dtype=torch.float64))
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=np.float64, copy=True)


def make_image_problem(
    operator=None,
    noise_sigma=0.1,
    patch_size=64,
    n_train=128,
    n_test=64,
    color=False,
    random_state=0,
):
    """Pairs (degraded, clean) of image patches for a reconstruction task.

    Clean patches ``y`` come from :func:`load_image_patches` with
    ``images="train"`` and ``"test"`` (disjoint photos). Degraded patches are
    ``X = operator.forward(y) + noise_sigma * N(0, 1)``, with independent,
    seeded noise for train and test.

    Parameters
    ----------
    operator : object with ``forward(torch.Tensor) -> torch.Tensor`` or None
        Forward operator acting on a batch of shape (n, *signal_shape) in
        float64. None means the identity (denoising).
    noise_sigma : float, default=0.1
        Standard deviation of the additive Gaussian noise.
    patch_size : int, default=64
        Side length of the clean patches.
    n_train, n_test : int, default=128, 64
        Number of training and test pairs.
    color : bool, default=False
        Grayscale (n, p, p) or RGB channels-first (n, 3, p, p) patches.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of patch positions and noise.

    Returns
    -------
    X_train, X_test : ndarray of float64
        Degraded measurements, shape (n, *operator output shape).
    y_train, y_test : ndarray of float64
        Clean patches in [0, 1].
    """
    noise_sigma = _check_sigma(noise_sigma)
    n_train = _check_int(n_train, "n_train")
    n_test = _check_int(n_test, "n_test")
    seeds = _seed_sequence(random_state).spawn(4)
    y_train = load_image_patches("train", patch_size, n_train, color, seeds[0])
    y_test = load_image_patches("test", patch_size, n_test, color, seeds[1])
    X = []
    for y, seed in ((y_train, seeds[2]), (y_test, seeds[3])):
        x = _apply_operator(operator, y)
        x += noise_sigma * np.random.default_rng(seed).standard_normal(x.shape)
        X.append(x)
    return X[0], X[1], y_train, y_test


def make_denoising_problem(noise_sigma=0.1, **kwargs):
    """Image denoising pairs: :func:`make_image_problem` with no operator.

    Parameters
    ----------
    noise_sigma : float, default=0.1
        Standard deviation of the additive Gaussian noise.
    **kwargs
        Other arguments of :func:`make_image_problem` (except ``operator``).

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray of float64
        Noisy and clean patches; see :func:`make_image_problem`.
    """
    if "operator" in kwargs:
        raise ValueError("operator is not accepted by make_denoising_problem.")
    return make_image_problem(operator=None, noise_sigma=noise_sigma, **kwargs)


def make_sparse_signal_problem(
    n_samples=200,
    n_features=128,
    n_measurements=64,
    n_nonzero=8,
    noise_sigma=0.01,
    random_state=0,
):
    """Compressed sensing of sparse 1-D signals.

    Each clean signal has ``n_nonzero`` spikes at random positions with
    standard Gaussian amplitudes. Measurements are ``X = y @ A.T + noise``
    with a Gaussian sensing matrix ``A`` of entries N(0, 1/n_measurements).

    Parameters
    ----------
    n_samples : int, default=200
        Number of signals.
    n_features : int, default=128
        Length of each signal.
    n_measurements : int, default=64
        Number of measurements per signal (rows of ``A``).
    n_nonzero : int, default=8
        Number of nonzero entries per signal, at most ``n_features``.
    noise_sigma : float, default=0.01
        Standard deviation of the additive Gaussian measurement noise.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of signals, matrix and noise.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_measurements)
        Noisy measurements.
    y : ndarray of float64, shape (n_samples, n_features)
        Sparse clean signals.
    A : ndarray of float64, shape (n_measurements, n_features)
        Sensing matrix.
    """
    n_samples = _check_int(n_samples, "n_samples")
    n_features = _check_int(n_features, "n_features")
    n_measurements = _check_int(n_measurements, "n_measurements")
    n_nonzero = _check_int(n_nonzero, "n_nonzero")
    if n_nonzero > n_features:
        raise ValueError(
            f"n_nonzero={n_nonzero} must be <= n_features={n_features}."
        )
    noise_sigma = _check_sigma(noise_sigma)
    rng = np.random.default_rng(_seed_sequence(random_state))
    A = rng.standard_normal((n_measurements, n_features))
    A /= np.sqrt(n_measurements)
    y = np.zeros((n_samples, n_features))
    support = np.argsort(rng.random((n_samples, n_features)), axis=1)
    rows = np.arange(n_samples)[:, None]
    y[rows, support[:, :n_nonzero]] = rng.standard_normal(
        (n_samples, n_nonzero)
    )
    noise = rng.standard_normal((n_samples, n_measurements))
    X = y @ A.T + noise_sigma * noise
    return X, y, A
