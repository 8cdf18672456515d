"""Per-task probability calibration (AutoTask paper, section 4.2.1: the
task-specific models are calibrated with each task's calibration data, after
Caruana and Niculescu-Mizil 2004)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    _num_samples,
    check_array,
    check_is_fitted,
    column_or_1d,
)

from .._core.params import HasMethods, InstanceOf, Integer, Options, validate_params
from .._core.targets import mixes_label_types
from ._scenario import task_codes, task_column_index, task_vocabulary

METHODS = ("sigmoid", "isotonic")
_EPS = 1e-7


class SigmoidCalibration:
    """Platt scaling on the log-odds: ``p' = sigmoid(a * logit(p) + b)``,
    fit by maximum likelihood against Platt's smoothed targets
    ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``."""

    def fit(self, p: np.ndarray, y: np.ndarray) -> SigmoidCalibration:
        f = logit(np.clip(p, _EPS, 1 - _EPS))
        n_pos = float(y.sum())
        n_neg = float(len(y) - n_pos)
        t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

        def loss(ab):
            z = ab[0] * f + ab[1]
            q = expit(z)
            value = np.sum(np.logaddexp(0, z) - t * z)
            grad_z = q - t
            return value, np.array([grad_z @ f, grad_z.sum()])

        # a >= 0 keeps the map monotone increasing (it never inverts a ranking)
        result = minimize(
            loss,
            np.array([1.0, 0.0]),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, None), (None, None)],
        )
        self.a_, self.b_ = (float(v) for v in result.x)
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        return expit(self.a_ * logit(np.clip(p, _EPS, 1 - _EPS)) + self.b_)


class IdentityCalibration:
    """Leaves scores as they are (no calibration data for them)."""

    def predict(self, p: np.ndarray) -> np.ndarray:
        return np.array(p, dtype=float)


class IsotonicCalibration:
    """Monotone step map fit by isotonic regression, clipped outside the
    calibration range."""

    def fit(self, p: np.ndarray, y: np.ndarray) -> IsotonicCalibration:
        self.map_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        self.map_.fit(p, y)
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        return self.map_.predict(p)


def _calibrator(method: str):
    return SigmoidCalibration() if method == "sigmoid" else IsotonicCalibration()


class PerTaskCalibratedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Calibrate a binary multi-scenario classifier with one map per task id.

    The map of each task is fit on held-out scores of that task's rows: with
    ``cv`` folds (out-of-fold predictions of clones, then the estimator is
    refit on all rows), or, for an estimator that is already fitted and
    wrapped in :class:`sklearn.frozen.FrozenEstimator`, on the rows given to
    ``fit`` (the paper's "each task's calibration data"). Tasks with fewer
    than ``min_task_samples`` calibration rows or a single class use a
    global map fit on all rows; task ids the model never saw go through its
    unseen-task path, so they get a map fit on the calibration rows scored
    that way (``unseen_calibrator_``).

    Parameters
    ----------
    estimator : classifier, default=None
        A binary classifier with ``predict_proba`` whose X has a task column
        (:class:`~mtlestimators.AutoTaskClassifier` when None), or a
        ``FrozenEstimator`` of a fitted one.
    method : {"sigmoid", "isotonic"}, default="sigmoid"
        Platt scaling of the log-odds, or isotonic regression.
    cv : int, cross-validation splitter or iterable, default=5
        Ignored for a ``FrozenEstimator``.
    task_column : int, str or None, default=None
        The column of X with task ids; None takes the estimator's
        ``task_column``.
    min_task_samples : int, default=30
        Fewest calibration rows a task needs for a map of its own.

    Attributes
    ----------
    estimator_ : classifier
        The fitted classifier whose scores are calibrated.
    calibrators_ : dict
        ``{task id: map}`` for the tasks with a map of their own.
    global_calibrator_ : map
        Used for tasks the model knows that have no map of their own.
    unseen_calibrator_ : map or None
        Used for task ids the model did not see in its fit: fit on the
        calibration rows scored as an unseen task (their id replaced by one
        the model never saw). None when the estimator does not list its
        tasks (``tasks_``); the global map is used then.
    tasks_ : ndarray of object
        Task ids seen in ``fit``.
    classes_ : ndarray of shape (2,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from mtlestimators import AutoTaskClassifier, PerTaskCalibratedClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = np.column_stack([rng.normal(size=(400, 3)), rng.randint(2, size=400)])
    >>> y = (X[:, 0] + X[:, 3] > 0.5).astype(int)
    >>> model = AutoTaskClassifier(max_epochs=3, verbose=0, random_state=0)
    >>> model.fit(X[:300], y[:300])  # doctest: +ELLIPSIS
    AutoTaskClassifier(...)
    >>> calibrated = PerTaskCalibratedClassifier(FrozenEstimator(model))
    >>> calibrated.fit(X[300:], y[300:]).predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        "estimator": [None, HasMethods("fit", "predict_proba")],
        "method": [Options(METHODS)],
        "cv": [
            None,
            Integer(2),
            HasMethods("split"),
            InstanceOf(Iterable, exclude=str, description="an iterable of splits"),
        ],
        "task_column": [None, Integer(), str],
        "min_task_samples": [Integer(1)],
    }

    def __init__(
        self,
        estimator=None,
        method: str = "sigmoid",
        cv=5,
        task_column=None,
        min_task_samples: int = 30,
    ):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.task_column = task_column
        self.min_task_samples = min_task_samples

    # ----------------------------------------------------------------- helpers
    def _base_estimator(self):
        if self.estimator is None:
            from ._autotask import AutoTaskClassifier

            return AutoTaskClassifier()
        return self.estimator

    def _task_column(self, estimator):
        if self.task_column is not None:
            return self.task_column
        inner = _unfrozen(estimator)
        column = getattr(inner, "task_column", None)
        if column is None:
            raise ValueError(
                f"Cannot tell which column of X holds the task ids: "
                f"{type(inner).__name__} has no task_column. Pass "
                "PerTaskCalibratedClassifier(..., task_column=<index or name>)."
            )
        return column

    def _task_ids(self, X, column) -> np.ndarray:
        names = getattr(X, "columns", None)
        n_columns = X.shape[1] if hasattr(X, "shape") else len(X[0])
        j = task_column_index(column, n_columns, names)
        if names is not None:
            return np.asarray(X.iloc[:, j], dtype=object)
        return np.asarray(np.asarray(X, dtype=object)[:, j], dtype=object)

    def _fit_map(self, scores, target):
        """A map on ``scores``, or the identity when they cannot fit one."""
        if len(target) < 2 or not 0 < target.sum() < len(target):
            return IdentityCalibration()
        return _calibrator(self.method).fit(scores, target)

    def _unseen_scores(self, estimator, X, column):
        """Positive-class scores of X's rows with their task id replaced by
        one the estimator has not seen; None if it does not list its tasks."""
        tasks = _tasks_of(estimator)
        if tasks is None:
            return None
        names = getattr(X, "columns", None)
        j = task_column_index(column, X.shape[1], names)
        numeric = all(
            isinstance(t, numbers.Real) and not isinstance(t, bool) for t in tasks
        )
        if numeric:
            sentinel = float(max((abs(float(t)) for t in tasks), default=0.0)) + 1.0
        else:
            sentinel = "__unseen_task__"
            while sentinel in set(tasks):
                sentinel += "_"
        if names is not None:
            X = X.copy()
            X[names[j]] = pd.Series([sentinel] * len(X), index=X.index, dtype=object)
        else:
            X = np.array(X, dtype=None if numeric else object, copy=True)
            X[:, j] = sentinel
        try:
            return self._positive_scores(estimator, X)
        except Exception as exc:
            # The placeholder id is ours, not the user's: speak of tasks not
            # seen in fit rather than of the placeholder.
            message = str(exc)
            if not numeric:
                for text in (repr(sentinel), sentinel):
                    message = message.replace(text, "<a task id not seen in fit>")
            raise ValueError(
                f"PerTaskCalibratedClassifier fits its map for tasks not seen in "
                f"fit on scores of rows whose task id is replaced by one the "
                f"estimator did not see in fit, but "
                f"{type(_unfrozen(estimator)).__name__}.predict_proba refused "
                f"such rows ({type(exc).__name__}: {message}). Use an estimator "
                "that predicts rows of tasks not seen in fit (as "
                "AutoTaskClassifier and MultiTaskDNNClassifier do), or one "
                "without a tasks_ attribute."
            ) from None

    @staticmethod
    def _positive_scores(estimator, X) -> np.ndarray:
        return np.asarray(estimator.predict_proba(X))[:, 1]

    # --------------------------------------------------------------------- fit
    def fit(self, X, y, **fit_params):
        """Fit the estimator (unless frozen) and one calibration map per task.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The estimator's input, with the task id column ``task_column``.
            With a ``FrozenEstimator``, the calibration rows.
        y : array-like of shape (n_samples,)
            Binary labels, one for every row (no missing labels), from the
            estimator's classes.
        **fit_params
            Passed to the estimator's ``fit`` (not used with a
            ``FrozenEstimator``); row-aligned ones (such as ``soft_target``)
            are split with the folds.

        Returns
        -------
        self
        """
        validate_params(self)
        if y is None:
            raise ValueError(
                "PerTaskCalibratedClassifier requires y to be passed, but the "
                "target y is None."
            )
        X = _check_X(X)
        y = column_or_1d(y, warn=True)
        n_missing = int(pd.isna(y).sum())
        if n_missing:
            raise ValueError(
                f"y has {n_missing} missing label(s) (NaN/None); per-task "
                "calibration needs the label of every row. Drop the unlabelled "
                "rows from X and y."
            )
        if mixes_label_types(np.asarray(y, dtype=object)):
            raise ValueError(
                "y mixes label types (strings and numbers); use one type for "
                "all labels, e.g. y.astype(str)."
            )
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            fix = (
                "binarize the values (e.g. y > threshold)"
                if y_type == "continuous"
                else "give y two classes (e.g. one class against the rest)"
            )
            raise ValueError(
                "Only binary classification is supported. The type of the target "
                f"y is {y_type}: per-task calibration maps the positive-class "
                f"probability; {fix}."
            )
        n = _num_samples(X)
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)}.")
        estimator = self._base_estimator()
        column = self._task_column(estimator)
        ids = self._task_ids(X, column)
        if isinstance(estimator, FrozenEstimator):
            fitted = estimator
            check_is_fitted(fitted.estimator)
            scores = self._positive_scores(fitted, X)
            known = _known_tasks(fitted, ids)
            unseen = self._unseen_scores(fitted, X, column)
        else:
            # The fit on all rows first: it checks every row before any
            # training, where a fold's fit would see only its own rows.
            fitted = clone(estimator).fit(X, y, **fit_params)
            scores, unseen = np.empty(n), np.empty(n)
            known = np.zeros(n, dtype=bool)
            splitter = check_cv(self.cv, y, classifier=True)
            for train, test in splitter.split(X, y):
                part = clone(estimator).fit(
                    _safe_indexing(X, train),
                    y[train],
                    **_rows(fit_params, train, n),
                )
                X_test = _safe_indexing(X, test)
                scores[test] = self._positive_scores(part, X_test)
                known[test] = _known_tasks(part, ids[test])
                part_unseen = self._unseen_scores(part, X_test, column)
                unseen = None if part_unseen is None else unseen
                if unseen is not None:
                    unseen[test] = part_unseen
        classes = np.asarray(fitted.classes_)
        if len(classes) != 2:
            raise ValueError(
                f"The estimator has {len(classes)} classes; per-task calibration "
                "needs a binary classifier."
            )
        unknown = ~np.isin(y, classes)
        if unknown.any():
            raise ValueError(
                f"y has labels {sorted(set(y[unknown]))} the estimator was not "
                f"fit on; its classes are {list(classes)}."
            )
        positive = (y == classes[1]).astype(float)

        # Maps are fit on the scores they will be applied to: a task's map and
        # the global map on scores of rows whose task the model knew (in cv
        # mode, a fold's model may not have seen a task); the unseen-task map
        # on the same rows scored as an unseen task.
        self.global_calibrator_ = self._fit_map(scores[known], positive[known])
        self.unseen_calibrator_ = (
            None if unseen is None else self._fit_map(unseen, positive)
        )
        calibrators = {}
        for task in task_vocabulary(ids):
            rows = _matches(ids, task) & known
            target = positive[rows]
            if rows.sum() >= self.min_task_samples and 0 < target.sum() < len(target):
                calibrators[task] = _calibrator(self.method).fit(scores[rows], target)
        self.estimator_ = fitted
        self.calibrators_ = calibrators
        self.tasks_ = task_vocabulary(ids)
        self.classes_ = classes
        for name in ("n_features_in_", "feature_names_in_"):
            inner = _unfrozen(fitted)
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))
        return self

    # ----------------------------------------------------------------- predict
    def predict_proba(self, X) -> np.ndarray:
        """Calibrated class probabilities (n, 2).

        Each row's positive-class score goes through the map of its task, the
        unseen-task map for a task id the estimator did not see, or else the
        global map.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The estimator's input, with the task id column ``task_column``.

        Returns
        -------
        ndarray of shape (n_samples, 2)
        """
        check_is_fitted(self)
        X = _check_X(X)
        scores = self._positive_scores(self.estimator_, X)
        ids = self._task_ids(X, self._task_column(self._base_estimator()))
        p = self.global_calibrator_.predict(scores)
        if self.unseen_calibrator_ is not None:
            unseen = ~_known_tasks(self.estimator_, ids)
            if unseen.any():
                p[unseen] = self.unseen_calibrator_.predict(scores[unseen])
        for task, calibrator in self.calibrators_.items():
            rows = _matches(ids, task)
            if rows.any():
                p[rows] = calibrator.predict(scores[rows])
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_``: the positive class where its calibrated
        probability is above 0.5.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The estimator's input, with the task id column ``task_column``.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] > 0.5).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.non_deterministic = False
        return tags


def _unfrozen(estimator):
    """The estimator inside a FrozenEstimator (or the estimator itself)."""
    return getattr(estimator, "estimator", estimator)


def _tasks_of(estimator):
    return getattr(_unfrozen(estimator), "tasks_", None)


def _known_tasks(estimator, ids) -> np.ndarray:
    """Rows whose task id the estimator saw in fit (all rows when it does not
    list its tasks)."""
    tasks = _tasks_of(estimator)
    if tasks is None:
        return np.ones(len(ids), dtype=bool)
    return task_codes(np.asarray(ids, dtype=object), tasks) != 0


def _check_X(X):
    """Check X (2-D, not sparse, at least one row and column) and return it
    unchanged when it is a DataFrame or an array, so the estimator sees the
    column names; other array-likes become an array."""
    checked = check_array(X, dtype=None, ensure_all_finite=False, input_name="X")
    return X if hasattr(X, "shape") else checked


def _matches(ids: np.ndarray, task) -> np.ndarray:
    return np.asarray(pd.Index(ids, dtype=object) == task, dtype=bool)


def _rows(fit_params: dict, rows: np.ndarray, n: int) -> dict:
    """Fit parameters for a subset of rows: row-aligned arrays are indexed."""
    out = {}
    for key, value in fit_params.items():
        if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n:
            out[key] = _safe_indexing(value, rows)
        else:
            out[key] = value
    return out
