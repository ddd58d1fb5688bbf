"""Small matplotlib helpers to inspect a fitted :class:`ReTuneRegularizer`.

matplotlib is an optional dependency: it is imported inside each function,
and a clear ``ImportError`` is raised when it is missing. The helpers draw
into axes (or a figure) given by the caller, or create new ones, and return
what they drew into, so they compose into larger figures::

    fig = plt.figure(figsize=(12, 8))
    top, bottom = fig.subfigures(2, 1)
    plot_examples({"clean": y, "noisy": X, "ReTune": est.transform(X)},
                  reference="clean", fig=top)
    ax_w, ax_l = bottom.subplots(1, 2)
    plot_weights(est, ax=ax_w)
    plot_loss_curve(est, ax=ax_l)
"""

import numpy as np

from ._optional import import_optional

__all__ = ["plot_weights", "plot_loss_curve", "plot_examples"]


def _pyplot():
    return import_optional("matplotlib.pyplot", "matplotlib",
                           feature="retune_sklearn.plotting")


def _axes(ax):
    """Return ``ax``, or new axes on a new figure when ``ax`` is None."""
    if ax is None:
        _, ax = _pyplot().subplots()
    return ax


def _check_fitted(estimator, attributes):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, attributes)


def plot_weights(estimator, ax=None, *, log=True, color="C0", label=None, width=0.8,
                 offset=0.0):
    """Bar chart of the learned weights, one bar per weight.

    Several models with the same weight names share one chart when each is
    drawn with its own ``label``, ``width`` and ``offset`` (then call
    ``ax.legend()``).

    Parameters
    ----------
    estimator : ReTuneRegularizer
        A fitted estimator (uses ``weights_`` and ``weight_names_``).
    ax : matplotlib.axes.Axes or None, default=None
        Axes to draw into; None creates a new figure.
    log : bool, default=True
        Logarithmic y axis (weights often span orders of magnitude, e.g. a
        nearly unpenalized approximation band next to fine detail bands).
    color : color, default="C0"
        Bar color.
    label : str or None, default=None
        Legend label of the bars (e.g. the model's name).
    width : float, default=0.8
        Bar width, in units of the distance between two weights.
    offset : float, default=0.0
        Shift of the bars from their tick, in the same units (e.g. -0.2 and
        +0.2 with ``width=0.4`` for two models side by side).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into; ``ax.containers[-1]`` holds the bars.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    """
    _check_fitted(estimator, ["weights_", "weight_names_"])
    ax = _axes(ax)
    weights = np.asarray(estimator.weights_, dtype=np.float64)
    names = [str(name) for name in estimator.weight_names_]
    positions = np.arange(len(weights))
    ax.bar(positions + offset, weights, width=width, color=color, label=label)
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=45 if len(names) > 12 else 0)
    if log and np.all(weights > 0):
        ax.set_yscale("log")
    ax.set_xlabel("weight group")
    ax.set_ylabel("λ")
    ax.set_title("Learned weights")
    return ax


def plot_loss_curve(estimator, ax=None, *, log=True, color="C1", label=None):
    """Training loss per epoch: with ``loss="psnr"`` (the default) the mean
    per-sample 10·log10 MSE, with ``loss="mse"`` the mean squared error (the y
    label says which).

    Parameters
    ----------
    estimator : ReTuneRegularizer
        A fitted estimator (uses ``loss_curve_``).
    ax : matplotlib.axes.Axes or None, default=None
        Axes to draw into; None creates a new figure.
    log : bool, default=True
        Logarithmic y axis.
    color : color, default="C1"
        Line color.
    label : str or None, default=None
        Legend label of the line (e.g. the model's name).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into. When nothing was trained (empty
        ``loss_curve_``, e.g. ``learn_weights=False``) they hold a note
        instead of a line.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    """
    _check_fitted(estimator, ["loss_curve_"])
    ax = _axes(ax)
    losses = np.asarray(estimator.loss_curve_, dtype=np.float64)
    if losses.size:
        ax.plot(np.arange(1, losses.size + 1), losses, marker=".", color=color, label=label)
        ticker = import_optional("matplotlib.ticker", "matplotlib",
                                 feature="retune_sklearn.plotting")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # whole epochs
        if log and np.all(losses > 0):
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no training\n(empty loss_curve_)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("epoch")
    loss = getattr(estimator, "loss", "mse")
    ax.set_ylabel("training MSE" if loss == "mse" else "training loss (mean 10·log10 MSE)")
    ax.set_title("Loss curve")
    return ax


def _psnr(reference, image, data_range):
    from .metrics import psnr

    return psnr(reference[None], image[None], data_range=data_range)


def plot_examples(images, n=3, *, reference=None, fig=None, data_range=1.0, cmap="gray"):
    """Grid of example images: one row per sample, one column per method.

    Parameters
    ----------
    images : dict of str to array-like of shape (n_samples, H, W)
        Image stacks to show, in column order (e.g. ``{"clean": y_test,
        "noisy": X_test, "ReTune": est.transform(X_test)}``). Every stack
        must have at least ``n`` samples of the same (H, W).
    n : int, default=3
        Number of samples (rows): the first ``n`` of each stack.
    reference : str or None, default=None
        Key of the clean images in ``images``: the titles of the other
        columns then show their PSNR (dB) against it.
    fig : matplotlib.figure.Figure, SubFigure or None, default=None
        Figure to draw into; None creates a new one.
    data_range : float, default=1.0
        Peak-to-peak range of the images, for the PSNR and the color scale
        (pixels are shown on ``[0, data_range]``).
    cmap : str, default="gray"
        Colormap.

    Returns
    -------
    ndarray of matplotlib.axes.Axes, shape (n, len(images))
        The axes, ``axes[i, j]`` showing sample ``i`` of method ``j``.

    Raises
    ------
    ValueError
        If ``images`` is empty, ``reference`` is not one of its keys, or the
        stacks have fewer than ``n`` samples or are not (n_samples, H, W).
    """
    if not isinstance(images, dict) or not images:
        raise ValueError("images must be a non-empty dict of name -> (n_samples, H, W) "
                         "arrays.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}.")
    if reference is not None and reference not in images:
        raise ValueError(f"reference={reference!r} is not a key of images "
                         f"({list(images)}).")
    stacks = {}
    for name, stack in images.items():
        stack = np.asarray(stack, dtype=np.float64)
        if stack.ndim != 3 or len(stack) < n:
            raise ValueError(f"images[{name!r}] must have shape (n_samples >= {n}, H, W); "
                             f"got {stack.shape}.")
        stacks[name] = stack
    if fig is None:
        fig = _pyplot().figure(figsize=(2.2 * len(stacks), 2.3 * n))
    axes = np.asarray(fig.subplots(n, len(stacks), squeeze=False))
    for i in range(n):
        for j, (name, stack) in enumerate(stacks.items()):
            ax = axes[i, j]
            ax.imshow(stack[i], cmap=cmap, vmin=0.0, vmax=data_range)
            title = name
            if reference is not None and name != reference:
                value = _psnr(stacks[reference][i], stack[i], data_range)
                title = f"{name}\n{value:.2f} dB"
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return axes
