"""Common harness: every public estimator, discovered from ``__all__``."""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from mtlestimators.utils import all_estimators
from tests._harness import (
    check_instance,
    expected_failed_checks,
    fast_instance,
    make_data,
    outputs,
    param_prefix,
    preprocessor,
)

ESTIMATORS = [cls for _, cls in all_estimators()]


def test_discovery_finds_the_estimators():
    names = [name for name, _ in all_estimators()]
    assert "SharedBottomClassifier" in names
    assert not any(name.endswith("Base") for name in names)


@parametrize_with_checks(
    [check_instance(cls) for cls in ESTIMATORS],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.fixture(params=ESTIMATORS, ids=lambda c: c.__name__)
def estimator(request):
    return fast_instance(request.param)


def test_clone_keeps_params_and_drops_fit(estimator):
    X, y, _, _ = make_data(estimator)
    key = param_prefix(estimator) + "optimizer__weight_decay"
    estimator.set_params(**{key: 1e-4})
    fitted = clone(estimator).fit(X, y)
    copy = clone(fitted)
    assert copy.get_params()[key] == 1e-4
    assert copy.get_params().keys() == estimator.get_params().keys()
    assert not hasattr(copy, "net_")


def test_works_in_a_pipeline(estimator):
    X, y, X_test, _ = make_data(estimator)
    pipe = make_pipeline(preprocessor(estimator), estimator).fit(X, y)
    assert outputs(pipe, X_test).shape[0] == len(X_test)


def test_grid_search_with_two_jobs(estimator):
    X, y, _, _ = make_data(estimator)
    prefix = param_prefix(estimator)
    grid = GridSearchCV(
        estimator,
        {prefix + "lr": [1e-3, 1e-2], prefix + "optimizer__weight_decay": [0.0, 1e-4]},
        # y has NaN (missing labels), which scikit-learn's check_cv cannot
        # stratify on: an explicit splitter is required (docs/usage.md).
        cv=KFold(2, shuffle=True, random_state=0),
        n_jobs=2,
        error_score="raise",
    ).fit(X, y)
    assert set(grid.best_params_) == {prefix + "lr", prefix + "optimizer__weight_decay"}
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_joblib_round_trip_predicts_identically(estimator, tmp_path):
    X, y, X_test, _ = make_data(estimator)
    estimator.fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(estimator, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(outputs(loaded, X_test), outputs(estimator, X_test))


def test_refit_with_same_seed_is_identical(estimator):
    X, y, X_test, _ = make_data(estimator)
    first = outputs(clone(estimator).fit(X, y), X_test)
    second = outputs(clone(estimator).fit(X, y), X_test)
    np.testing.assert_array_equal(first, second)


def test_different_seeds_give_different_models(estimator):
    X, y, X_test, _ = make_data(estimator)
    key = param_prefix(estimator) + "random_state"
    first = outputs(clone(estimator).set_params(**{key: 0}).fit(X, y), X_test)
    second = outputs(clone(estimator).set_params(**{key: 1}).fit(X, y), X_test)
    assert not np.array_equal(first, second)
