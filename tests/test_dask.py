"""Hyper-parameter search over a Dask cluster through joblib (issue 6):
``joblib.parallel_config(backend="dask")`` with ``GridSearchCV(n_jobs=-1)``
on a real ``distributed.LocalCluster`` with two worker processes."""

import joblib
import numpy as np
import pytest
import torch
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
        # the workers compute with as many threads as this process, so
        # their floating-point results match the sequential search's
        env={"OMP_NUM_THREADS": str(torch.get_num_threads())},
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
    # the fits ran as tasks on the cluster's worker processes (joblib may
    # batch several fits into one task)
    workers = set(client.scheduler_info()["workers"])
    assert stream.data and {task["worker"] for task in stream.data} <= workers
    np.testing.assert_allclose(
        on_cluster.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
    )
    assert on_cluster.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(
        on_cluster.predict_proba(X[:10]), sequential.predict_proba(X[:10])
    )
