"""Tests of the matplotlib helpers in retune_sklearn.plotting."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from retune_sklearn import ReTuneRegularizer  # noqa: E402
from retune_sklearn.plotting import plot_examples, plot_loss_curve, plot_weights  # noqa: E402
from retune_sklearn.regularizers import WaveletL1  # noqa: E402


def _data(n=6, size=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.repeat(rng.random((n, size // 4, size // 4)), 4, axis=1), 4, axis=2)
    return y + 0.1 * rng.standard_normal(y.shape), y


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    return ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), K=2, T=2,
                             max_epochs=3, device="cpu", random_state=0).fit(X, y)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_weights_one_bar_per_weight(fitted):
    ax = plot_weights(fitted)
    assert isinstance(ax, Axes)
    assert len(fitted.weights_) == 7  # a2 + 3 subbands x 2 levels
    assert len(ax.patches) == len(fitted.weights_)
    heights = [bar.get_height() for bar in ax.containers[-1]]
    np.testing.assert_allclose(heights, fitted.weights_)
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert labels == list(fitted.weight_names_)


def test_plot_weights_draws_into_given_axes(fitted):
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_weights(fitted, ax=right, log=False) is right
    assert len(left.patches) == 0
    assert right.get_yscale() == "linear"


def test_plot_loss_curve(fitted):
    ax = plot_loss_curve(fitted)
    assert isinstance(ax, Axes)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), fitted.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, fitted.n_iter_ + 1))


def test_plot_loss_curve_without_training():
    X, y = _data()
    est = ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), K=1, T=1,
                            learn_weights=False, init_weight=0.05, device="cpu").fit(X, y)
    ax = plot_loss_curve(est)
    assert isinstance(ax, Axes)
    assert not ax.get_lines()
    assert any("no training" in text.get_text() for text in ax.texts)


def test_plot_examples_grid_and_psnr_titles(fitted):
    X, y = _data()
    images = {"clean": y, "noisy": X, "ReTune": fitted.transform(X)}
    axes = plot_examples(images, n=2, reference="clean")
    assert isinstance(axes, np.ndarray) and axes.shape == (2, 3)
    assert all(isinstance(ax, Axes) for ax in axes.flat)
    assert axes[0, 0].get_title() == "clean"
    assert axes[1, 1].get_title().startswith("noisy\n") and "dB" in axes[1, 1].get_title()


def test_plot_examples_into_subfigure():
    X, y = _data(n=3)
    fig = plt.figure()
    top, _ = fig.subfigures(2, 1)
    axes = plot_examples({"clean": y, "noisy": X}, n=1, fig=top)
    assert axes.shape == (1, 2)
    assert axes[0, 1].get_title() == "noisy"  # no reference: no PSNR


@pytest.mark.parametrize("kwargs, match", [
    (dict(images={}), "non-empty dict"),
    (dict(reference="truth"), "not a key"),
    (dict(n=10), "n_samples >= 10"),
    (dict(n=0), "positive integer"),
])
def test_plot_examples_bad_input(kwargs, match):
    X, y = _data(n=3)
    arguments = dict(images={"clean": y, "noisy": X}, n=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        plot_examples(**arguments)


def test_not_fitted_raises():
    with pytest.raises(NotFittedError):
        plot_weights(ReTuneRegularizer())
    with pytest.raises(NotFittedError):
        plot_loss_curve(ReTuneRegularizer())


def test_missing_matplotlib_gives_clear_error(fitted, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_weights(fitted)


def test_two_models_share_the_weight_and_loss_panels(fitted):
    other = ReTuneRegularizer(regularizer=WaveletL1("haar", levels=2), K=1, T=1,
                              max_epochs=2, device="cpu", random_state=0).fit(*_data())
    fig, (ax_w, ax_l) = plt.subplots(1, 2)
    for model, name, offset in ((fitted, "first", -0.2), (other, "second", 0.2)):
        plot_weights(model, ax=ax_w, label=name, width=0.4, offset=offset)
        plot_loss_curve(model, ax=ax_l, label=name)
    first, second = ax_w.containers
    assert (first.get_label(), second.get_label()) == ("first", "second")
    np.testing.assert_allclose([bar.get_x() + bar.get_width() / 2 for bar in second],
                               np.arange(len(other.weights_)) + 0.2)
    assert [line.get_label() for line in ax_l.get_lines()] == ["first", "second"]
