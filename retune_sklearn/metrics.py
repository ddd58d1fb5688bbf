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
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got "
                         f"{y_true.shape} and {y_pred.shape}.")
    if y_true.ndim < 1 or y_true.shape[0] == 0:
        raise ValueError("psnr needs at least one sample along axis 0.")
    if not (np.isscalar(data_range) and np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number; got {data_range!r}.")
    mse = np.mean((y_true - y_pred).reshape(len(y_true), -1) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def psnr(y_true, y_pred, *, data_range=1.0):
    """Mean over samples (axis 0) of the PSNR in dB; higher is better.

    See :func:`psnr_per_sample` for the parameters.
    """
    return float(np.mean(psnr_per_sample(y_true, y_pred, data_range=data_range)))


#: Scorer for ``GridSearchCV(scoring=psnr_scorer)`` (data_range=1).
psnr_scorer = make_scorer(psnr)
