"""Per-sample masks: the model, metadata routing through Pipeline and GridSearchCV."""

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import load_image_patches
from retune_sklearn.metrics import psnr
from retune_sklearn.operators import Inpainting
from retune_sklearn.regularizers import WaveletL1

PARAMS = dict(regularizer=WaveletL1("haar", 2), K=10, T=2, batch_size=8, random_state=0)


@pytest.fixture(scope="module")
def masked_data():
    rng = np.random.default_rng(0)
    y = load_image_patches("train", patch_size=16, n_patches=16, random_state=0)
    masks = (rng.random(y.shape) < 0.6).astype(float)  # a different mask per image
    X = masks * (y + 0.01 * rng.standard_normal(y.shape))
    return X, y, masks


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def test_shared_mask_equals_inpainting_operator(masked_data):
    """mask_i = m for every i is the model of Inpainting(mask=m)."""
    X, y, masks = masked_data
    shared = np.broadcast_to(masks[0], X.shape)
    X_shared = shared * y
    by_mask = ReTuneRegularizer(init_weight=0.02, learn_weights=False, dtype="float64",
                                **PARAMS).fit(X_shared, y, mask=shared)
    by_operator = ReTuneRegularizer(operator=Inpainting(mask=masks[0]), init_weight=0.02,
                                    learn_weights=False, dtype="float64",
                                    **PARAMS).fit(X_shared, y)
    np.testing.assert_allclose(by_mask.transform(X_shared, mask=shared),
                               by_operator.transform(X_shared), atol=1e-10)


def test_fit_with_per_sample_masks_fills_the_holes(masked_data):
    X, y, masks = masked_data
    est = ReTuneRegularizer(max_epochs=8, learning_rate=0.2, **PARAMS).fit(X, y, mask=masks)
    restored = est.transform(X, mask=masks)
    assert psnr(y, restored) > psnr(y, X) + 5.0
    assert est.score(X, y, mask=masks) == pytest.approx(psnr(y, restored))
    # fit_transform passes the mask to both steps.
    np.testing.assert_allclose(est.fit_transform(X, y, mask=masks), restored, atol=1e-6)


def test_masks_are_checked(masked_data):
    X, y, masks = masked_data
    est = ReTuneRegularizer(max_epochs=1, **PARAMS)
    with pytest.raises(ValueError, match="mask has shape"):
        est.fit(X, y, mask=masks[:, :8])
    with pytest.raises(ValueError, match="only 0 and 1"):
        est.fit(X, y, mask=masks * 0.5)
    with pytest.raises(ValueError, match="no entry"):
        est.fit(X, y, mask=np.zeros_like(masks))


class _Recording(ReTuneRegularizer):
    """Records the masks each fit receives (to check the per-fold split)."""

    received = []

    def fit(self, X, y, mask=None):
        _Recording.received.append(None if mask is None else np.array(mask))
        return super().fit(X, y, mask=mask)


def test_grid_search_routes_and_splits_masks(masked_data, routing):
    X, y, masks = masked_data
    _Recording.received = []
    est = _Recording(max_epochs=1, **PARAMS).set_fit_request(mask=True).set_score_request(
        mask=True)
    cv = KFold(2)
    search = GridSearchCV(est, {"K": [2, 5]}, cv=cv, refit=True).fit(X, y, mask=masks)
    folds = [train for train, _ in cv.split(X)]
    # 2 candidates × 2 folds, then the refit on all data.
    for received, train in zip(_Recording.received, folds * 2):
        np.testing.assert_array_equal(received, masks[train])
    np.testing.assert_array_equal(_Recording.received[-1], masks)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_pipeline_routes_masks_to_fit_and_transform(masked_data, routing):
    X, y, masks = masked_data
    est = ReTuneRegularizer(max_epochs=2, **PARAMS).set_fit_request(
        mask=True).set_transform_request(mask=True)
    pipe = make_pipeline(FunctionTransformer(np.asarray), est).fit(X, y, mask=masks)
    direct = ReTuneRegularizer(max_epochs=2, **PARAMS).fit(X, y, mask=masks)
    np.testing.assert_allclose(pipe.transform(X, mask=masks), direct.transform(X, mask=masks),
                               atol=1e-6)


def test_without_routing_the_fixed_operator_keeps_working(masked_data):
    X, y, _ = masked_data
    est = ReTuneRegularizer(operator=Inpainting(keep_prob=0.6, random_state=0), max_epochs=1,
                            **PARAMS)
    search = GridSearchCV(est, {"K": [2, 5]}, cv=2).fit(X, y)
    assert np.isfinite(search.best_score_)
