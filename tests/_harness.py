"""Data and settings the shared suite uses for each kind of estimator.

A new estimator joins the common tests by being exported from
``mtlestimators.__all__``; if it needs data other than a tabular multi-task
classification problem, add a case to ``make_data``.
"""

import numpy as np
from sklearn.base import is_classifier


def fast_instance(cls):
    """A quick-to-train instance: defaults, silent, seeded."""
    return cls(verbose=0, random_state=0, max_epochs=10)


def make_data(estimator, n_samples=240, seed=0):
    """(X_train, y_train, X_test, y_test) suited to ``estimator``."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, 6)).astype(np.float32)
    if is_classifier(estimator):
        y = np.column_stack(
            [X[:, 0] + 0.5 * X[:, 1] > 0, X[:, 0] - X[:, 2] > 0]
        ).astype(float)
        y[rng.rand(n_samples) < 0.2, 1] = np.nan
    else:
        raise NotImplementedError(f"no harness data for {type(estimator).__name__}")
    cut = n_samples * 3 // 4
    return X[:cut], y[:cut], X[cut:], y[cut:]


def outputs(estimator, X):
    """What the estimator produces, to compare two fitted copies."""
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)
    return estimator.transform(X)
