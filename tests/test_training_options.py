"""partial_fit, warm_start, early stopping, verbosity, n_threads, feature names, grid search."""

import logging
import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.utils._param_validation import InvalidParameterError

import retune_sklearn.learning.progress as training_module
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.regularizers import Tikhonov, WaveletL1

RNG = np.random.default_rng(0)
Y = RNG.random((8, 16, 16))
X = Y + 0.1 * RNG.standard_normal(Y.shape)
PARAMS = dict(regularizer=WaveletL1("haar", levels=2), K=2, T=2, max_epochs=2, batch_size=4,
              random_state=0)


def make(**params):
    return ReTuneRegularizer(**{**PARAMS, **params})


def fitted_state(est):
    return pickle.dumps({k: v for k, v in vars(est).items() if k.endswith("_")})


# --- partial_fit and warm_start -------------------------------------------------------------
def test_first_partial_fit_is_one_epoch_of_fit():
    est = make().partial_fit(X, Y)
    reference = make(max_epochs=1).fit(X, Y)
    np.testing.assert_array_equal(est.weights_, reference.weights_)
    assert est.loss_curve_ == reference.loss_curve_ and est.n_iter_ == 1


def test_partial_fit_continues_weights_and_adam_state():
    # Unshuffled, two passes of partial_fit are exactly two epochs of fit:
    # the same weights only if Adam's moments and step count carry over.
    est = make(shuffle=False).partial_fit(X, Y).partial_fit(X, Y)
    reference = make(shuffle=False, max_epochs=2).fit(X, Y)
    np.testing.assert_array_equal(est.weights_, reference.weights_)
    assert est.loss_curve_ == reference.loss_curve_ and est.n_iter_ == 2
    # A fresh Adam state (warm_start refits do that) gives other weights.
    restarted = make(shuffle=False, max_epochs=1, warm_start=True).fit(X, Y).fit(X, Y)
    assert not np.array_equal(restarted.weights_, reference.weights_)


def test_adam_state_survives_pickling():
    # The warm-start iterates are not pickled (a cache as large as X): without
    # them both copies run the same solves.
    est = make(shuffle=False, reuse_iterates=False).partial_fit(X, Y)
    copy = pickle.loads(pickle.dumps(est))
    est.partial_fit(X, Y)
    copy.partial_fit(X, Y)
    np.testing.assert_array_equal(copy.weights_, est.weights_)
    state = copy._optimizer_state["state"]["state"]
    assert all(t.device.type == "cpu" for moments in state.values() for t in moments.values())


def test_partial_fit_refuses_another_layout_and_keeps_the_fit():
    est = make().partial_fit(X, Y)
    state = fitted_state(est)
    with pytest.raises(ValueError, match="X has samples of shape"):
        est.partial_fit(X[:, :8, :8], Y[:, :8, :8])
    with pytest.raises(ValueError, match="y has samples of shape"):
        est.partial_fit(X, Y.reshape(8, -1))
    assert fitted_state(est) == state


def test_warm_start_starts_from_the_fitted_weights():
    est = make(max_epochs=1).fit(X, Y)
    learned = est.weights_.copy()
    est.set_params(warm_start=True, learn_weights=False).fit(X, Y)
    np.testing.assert_array_equal(est.weights_, learned)
    est.set_params(warm_start=False).fit(X, Y)
    np.testing.assert_array_equal(est.weights_, make(learn_weights=False).fit(X, Y).weights_)


def test_warm_start_refuses_another_regularizer_and_keeps_the_fit():
    est = make().fit(X, Y)
    state = fitted_state(est)
    with pytest.raises(ValueError, match="warm_start=True: the fitted model has the weights"):
        est.set_params(warm_start=True, regularizer=Tikhonov()).fit(X, Y)
    assert fitted_state(est) == state


# --- early stopping -------------------------------------------------------------------------
def scripted_validation(monkeypatch, scores):
    scores = iter(scores)
    monkeypatch.setattr(ReTuneRegularizer, "_validation_score", lambda self, *a: next(scores))


def test_early_stopping_stops_and_keeps_the_best_epoch(monkeypatch):
    scripted_validation(monkeypatch, [20.0, 21.0, 20.5, 20.9, 30.0])
    est = make(early_stopping=True, n_iter_no_change=2, max_epochs=10).fit(X, Y)
    # Epochs 3 and 4 do not improve on epoch 2: stop after epoch 4, keep epoch 2.
    assert est.n_iter_ == 4 and est.converged_
    assert est.validation_scores_ == [20.0, 21.0, 20.5, 20.9]
    assert est.best_validation_score_ == 21.0
    scripted_validation(monkeypatch, [20.0, 21.0])
    two_epochs = make(early_stopping=True, max_epochs=2).fit(X, Y)  # same split and batches
    np.testing.assert_array_equal(est.weights_, two_epochs.weights_)


def test_early_stopping_gains_below_tol_do_not_count(monkeypatch):
    scripted_validation(monkeypatch, [20.0, 20.00005, 20.00009, 30.0])
    est = make(early_stopping=True, n_iter_no_change=2, tol=1e-4, max_epochs=10).fit(X, Y)
    assert est.n_iter_ == 3


