"""Scenario inputs: X holds numeric features plus one column of task ids.

The multi-scenario models (:class:`~mtlestimators.AutoTaskClassifier`,
:class:`~mtlestimators.MultiTaskDNNClassifier`) predict one label per row;
which scenario (task) a row belongs to is a column of X. Task ids may be any
hashable labels; an id not seen in ``fit`` is an *unseen task* and gets code 0.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Hashable

import numpy as np
import pandas as pd
from sklearn.utils import check_array
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import column_or_1d

from .._core.base import check_fitted_X
from .._core.classifier import MultiTaskClassifierBase
from .._core.params import Boolean, Integer
from .._core.targets import mixes_label_types
from .._core.weights import weighted_mean_std

UNSEEN_TASK = 0  # code of a task id not seen in fit (the paper's "id 0")


def column_position(column, n_columns: int, feature_names, label: str, what: str):
    """Position among ``n_columns`` columns of ``column``, an int index
    (negative allowed) or a DataFrame column name; None for any other type
    (the caller says what it accepts). ``label`` opens the error messages
    (e.g. ``"task_column=9"``) and ``what`` names the column in their fix
    (e.g. ``"the column that holds the task ids"``)."""
    if isinstance(column, numbers.Integral) and not isinstance(column, bool):
        if not -n_columns <= column < n_columns:
            raise ValueError(
                f"{label} is out of range for X with {n_columns} column(s); "
                f"give the index (or DataFrame column name) of {what}."
            )
        return int(column) % n_columns
    if isinstance(column, str):
        if feature_names is None:
            raise ValueError(
                f"{label} is a column name, but X has no column names; pass a "
                f"DataFrame or give the integer index of {what}."
            )
        names = [str(n) for n in feature_names]
        if column not in names:
            raise ValueError(f"{label} is not a column of X; its columns are {names}.")
        return names.index(column)
    return None


def task_column_index(task_column, n_columns: int, feature_names) -> int:
    """Position of ``task_column`` (an int index, negative allowed, or a
    DataFrame column name) among ``n_columns`` columns."""
    position = column_position(
        task_column,
        n_columns,
        feature_names,
        f"task_column={task_column!r}",
        "the column that holds the task ids",
    )
    if position is None:
        raise TypeError(
            "task_column must be an int (column index) or a str (DataFrame "
            f"column name), got {task_column!r}."
        )
    return position


def _unhashable(ids) -> TypeError:
    example = next((i for i in ids if not isinstance(i, Hashable)), None)
    return TypeError(
        f"Task ids must be hashable labels (strings, numbers, tuples); the task "
        f"column holds {type(example).__name__} values such as {example!r}."
    )


def _object_array(values) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (tuples stay tuples)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def task_vocabulary(ids: np.ndarray) -> np.ndarray:
    """The distinct task ids, sorted when they are comparable."""
    try:
        unique = pd.unique(pd.Series(ids, dtype=object))
    except TypeError:
        raise _unhashable(ids) from None
    try:
        return _object_array(sorted(unique))
    except TypeError:  # mixed, incomparable ids: keep their order of appearance
        return _object_array(unique)


def task_codes(ids: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """int64 codes: 1..N for the ids in ``tasks``, 0 (unseen) for any other."""
    try:
        if len(ids) <= 64:  # a dict lookup beats building pandas indexes
            lookup = {task: code for code, task in enumerate(tasks, start=1)}
            return np.fromiter(
                (lookup.get(i, UNSEEN_TASK) for i in ids),
                dtype=np.int64,
                count=len(ids),
            )
        index = pd.Index(tasks, dtype=object).get_indexer(pd.Index(ids, dtype=object))
    except TypeError:
        raise _unhashable(ids) from None
    return (index + 1).astype(np.int64)


# "Nearly one id per row": more than this many task ids, and more than half
# of the rows the only row of their task.
_MANY_TASKS = 50


def _task_column_warning(ids: np.ndarray, column) -> str | None:
    """Why the task column looks like a feature, or None: it holds floats
    that are not integers (1.0, 2.0 are taken as ids), or nearly one id per
    row (more than ``_MANY_TASKS`` ids and more than half of the rows the
    only row of their task)."""
    n = len(ids)
    reasons = []
    kind = pd.api.types.infer_dtype(ids, skipna=True)
    if kind in ("floating", "mixed-integer-float"):
        values = pd.to_numeric(pd.Series(ids, dtype=object), errors="coerce")
        values = values.to_numpy(dtype=np.float64)
        fractional = values[np.isfinite(values) & (values != np.round(values))]
        if fractional.size:
            examples = ", ".join(f"{v:g}" for v in fractional[:3])
            reasons.append(
                f"holds float values that are not whole numbers (e.g. {examples})"
            )
    counts = pd.Series(ids, dtype=object).value_counts(sort=False)
    singletons = int((counts == 1).sum())
    if len(counts) > _MANY_TASKS and singletons > n / 2:
        reasons.append(
            f"holds nearly one id per row ({len(counts)} task ids for {n} rows; "
            f"{singletons} rows are the only row of their task)"
        )
    if not reasons:
        return None
    return (
        f"The task column ({column}) {' and '.join(reasons)}; it looks "
        "like a feature or a row id, not task ids, and each distinct value "
        "became a task "
        f"({len(counts)} tasks). Set task_column to the column of X that holds "
        "the task ids (this warning is given when that column holds non-whole "
        f"floats, or more than {_MANY_TASKS} ids with more than half of the "
        "rows alone in their task; integer or string ids that are really that "
        "many can be kept, and the warning filtered with warnings.filterwarnings)."
    )


def _with_missing_as_nan(features: np.ndarray):
    """float64 features with None/pandas.NA as NaN, or None if some value is
    not a number (check_array then raises scikit-learn's error)."""
    objects = np.array(features, dtype=object)
    missing = np.asarray(pd.isna(objects), dtype=bool)
    objects[missing] = np.nan
    try:
        return objects.astype(np.float64)
    except (TypeError, ValueError):
        return None


def _may_be_missing(ids: np.ndarray) -> bool:
    """False when every id is a str or an integer (none can be missing):
    a single row need not go through pandas.isna."""
    if len(ids) > 64:
        return True
    return not all(isinstance(i, (str, int, np.integer)) for i in ids)


def _is_number_or_missing(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    return True


def _is_dense_frame(X) -> bool:
    """A pandas DataFrame without sparse columns."""
    if not isinstance(X, pd.DataFrame):
        return False
    return not any(isinstance(t, pd.SparseDtype) for t in X.dtypes)


class ScenarioClassifierBase(MultiTaskClassifierBase):
    """Classifier over numeric features plus a task-id column of X.

    y is 1-D: one label per row (binary, or multiclass where the model allows
    it); the row's scenario is read from ``task_column``. Features are
    z-scored with the training mean and standard deviation when
    ``standardize`` is True (the task column is not). The net receives
    ``{"features": float32 (n, d - 1), "task": int64 (n,)}``, plus the
    inputs a model makes of its text columns (``_fit_text_inputs``).

    Attributes set by fit: ``tasks_`` (the task ids seen, sorted), ``n_tasks_``
    (their number), ``feature_mean_`` and ``feature_scale_``.
    """

    _X_check_params = {"dtype": None, "ensure_all_finite": False}

    # One label per row, one loss: there is nothing for a loss weighter to
    # combine, so these models have no loss_weighter parameter.
    loss_weighter = "uniform"
    _routed_prefixes = tuple(
        p for p in MultiTaskClassifierBase._routed_prefixes if p != "loss_weighter"
    )
    # Where the column is (in range, a name of X) is checked against X.
    _parameter_constraints = {
        "task_column": [Integer(), str],
        "standardize": [Boolean()],
    }

    def _validate_xy(self, X, y):
        try:
            X_checked, y = super()._validate_xy(X, y)
        except TypeError:
            if isinstance(X, pd.DataFrame):
                names = [str(c) for c in X.columns if X[c].isna().any()]
                if names:
                    raise ValueError(
                        f"Input X contains NaN (pandas.NA) in column(s) {names}; "
                        "the features must be finite numbers: impute them "
                        "first (e.g. sklearn.impute.SimpleImputer)."
                    ) from None
            raise
        X = X_checked
        if y.ndim == 2:
            if y.shape[1] != 1:
                raise ValueError(
                    f"{type(self).__name__} predicts one label per row (the "
                    f"row's task is the column task_column of X), but y has "
                    f"shape {y.shape}; pass a 1-D y."
                )
            y = column_or_1d(y, warn=True)
        if mixes_label_types(np.asarray(y, dtype=object)):
            raise ValueError(
                "y mixes label types (strings and numbers); use one type for "
                "all labels, e.g. y.astype(str)."
            )
        n_missing = int(pd.isna(y).sum())
        if n_missing:
            raise ValueError(
                f"y has {n_missing} missing label(s) (NaN/None); "
                f"{type(self).__name__} needs the label of every row. Drop "
                "the unlabelled rows from X and y."
            )
        if type_of_target(y, input_name="y") == "continuous":
            raise ValueError(
                "Unknown label type: continuous. y holds class labels (e.g. "
                "relevant / not relevant) for a classifier: binarize the values "
                "(e.g. y > threshold) or pass the class of each row."
            )
        return X, y

    # ----------------------------------------------------------- text columns
    # A model that reads text (AutoTaskClassifier's text_columns) overrides
    # these three; the columns they name are not numeric features.
    _text_hint = ""  # how to declare a text column, for the string error

    def _text_positions(self, n_columns: int, names, task_index: int) -> list[int]:
        """Positions in X of the text columns (none here)."""
        return []

    def _fit_text_inputs(self, X, resume: bool):
        """``(inputs, input_spec, fitted_attributes)`` of the text columns of
        the training X (an object array); ``resume`` for a warm start that
        keeps what the first fit learned."""
        return {}, {}, {}

    def _text_inputs(self, X) -> dict:
        """The net's inputs from the text columns of X at predict time."""
        return {}

    # ----------------------------------------------------------------- inputs
    def _split_columns(self, X):
        """(features as float64 (n, d - 1), task ids as object (n,)); the
        text columns are in neither."""
        names = getattr(self, "feature_names_in_", None)
        j = task_column_index(self.task_column, X.shape[1], names)
        text = self._text_positions(X.shape[1], names, j)
        ids = np.asarray(X[:, j], dtype=object)
        if _may_be_missing(ids) and pd.isna(ids).any():
            column = names[j] if names is not None else j
            raise ValueError(
                f"The task column ({column!r}) of X has missing task ids "
                "(NaN/None); every row needs the id of its task. Use a label "
                "of its own (e.g. 'unknown') for rows whose task is not known."
            )
        keep = np.arange(X.shape[1]) != j
        if text:
            keep[text] = False
        features = X[:, keep]
        try:
            converted = np.asarray(features, dtype=np.float64)
        except (TypeError, ValueError):
            converted = _with_missing_as_nan(features)
        if converted is None or not np.isfinite(converted).all():
            kept = np.flatnonzero(keep)
            converted = self._checked_features(features, converted, kept, names)
        return converted, ids

    def _checked_features(self, features, converted, kept, names) -> np.ndarray:
        """Raise for feature columns that are not finite numbers, naming the
        first bad column of X (its index, or its DataFrame name); ``kept``
        maps a feature's position to its column of X."""

        def column(f):  # position among the features -> column of X
            k = int(kept[f])
            return str(names[k]) if names is not None else k

        if converted is None:
            for f in range(features.shape[1]):
                # A string where a number belongs: task ids (or a categorical
                # column) in a feature column. Other objects get scikit-learn's
                # TypeError below.
                bad = next(
                    (
                        v
                        for v in features[:, f]
                        if isinstance(v, str) and not _is_number_or_missing(v)
                    ),
                    None,
                )
                if bad is not None:
                    raise ValueError(
                        f"Column {column(f)!r} of X holds a value that is not a "
                        f"number ({bad!r}); every column but task_column="
                        f"{self.task_column!r} is a numeric feature. Encode it as "
                        "numbers, or set task_column to the column of task ids"
                        f"{self._text_hint}."
                    )
            # Not found column by column: scikit-learn's own error.
            converted = check_array(
                features, dtype=np.float64, ensure_min_features=0, input_name="X"
            )
        bad = np.flatnonzero(~np.isfinite(converted).all(axis=0))
        if bad.size:
            raise ValueError(
                f"Input X contains NaN or infinity in column(s) "
                f"{[column(f) for f in bad]}; the features must be finite "
                "numbers: impute the missing values first (e.g. "
                "sklearn.impute.SimpleImputer) and clip or drop infinite ones."
            )
        return converted

    def _scale(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.feature_mean_) / self.feature_scale_).astype(
            np.float32
        )

    def _fit_inputs(self, X, X_input=None, sample_weight=None):
        if _is_dense_frame(X_input):
            # As at predict: the frame's own values, so integer task ids stay
            # integers (validate_data would give a mixed frame one dtype).
            X = X_input.to_numpy(dtype=object)
        features, ids = self._split_columns(X)
        resume = self.warm_start and hasattr(self, "tasks_")
        if resume:
            previous = self._previous_feature_names
            current = getattr(self, "feature_names_in_", None)
            if (previous is None) != (current is None) or (
                previous is not None and not np.array_equal(previous, current)
            ):
                raise ValueError(
                    "warm_start=True continues training the fitted net, but X's "
                    "columns differ from the first fit's (names or order); pass "
                    "the columns as in the first fit, or set warm_start=False."
                )
        if resume and features.shape[1] == len(self.feature_mean_):
            # Continue with the fitted task codes and scaling: refitting them
            # would attach the trained task embeddings to other scenarios.
            tasks, mean, scale = self.tasks_, self.feature_mean_, self.feature_scale_
            new = sorted(map(str, set(ids) - set(tasks)))
            if new:
                warnings.warn(
                    f"warm_start: task ids {new[:5]} were not seen in the first "
                    "fit; they train the unseen-task (general) path.",
                    UserWarning,
                    stacklevel=5,
                )
        else:
            names = getattr(self, "feature_names_in_", None)
            j = task_column_index(self.task_column, X.shape[1], names)
            column = f"task_column={self.task_column!r}"
            if names is not None and str(names[j]) != str(self.task_column):
                column += f", column {str(names[j])!r}"
            message = _task_column_warning(ids, column)
            if message is not None:
                warnings.warn(message, UserWarning, stacklevel=5)
            # A row of weight 0 is as if it were absent: its task id alone
            # does not make a task (it takes the unseen-task path).
            counted = ids if sample_weight is None else ids[sample_weight > 0]
            tasks = task_vocabulary(counted)
            if self.standardize and sample_weight is not None:
                # As if each row were repeated its weight times.
                mean, scale = weighted_mean_std(features, sample_weight)
                scale[~(scale > 1e-12)] = 1.0
            elif self.standardize:
                mean = features.mean(axis=0)
                scale = features.std(axis=0)
                scale[~(scale > 1e-12)] = 1.0
            else:
                mean = np.zeros(features.shape[1])
                scale = np.ones(features.shape[1])
        fitted = {
            "tasks_": tasks,
            "feature_mean_": mean,
            "feature_scale_": scale,
        }
        inputs = {
            "features": ((features - mean) / scale).astype(np.float32),
            "task": task_codes(ids, tasks),
        }
        spec = {"n_features": features.shape[1], "n_tasks": len(tasks)}
        text_inputs, text_spec, text_fitted = self._fit_text_inputs(X, resume)
        inputs.update(text_inputs)
        spec.update(text_spec)
        fitted.update(text_fitted)
        return inputs, spec, fitted

    def _predict_inputs(self, X):
        inputs = self._unscaled_predict_inputs(X)
        inputs["features"] = self._scale(inputs["features"])
        return inputs

    def _unscaled_predict_inputs(self, X) -> dict:
        """X checked against the fit: the net's inputs with the features not
        yet scaled (the exported graphs scale them)."""
        X = self._checked_predict_X(X)
        features, ids = self._split_columns(X)
        return {
            "features": features,
            "task": task_codes(ids, self.tasks_),
            **self._text_inputs(X),
        }

    def _checked_predict_X(self, X):
        """X checked against the fit, as an array (object for a DataFrame)."""
        values = self._fitted_layout(X)
        if values is not None:
            # The layout of the fit: nothing else to check before the values
            # (checked in _split_columns). On a single row, validate_data and
            # pandas' dtype queries cost more than the model's forward pass,
            # and the code they run pushes the model's own code and weights
            # out of the CPU caches.
            return values
        if _is_dense_frame(X) and len(X):
            # validate_data's column-by-column dtype checks cost more than the
            # model on a single row; the feature names and count are checked
            # here, the values in _split_columns.
            check_fitted_X(self, X, skip_check_array=True)
            X = X.to_numpy(dtype=object)
        else:
            X = check_fitted_X(self, X, **self._X_check_params)
        return X

    def _fitted_layout(self, X):
        """X as a 2-D array when it is laid out as in the fit and needs no
        other check than its values': a non-empty DataFrame with exactly the
        fitted column names (in order), or a non-empty
        2-D numpy array of numbers or objects with the fitted number of
        columns when the fit had no column names. None otherwise (then
        validate_data checks X and gives its errors and warnings)."""
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, pd.DataFrame):
            if names is None or not len(X) or len(X.columns) != len(names):
                return None
            if X.columns.tolist() != names.tolist():
                return None
            # Sparse columns come out dense (fit refuses an all-sparse frame;
            # asking pandas for the dtypes here would cost more than the
            # whole fast path).
            return X.to_numpy(dtype=object)
        if (
            names is None
            and type(X) is np.ndarray
            and X.ndim == 2
            and len(X)
            and X.shape[1] == self.n_features_in_
            and X.dtype.kind in "biufO"
        ):
            return X
        return None

    def _fit(self, X, y, **fit_params):
        # validate_data replaces feature_names_in_ before _fit_inputs runs;
        # warm_start compares the new columns with the fitted ones.
        self._previous_feature_names = getattr(self, "feature_names_in_", None)
        try:
            super()._fit(X, y, **fit_params)
        finally:
            del self._previous_feature_names
        self.n_tasks_ = len(self.tasks_)
        return self

    def _export_adapter(self):
        """The export adapter of :mod:`mtlestimators.export` for scenario models."""
        from ._export import ScenarioExportAdapter

        return ScenarioExportAdapter(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        tags.classifier_tags.multi_label = False
        tags.input_tags.string = False
        return tags
