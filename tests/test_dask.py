"""GridSearchCV on a Dask cluster (joblib's dask backend) gives the sequential results.

Needs ``dask`` and ``distributed`` (skipped without them). A local cluster
of two worker *processes* is started, so the estimators really travel
pickled to other interpreters and back.
"""

import logging

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

distributed = pytest.importorskip("dask.distributed")
import dask  # noqa: E402

from retune_sklearn import ReTuneRegularizer  # noqa: E402
from retune_sklearn.operators import Blur  # noqa: E402
from retune_sklearn.regularizers import WaveletL1  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """A client of a local cluster with two single-threaded worker processes."""
    # As in examples/search_on_dask.py: without a fixed mmap threshold, the nanny's
    # MALLOC_TRIM_THRESHOLD_ makes torch fits about 3 times slower on the workers.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            worker_dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def _search():
    """A tiny deblurring search over K and T (16 images of 16×16, 8 fits)."""
    rng = np.random.default_rng(0)
    # Piecewise-constant images: 4×4 blocks upsampled to 16×16.
    y = np.kron(rng.random((16, 4, 4)), np.ones((4, 4)))
    blur = Blur(sigma=1.0, size=5)
    import torch

    with torch.no_grad():
        X = blur.forward(torch.as_tensor(y)).numpy()
    X = X + 0.02 * rng.standard_normal(X.shape)
    estimator = ReTuneRegularizer(blur, WaveletL1("haar", 2), learning_rate=0.1, max_epochs=2,
                                  batch_size=4, device="cpu", n_threads=1, random_state=0)
    search = GridSearchCV(estimator, {"K": [1, 3], "T": [1, 2]}, cv=KFold(2), n_jobs=-1)
    return search, X, y


def test_grid_search_on_dask_matches_sequential(client):
    search, X, y = _search()
    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        search.fit(X, y)
    # The fits ran on the cluster's workers (other processes), not here.
    workers = {task["worker"] for task in tasks.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])

    sequential = clone(search).set_params(n_jobs=1).fit(X, y)
    assert search.best_params_ == sequential.best_params_
    # Same seeds, same thread count, CPU: bitwise identical scores.
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  sequential.cv_results_["mean_test_score"])
    for key in ("rank_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(search.cv_results_[key], sequential.cv_results_[key])
    # The best candidate, refitted on all the data (in this process), is the same model.
    np.testing.assert_array_equal(search.best_estimator_.weights_,
                                  sequential.best_estimator_.weights_)
    np.testing.assert_array_equal(search.predict(X[:2]), sequential.predict(X[:2]))
