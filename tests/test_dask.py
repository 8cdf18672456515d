"""Hyper-parameter search over a Dask cluster through joblib (issue 6):
``joblib.parallel_config(backend="dask")`` with ``GridSearchCV(n_jobs=-1)``
on a real ``distributed.LocalCluster`` with two worker processes."""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from mtlestimators import AutoTaskClassifier, SharedBottomClassifier
from tests._harness import make_data

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"OMP_NUM_THREADS": "1"},
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def _search(estimator, grid, X, y, n_jobs):
    return GridSearchCV(
        estimator,
        grid,
        cv=KFold(2, shuffle=True, random_state=0),
        n_jobs=n_jobs,
        error_score="raise",
    ).fit(X, y)


@pytest.mark.parametrize("cls", [SharedBottomClassifier, AutoTaskClassifier])
def test_grid_search_on_a_local_cluster_matches_the_sequential_one(client, cls):
    estimator = cls(max_epochs=3, verbose=0, random_state=0)
    X, y, _, _ = make_data(estimator)
    grid = {"lr": [1e-3, 1e-2], "optimizer__weight_decay": [0.0, 1e-4]}
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask"):
            on_cluster = _search(estimator, grid, X, y, n_jobs=-1)
    sequential = _search(estimator, grid, X, y, n_jobs=1)
    # the 8 fits (4 candidates x 2 folds) ran as tasks on both worker processes
    assert len(stream.data) >= 8
    assert len({task["worker"] for task in stream.data}) == 2
    np.testing.assert_allclose(
        on_cluster.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
    )
    assert on_cluster.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(
        on_cluster.predict_proba(X[:10]), sequential.predict_proba(X[:10])
    )