def test_early_stopping_validation_is_the_psnr_of_the_held_out_split():
    est = make(early_stopping=True, validation_fraction=0.25, max_epochs=3, n_iter_no_change=3)
    est.fit(X, Y)
    _, held_out = train_test_split(np.arange(len(X)), test_size=0.25, random_state=0)
    assert len(est.validation_scores_) == est.n_iter_ == 3
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.score(X[held_out], Y[held_out]) == pytest.approx(est.best_validation_score_,
                                                                rel=1e-5)


def test_without_early_stopping_there_are_no_validation_scores():
    est = make().fit(X, Y)
    assert est.validation_scores_ is None and est.best_validation_score_ is None


def test_early_stopping_needs_a_training_sample():
    est = make().fit(X, Y)
    state = fitted_state(est)
    with pytest.raises(ValueError, match="early_stopping=True cannot hold out"):
        est.set_params(early_stopping=True).fit(X[:1], Y[:1])
    assert fitted_state(est) == state


# --- verbosity ------------------------------------------------------------------------------
def test_verbose_0_is_silent(capsys, caplog):
    with caplog.at_level(logging.DEBUG, logger="retune_sklearn"):
        make().fit(X, Y)
    assert capsys.readouterr() == ("", "") and not caplog.records


def test_verbose_1_shows_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    make(verbose=1).fit(X, Y)
    err = capsys.readouterr().err
    assert "ReTuneRegularizer" in err and "2/2" in err and "loss=" in err


def test_verbose_1_without_tqdm_prints_lines(capsys, monkeypatch):
    monkeypatch.setattr(training_module, "tqdm", None)
    make(verbose=1).fit(X, Y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" loss=")[0] for line in lines] == [
        "[ReTuneRegularizer] epoch 1/2", "[ReTuneRegularizer] epoch 2/2"]


def test_verbose_2_logs_loss_validation_psnr_and_weights(caplog, monkeypatch):
    monkeypatch.setattr(training_module, "tqdm", None)
    with caplog.at_level(logging.INFO, logger="retune_sklearn"):
        est = make(verbose=2, early_stopping=True, validation_fraction=0.25).fit(X, Y)
    messages = [r.getMessage() for r in caplog.records if r.name == "retune_sklearn"]
    assert len(messages) == 2
    assert messages[1].startswith("epoch 2/2 loss=")
    assert f"validation_psnr={est.validation_scores_[1]:.4f}" in messages[1]
    assert "weights: a2=" in messages[1] and "d1=" in messages[1]


# --- threads --------------------------------------------------------------------------------
def threads_seen(monkeypatch, est, method, *args):
    seen, original = set(), ReTuneRegularizer._solve

    def recording(self, *a):
        seen.add(torch.get_num_threads())
        return original(self, *a)
    monkeypatch.setattr(ReTuneRegularizer, "_solve", recording)
    getattr(est, method)(*args)
    return seen


def test_n_threads_applies_during_fit_and_transform_only(monkeypatch):
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    est = make(n_threads=target)
    assert threads_seen(monkeypatch, est, "fit", X, Y) == {target}
    assert threads_seen(monkeypatch, est, "transform", X) == {target}
    assert torch.get_num_threads() == before
    assert threads_seen(monkeypatch, est.set_params(n_threads=None), "transform", X) == {before}


def test_n_threads_is_restored_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="different numbers of samples"):
        make(n_threads=3).fit(X, Y[:5])
    with pytest.raises(InvalidParameterError, match="'n_threads' parameter"):
        make(n_threads=0).fit(X, Y)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("param, value", [
    ("early_stopping", "yes"), ("validation_fraction", 0.0), ("validation_fraction", 1.0),
    ("n_iter_no_change", 0), ("tol", -1e-3), ("warm_start", None), ("n_threads", 1.5),
])
def test_invalid_new_parameters_raise_before_any_change(param, value):
    est = make().fit(X, Y)
    state = fitted_state(est)
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter"):
        est.set_params(**{param: value}).partial_fit(X, Y)
    assert fitted_state(est) == state


# --- feature names and set_output -----------------------------------------------------------
def test_feature_names_out_name_the_reconstructed_entries():
    est = make(regularizer=Tikhonov())
    with pytest.raises(NotFittedError):
        est.get_feature_names_out()
    est.fit(X.reshape(8, -1), Y.reshape(8, -1))
    names = est.get_feature_names_out()
    assert names.tolist() == [f"retuneregularizer{i}" for i in range(256)]
    assert isinstance(est.set_output(transform="default").transform(X.reshape(8, -1)),
                      np.ndarray)


def test_set_output_pandas_gives_a_dataframe():
    pd = pytest.importorskip("pandas")
    est = make(regularizer=Tikhonov()).set_output(transform="pandas")
    out = est.fit(X.reshape(8, -1), Y.reshape(8, -1)).transform(X.reshape(8, -1))
    assert isinstance(out, pd.DataFrame) and out.shape == (8, 256)
    assert list(out.columns) == est.get_feature_names_out().tolist()


# --- grid search ----------------------------------------------------------------------------
def test_parallel_grid_search_matches_the_sequential_one():
    est = make(max_epochs=1, n_threads=1)
    grid = {"K": [1, 2], "T": [1, 3]}
    runs = [GridSearchCV(est, grid, cv=2, n_jobs=n_jobs).fit(X, Y) for n_jobs in (1, 2)]
    assert runs[0].best_params_ == runs[1].best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(runs[0].cv_results_[key], runs[1].cv_results_[key])
