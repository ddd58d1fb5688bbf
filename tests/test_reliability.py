"""Faults during fit, memory of transform, inputs left alone, reproducibility."""

import copy
import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.regularizers import WaveletL1

RNG = np.random.default_rng(0)
Y = RNG.random((8, 16, 16))
X = Y + 0.1 * RNG.standard_normal(Y.shape)
# batch_size=4: two outer steps per epoch. No scale search: the tests count the
# calls of _batch_loss made by the epochs, and compare with learn_weights=False.
PARAMS = dict(regularizer=WaveletL1("haar", levels=2), K=2, T=2, max_epochs=3, batch_size=4,
              random_state=0, scale_search=False)


def make(**params):
    return ReTuneRegularizer(**{**PARAMS, **params})


def fail_on_call(monkeypatch, n, make_loss):
    """Replace ``_batch_loss`` by one whose ``n``-th call returns ``make_loss(loss, args)``."""
    original, calls = ReTuneRegularizer._batch_loss, []

    def patched(self, *args):
        calls.append(None)
        loss = original(self, *args)
        return make_loss(loss, args) if len(calls) == n else loss
    monkeypatch.setattr(ReTuneRegularizer, "_batch_loss", patched)


@pytest.fixture(scope="module")
def after_one_epoch():
    return make(max_epochs=1).fit(X, Y)


@pytest.fixture(scope="module")
def initial_weights():
    return make(learn_weights=False).fit(X, Y).weights_


# --- divergence -----------------------------------------------------------------------------
def test_huge_learning_rate_stops_with_initial_weights(initial_weights):
    with pytest.warns(ConvergenceWarning, match="over- or underflowed.*Lower learning_rate"):
        est = make(learning_rate=1e6).fit(X, Y)
    assert not est.converged_ and est.n_iter_ == 0
    np.testing.assert_array_equal(est.weights_, initial_weights)
    assert np.isfinite(est.transform(X)).all()


def nan_loss(loss, args):
    return loss * float("nan")


def nan_gradient(loss, args):
    # sqrt'(0) = inf: the loss stays finite but its gradient is NaN.
    theta = args[3]  # (X_b, y_b, problem, theta, hypergradient)
    return loss + torch.sqrt(0 * theta.log_weights.sum())


@pytest.mark.parametrize("make_loss, message", [
    (nan_loss, "training loss became nan"),
    (nan_gradient, "hypergradient became non-finite"),
])
def test_non_finite_batch_never_reaches_the_weights(monkeypatch, after_one_epoch, make_loss,
                                                    message):
    fail_on_call(monkeypatch, 3, make_loss)  # first batch of the second epoch
    with pytest.warns(ConvergenceWarning, match=f"epoch 2: the {message}"):
        est = make().fit(X, Y)
    assert not est.converged_
    assert est.loss_curve_ == after_one_epoch.loss_curve_
    np.testing.assert_array_equal(est.weights_, after_one_epoch.weights_)


def test_best_epoch_is_restored_not_the_last(monkeypatch):
    # Epoch 2 is made worse than epoch 1 (a loss offset): its weights must not be kept.
    fail_on_call(monkeypatch, 5, nan_loss)  # first batch of the third epoch
    offsets = iter([0, 0, 1, 1])
    original = ReTuneRegularizer._batch_loss
    monkeypatch.setattr(ReTuneRegularizer, "_batch_loss",
                        lambda self, *a: original(self, *a) + next(offsets, 0))
    with pytest.warns(ConvergenceWarning):
        est = make().fit(X, Y)
    reference = make(max_epochs=1).fit(X, Y)
    assert len(est.loss_curve_) == 2 and est.loss_curve_[1] > est.loss_curve_[0]
    np.testing.assert_array_equal(est.weights_, reference.weights_)


# --- interruption ---------------------------------------------------------------------------
def test_keyboard_interrupt_keeps_best_weights_and_returns(monkeypatch, after_one_epoch):
    def interrupt(loss, args):
        raise KeyboardInterrupt
    fail_on_call(monkeypatch, 3, interrupt)
    est = make(max_epochs=10**9)  # only Ctrl-C ends this fit
    with pytest.warns(UserWarning, match="interrupted .* epoch 2/1000000000"):
        assert est.fit(X, Y) is est
    assert not est.converged_ and est.n_iter_ == 1
    np.testing.assert_array_equal(est.weights_, after_one_epoch.weights_)
    np.testing.assert_array_equal(est.transform(X), after_one_epoch.transform(X))


