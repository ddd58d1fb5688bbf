"""Image-quality metrics and scorers."""

import numpy as np
from sklearn.metrics import make_scorer

__all__ = ["psnr", "psnr_per_sample", "psnr_scorer"]


def psnr_per_sample(y_true, y_pred, *, data_range=1.0):
    """Peak signal-to-noise ratio (dB) of each sample (axis 0).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, ...)
        Reference and estimate; same shape.
    data_range : float, default=1.0
        Peak-to-peak range of the signals (1.0 for images in [0, 1]).

    Returns
    -------
    ndarray of shape (n_samples,)
        ``10 log10(data_range² / MSE_i)``; ``inf`` where the MSE is zero.
    """
    y_true, y_pred = _real_array(y_true), _real_array(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got "
                         f"{y_true.shape} and {y_pred.shape}.")
    if y_true.ndim < 1 or y_true.shape[0] == 0:
        raise ValueError("psnr needs at least one sample along axis 0.")
    if not (np.isscalar(data_range) and np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number; got {data_range!r}.")
    n_entries = y_true.size // len(y_true)
    if n_entries == 0:
        raise ValueError(f"psnr needs samples with at least one entry; got shape {y_true.shape}.")
    mse = _squared_error_sums(y_true, y_pred) / n_entries
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


#: Entries of the float64 temporaries of :func:`psnr_per_sample` (512 KiB):
#: its memory beyond the inputs does not grow with their size.
_CHUNK_ENTRIES = 2**16


def _real_array(values):
    """``values`` as an array, without a copy or a cast when it is numeric."""
    array = np.asarray(values)
    return array if array.dtype.kind in "biuf" else np.asarray(values, dtype=np.float64)


def _squared_error_sums(a, b):
    """Per sample (axis 0), the float64 sum of ``(a − b)²``, in chunks of samples.

    Each chunk is cast to float64 on its own, so the values are those of the
    full-size float64 formula; a sample of more than ``_CHUNK_ENTRIES``
    entries is summed in pieces (the same sum up to round-off).
    """
    n_samples, n_entries = len(a), a.size // len(a)
    sums = np.empty(n_samples)
    if n_entries > _CHUNK_ENTRIES:
        for i in range(n_samples):
            sums[i] = _total_squared_error(a[i], b[i])
        return sums
    step = max(1, _CHUNK_ENTRIES // n_entries)
    for start in range(0, n_samples, step):
        chunk = slice(start, start + step)
        squares = _squared_errors(a[chunk], b[chunk])
        np.add.reduce(squares.reshape(len(squares), -1), axis=1, out=sums[chunk])
        del squares  # freed before the next chunk's
    return sums


def _squared_errors(a, b):
    """``(a − b)²`` in one new C-contiguous float64 array of ``a``'s shape."""
    difference = np.array(a, dtype=np.float64)
    np.subtract(difference, b, out=difference)
    return np.square(difference, out=difference)


def _total_squared_error(a, b):
    """Float64 sum of ``(a − b)²`` over all of ``a``, in pieces along its first axis."""
    if a.size <= _CHUNK_ENTRIES or a.ndim == 0:
        return float(np.add.reduce(_squared_errors(a, b), axis=None))
    step = max(1, _CHUNK_ENTRIES // (a.size // len(a)))
    return sum(_total_squared_error(a[start:start + step], b[start:start + step])
               for start in range(0, len(a), step))


def psnr(y_true, y_pred, *, data_range=1.0):
    """Mean over samples (axis 0) of the PSNR in dB; higher is better.

    See :func:`psnr_per_sample` for the parameters.
    """
    return float(np.mean(psnr_per_sample(y_true, y_pred, data_range=data_range)))


#: Scorer for ``GridSearchCV(scoring=psnr_scorer)`` (data_range=1).
psnr_scorer = make_scorer(psnr)
