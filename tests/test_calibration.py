"""PerTaskCalibratedClassifier: one map per task id, a global map otherwise."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

from mtlestimators import AutoTaskClassifier, PerTaskCalibratedClassifier
from tests.test_autotask import scenario_data


class FixedScores(ClassifierMixin, BaseEstimator):
    """A 'fitted' model whose positive-class probability is column 0 of X."""

    task_column = "task"

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.asarray(X["score"], dtype=float)
        return np.column_stack([1 - p, p])


def miscalibrated(n, seed):
    """Scores that are over-confident for task a and biased for task b."""
    rng = np.random.RandomState(seed)
    task = rng.choice(["a", "b"], size=n)
    score = rng.uniform(0.02, 0.98, size=n)
    true = np.where(task == "a", expit(0.4 * logit(score)), expit(logit(score) - 1.5))
    y = (rng.uniform(size=n) < true).astype(int)
    return pd.DataFrame({"score": score, "task": task}), y, true


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_per_task_maps_beat_one_global_map(method):
    X, y, _ = miscalibrated(6000, 0)
    X_test, y_test, true = miscalibrated(4000, 1)
    frozen = FrozenEstimator(FixedScores().fit(X, y))
    per_task = PerTaskCalibratedClassifier(frozen, method=method).fit(X, y)
    assert set(per_task.calibrators_) == {"a", "b"}
    one_map = PerTaskCalibratedClassifier(
        frozen, method=method, min_task_samples=10**6
    ).fit(X, y)
    assert one_map.calibrators_ == {}
    raw = log_loss(y_test, X_test["score"])
    single = log_loss(y_test, one_map.predict_proba(X_test)[:, 1])
    calibrated = per_task.predict_proba(X_test)[:, 1]
    assert log_loss(y_test, calibrated) < single < raw
    assert np.abs(calibrated - true).mean() < 0.05
    for task in ("a", "b"):  # each map is monotone
        rows = X_test["task"] == task
        order = np.argsort(X_test["score"][rows].to_numpy())
        assert np.all(np.diff(calibrated[rows.to_numpy()][order]) >= -1e-12)


def test_unseen_and_small_tasks_use_the_global_map():
    X, y, _ = miscalibrated(2000, 0)
    X.loc[:20, "task"] = "tiny"
    model = PerTaskCalibratedClassifier(
        FrozenEstimator(FixedScores().fit(X, y)), min_task_samples=30
    ).fit(X, y)
    assert "tiny" not in model.calibrators_
    assert "tiny" in model.tasks_.tolist()
    new = X.assign(task="new").iloc[:50]
    expected = model.global_calibrator_.predict(new["score"].to_numpy())
    np.testing.assert_allclose(model.predict_proba(new)[:, 1], expected)


def test_cross_fitted_autotask_calibration():
    X, y = scenario_data(n=600)
    model = PerTaskCalibratedClassifier(
        AutoTaskClassifier(
            task_column="scenario", max_epochs=10, verbose=0, random_state=0
        ),
        cv=3,
    ).fit(X, y)
    assert set(model.calibrators_) == {"ads", "hotel", "store"}
    X_test, y_test = scenario_data(n=400, seed=1)
    assert model.score(X_test, y_test) > 0.85
    assert model.predict_proba(X_test).shape == (400, 2)


def test_errors_name_the_fix():
    X, y, _ = miscalibrated(200, 0)
    with pytest.raises(ValueError, match="method='beta' is unknown"):
        PerTaskCalibratedClassifier(FixedScores(), method="beta").fit(X, y)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        PerTaskCalibratedClassifier(FrozenEstimator(FixedScores().fit(X, y))).fit(
            X, np.arange(len(y)) % 3
        )

    class NoTaskColumn(FixedScores):
        task_column = None

    with pytest.raises(ValueError, match="task_column=<index or name>"):
        PerTaskCalibratedClassifier(FrozenEstimator(NoTaskColumn().fit(X, y))).fit(X, y)


def test_unseen_tasks_get_the_map_fit_on_unseen_path_scores():
    X, y = scenario_data(n=900)
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=8, verbose=0, random_state=0
    ).fit(X[:600], y[:600])
    calibrated = PerTaskCalibratedClassifier(FrozenEstimator(model)).fit(
        X[600:], y[600:]
    )
    assert calibrated.unseen_calibrator_ is not None
    new = X[600:].assign(scenario="brand-new")
    raw = model.predict_proba(new)[:, 1]
    np.testing.assert_allclose(
        calibrated.predict_proba(new)[:, 1],
        calibrated.unseen_calibrator_.predict(raw),
    )
    # Seen tasks keep their own maps.
    seen = X[600:]
    rows = (seen["scenario"] == "ads").to_numpy()
    np.testing.assert_allclose(
        calibrated.predict_proba(seen)[rows, 1],
        calibrated.calibrators_["ads"].predict(model.predict_proba(seen)[rows, 1]),
    )


def test_platt_slope_is_never_negative():
    # Scores that are anti-correlated with the labels: an unconstrained fit
    # would flip the ranking; the bounded one stays monotone (a = 0).
    rng = np.random.RandomState(0)
    p = rng.uniform(0.05, 0.95, size=500)
    y = (rng.uniform(size=500) > p).astype(int)
    from mtlestimators.autotask._calibration import SigmoidCalibration

    fitted = SigmoidCalibration().fit(p, y)
    assert fitted.a_ >= 0.0
    assert np.all(np.diff(fitted.predict(np.sort(p))) >= 0)