CTRL_C_DURING_FIRST_IMPORT = """
import importlib.abc, signal, sys
import numpy as np

class CtrlCDuringSympy(importlib.abc.MetaPathFinder):
    # Press Ctrl-C (a real SIGINT) while torch imports sympy, half-way through.
    armed, seen, fired = False, 0, None

    def find_spec(self, name, path, target=None):
        if self.armed and name.startswith("sympy.") and CtrlCDuringSympy.fired is None:
            CtrlCDuringSympy.seen += 1
            if CtrlCDuringSympy.seen == 100:
                CtrlCDuringSympy.fired = name
                signal.raise_signal(signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlCDuringSympy())
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.regularizers import WaveletL1
assert "sympy" not in sys.modules, "sympy is imported with the package: nothing to test"
rng = np.random.default_rng(0)
y = rng.random((4, 8, 8))
X = y + 0.1 * rng.standard_normal(y.shape)
params = dict(regularizer=WaveletL1("haar", levels=1), K=1, T=1, max_epochs=1, random_state=0)
CtrlCDuringSympy.armed = True
try:
    ReTuneRegularizer(**params).fit(X, y)
    print("first fit returned")
except KeyboardInterrupt:
    print("first fit interrupted")
CtrlCDuringSympy.armed = False
assert CtrlCDuringSympy.fired, "the interrupt never fired"
est = ReTuneRegularizer(**params).fit(X, y)
assert est.converged_ and np.isfinite(est.transform(X)).all()
print("second fit ok")
"""


@pytest.mark.slow
def test_ctrl_c_during_the_first_lazy_import_leaves_later_fits_working():
    # torch imports torch._dynamo (and sympy) on the first optimizer it builds; Ctrl-C
    # in the middle left a half-imported sympy, and every later fit failed with
    # "AttributeError: module 'sympy' has no attribute 'core'".
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-c", CTRL_C_DURING_FIRST_IMPORT], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "second fit ok" in result.stdout


# --- transform never returns garbage, and works in bounded memory ---------------------------
@pytest.fixture(scope="module")
def fitted():
    return make().fit(X, Y)


def test_transform_refuses_non_finite_output(fitted, monkeypatch):
    original = ReTuneRegularizer._solve
    monkeypatch.setattr(ReTuneRegularizer, "_solve",
                        lambda self, X_b, *a: original(self, X_b, *a) / (len(X_b) != 3))
    with pytest.raises(ValueError, match="non-finite reconstructions for 3 of 11 samples"):
        fitted.set_params(batch_size=4).transform(np.concatenate([X, X[:3]]))


def test_transform_processes_batches(fitted, monkeypatch):
    sizes, original = [], ReTuneRegularizer._solve

    def recording(self, X_b, *args):
        sizes.append(len(X_b))
        return original(self, X_b, *args)
    monkeypatch.setattr(ReTuneRegularizer, "_solve", recording)
    big = np.tile(X, (5, 1, 1))
    fitted.transform(big)
    assert sizes == [4] * 10


def test_transform_numpy_memory_is_the_output_plus_one_batch(fitted):
    # tracemalloc sees NumPy buffers (not torch's): no full-size temporaries,
    # even when the float32 model's output is cast to X's float64.
    big = np.tile(X, (8, 1, 1))  # 64 samples, 128 KiB
    tracemalloc.start()
    try:
        out = fitted.set_params(batch_size=4).transform(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Measured: about out.nbytes + 3 batches; a full-size float32 copy would add 8 batches.
    assert peak < out.nbytes + 8 * 4 * X[0].nbytes


# --- inputs and dtypes ----------------------------------------------------------------------
@pytest.mark.parametrize("data_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
def test_inputs_are_not_modified_and_dtype_follows_X(data_dtype, model_dtype):
    # float32 data with a float32 model share memory with the tensors: the riskiest case.
    X_in, Y_in = X.astype(data_dtype), Y.astype(data_dtype)
    X_copy, Y_copy = X_in.copy(), Y_in.copy()
    est = make(dtype=model_dtype, max_epochs=1).fit(X_in, Y_in)
    out = est.transform(X_in)
    est.score(X_in, Y_in)
    est.compute_hypergradient(X_in, Y_in)
    np.testing.assert_array_equal(X_in, X_copy)
    np.testing.assert_array_equal(Y_in, Y_copy)
    assert out.dtype == data_dtype
    assert est.transform(X_in.astype(np.float64)).dtype == np.float64


# --- reproducibility ------------------------------------------------------------------------
def test_same_seed_gives_bitwise_identical_fits():
    a, b = make(random_state=3).fit(X, Y), make(random_state=3).fit(X, Y)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert a.loss_curve_ == b.loss_curve_
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def batch_orders(monkeypatch, **params):
    """The training samples (identified by y[:, 0, 0]) of every outer step."""
    orders, original = [], ReTuneRegularizer._batch_loss

    def recording(self, X_b, y_b, *args):
        orders.append(tuple(y_b[:, 0, 0].tolist()))
        return original(self, X_b, y_b, *args)
    with monkeypatch.context() as patch:
        patch.setattr(ReTuneRegularizer, "_batch_loss", recording)
        make(**params).fit(X, Y)
    return orders


def test_seed_sets_the_batch_order(monkeypatch):
    seed0, seed0_again, seed1 = (batch_orders(monkeypatch, random_state=s) for s in (0, 0, 1))
    assert seed0 == seed0_again and seed0 != seed1
    unshuffled = batch_orders(monkeypatch, shuffle=False, random_state=1)
    first_pixels = Y[:, 0, 0].astype(np.float32).tolist()  # the model computes in float32
    assert unshuffled == [tuple(first_pixels[i:i + 4]) for i in (0, 4)] * PARAMS["max_epochs"]


# --- the PSNR of score works in bounded memory ----------------------------------------------
def reference_psnr(y_true, y_pred, data_range=1.0):
    """The straightforward formula: full-size float64 copies."""
    y_true, y_pred = (np.asarray(a, dtype=np.float64) for a in (y_true, y_pred))
    mse = np.mean((y_true - y_pred).reshape(len(y_true), -1) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_psnr_memory_is_bounded_and_values_are_the_plain_formula(dtype):
    from retune_sklearn.metrics import psnr_per_sample
    rng = np.random.default_rng(1)
    y_true = rng.random((2048, 32, 32)).astype(dtype)  # 4 or 8 MiB
    y_pred = (y_true + 0.1 * rng.standard_normal(y_true.shape)).astype(dtype)
    y_pred[5] = y_true[5]  # a perfect sample: inf dB
    expected = reference_psnr(y_true, y_pred, 2.0)
    tracemalloc.start()
    try:
        values = psnr_per_sample(y_true, y_pred, data_range=2.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(values, expected)
    # The plain formula peaks at 4 float64 copies (8 to 16 times the input).
    assert peak < y_true.nbytes / 8


def test_psnr_of_samples_larger_than_a_chunk():
    from retune_sklearn.metrics import psnr_per_sample
    rng = np.random.default_rng(2)
    y_true = rng.random((2, 500, 501))  # 2 MB a sample
    y_pred = y_true + 0.01 * rng.standard_normal(y_true.shape)
    tracemalloc.start()
    try:
        values = psnr_per_sample(y_true[:, ::-1], y_pred[:, ::-1])  # non-contiguous too
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(values, reference_psnr(y_true, y_pred), rtol=1e-12)
    assert peak < y_true[0].nbytes / 2


# --- numpy integers as parameters -----------------------------------------------------------
@pytest.mark.parametrize("hypergradient", ["jfb", "unrolled"])
def test_numpy_integer_K_and_T_are_the_python_integers(hypergradient):
    # np.uint8(16) * np.uint8(16) overflows to 0: the solves must run 256 steps anyway.
    params = dict(hypergradient=hypergradient, max_epochs=1)
    reference = make(K=16, T=16, **params).fit(X, Y)
    est = make(K=np.uint8(16), T=np.uint8(16), **params).fit(X, Y)
    np.testing.assert_array_equal(est.weights_, reference.weights_)
    assert est.fixed_point_residual_ == reference.fixed_point_residual_
    np.testing.assert_array_equal(est.transform(X), reference.transform(X))
    assert type(est.K) is np.uint8 and type(est.T) is np.uint8  # parameters left as given
    est.set_params(K=np.int16(16), T=np.int8(16))  # int8: 16 * 16 overflows too
    np.testing.assert_array_equal(est.transform(X), reference.transform(X))


# --- hints ----------------------------------------------------------------------------------
def test_score_warns_once_when_y_is_far_outside_data_range(fitted):
    # 8-bit images with the default data_range=1 score about -28 dB: say why.
    X_8bit, Y_8bit = np.round(X * 255), np.round(Y * 255)
    with pytest.warns(UserWarning, match=r"y spans \[0, 255\] \(peak-to-peak 255\), far more "
                      r"than data_range=1\.0.*data_range=255") as record:
        fitted.score(X_8bit, Y_8bit)
    assert sum("data_range" in str(w.message) for w in record) == 1
    est = copy.deepcopy(fitted).set_params(data_range=255.0, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.score(X, Y)
        fitted.score(X, 2 * Y - 1)  # [-1, 1] with data_range=1: within twice the range
        est.score(X_8bit, Y_8bit)
