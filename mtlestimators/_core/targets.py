"""Multi-task targets: task kinds, label encoding and missing labels.

A multi-task target is a table (n_samples, n_tasks). A missing label (NaN or
None) means "no label for this task on this row"; the row still trains the
other tasks. Each task has a kind: ``"binary"``, ``"multiclass"`` or
``"regression"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import type_of_target

TASK_KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task target.

    Attributes
    ----------
    name : str
        Column name (DataFrame column, or ``"task_<k>"``).
    kind : {"binary", "multiclass", "regression"}
    classes : ndarray or None
        Sorted class labels of a classification task; None for regression.
    """

    name: str
    kind: str
    classes: np.ndarray | None = None

    @property
    def output_dim(self) -> int:
        """Width of the task's output layer (1 logit for binary/regression)."""
        return len(self.classes) if self.kind == "multiclass" else 1


def missing_mask(y: np.ndarray) -> np.ndarray:
    """Boolean mask of missing labels (NaN or None), same shape as ``y``."""
    return np.asarray(pd.isna(y), dtype=bool)


def task_names_of(y, n_tasks: int) -> list[str]:
    """Column names of a DataFrame target, else ``task_0 .. task_{K-1}``."""
    columns = getattr(y, "columns", None)
    if columns is not None:
        return [str(c) for c in columns]
    return [f"task_{k}" for k in range(n_tasks)]


def normalize_labels(values: np.ndarray) -> np.ndarray:
    """Give labels held in an object array (a column that also held None or
    pandas.NA, or a pandas nullable column) their natural dtype: bool, int64
    or float64. Strings and other arrays are returned unchanged."""
    if values.dtype != object or values.size == 0:
        return values
    if any(isinstance(v, str) for v in values):
        return values
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return values.astype(bool)
    try:
        as_float = values.astype(np.float64)
    except (TypeError, ValueError):
        return values
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    return as_float


def mixes_label_types(values: np.ndarray) -> bool:
    """True when an object array of labels holds strings and non-strings."""
    if values.dtype != object:
        return False
    n_strings = sum(isinstance(v, str) for v in values)
    return 0 < n_strings < len(values)


def _kind_of_column(values: np.ndarray) -> str:
    if mixes_label_types(values):
        raise ValueError(
            "mixes label types (strings and numbers); use one type per column."
        )
    target_type = type_of_target(values, input_name="y")
    if target_type == "binary":
        return "binary"
    if target_type == "multiclass":
        return "multiclass"
    if target_type == "continuous":
        return "regression"
    raise ValueError(f"Unsupported label type {target_type!r}.")


def drop_unlabelled_rows(y: np.ndarray) -> np.ndarray:
    """Indices of rows with at least one label; warns if any row is dropped.

    Raises ValueError when no row has a label.
    """
    mask = missing_mask(y)
    if mask.ndim == 1:
        mask = mask[:, None]
    keep = ~mask.all(axis=1)
    n_dropped = int((~keep).sum())
    if n_dropped == len(keep):
        raise ValueError(
            "y has no label at all (every entry is NaN/None). Pass at least "
            "one labelled row per task."
        )
    if n_dropped:
        warnings.warn(
            f"Dropped {n_dropped} of {len(keep)} rows whose labels are all "
            "missing (NaN); they cannot train any task.",
            UserWarning,
            stacklevel=4,
        )
    return np.flatnonzero(keep)


def resolve_tasks(
    y: np.ndarray,
    names: Sequence[str],
    tasks: Mapping[str, str] | Sequence[str] | None = None,
    *,
    min_classes: int = 2,
) -> list[TaskSpec]:
    """Infer (or check the given) kind of every column of a 2-D target.

    Parameters
    ----------
    y : ndarray of shape (n_samples, n_tasks)
        Labels, NaN/None where missing.
    names : sequence of str
        One name per column.
    tasks : dict {name: kind}, sequence of kinds, or None
        Kinds to use instead of inferring them. A dict may name a subset of
        the columns; the others are inferred.
    """
    if isinstance(tasks, Mapping):
        unknown = sorted(set(map(str, tasks)) - set(names))
        if unknown:
            raise ValueError(
                f"tasks names columns {unknown} that are not in y; y's columns "
                f"are {list(names)}."
            )
        given = {str(k): v for k, v in tasks.items()}
    elif tasks is None:
        given = {}
    else:
        tasks = list(tasks)
        if len(tasks) != len(names):
            raise ValueError(
                f"tasks gives {len(tasks)} kinds but y has {len(names)} columns; "
                "give one kind per column or a dict {column: kind}."
            )
        given = dict(zip(names, tasks))

    specs = []
    missing = missing_mask(y)
    for k, name in enumerate(names):
        labelled = normalize_labels(y[~missing[:, k], k])
        if labelled.size == 0:
            raise ValueError(
                f"Task {name!r} (column {k} of y) has no label at all; give it "
                "at least one labelled row or drop the column."
            )
        kind = given.get(name)
        if kind is None:
            try:
                kind = _kind_of_column(labelled)
            except ValueError as exc:
                raise ValueError(f"Task {name!r} (column {k} of y): {exc}") from None
        elif kind not in TASK_KINDS:
            raise ValueError(
                f"Task {name!r} has kind {kind!r}; use one of {list(TASK_KINDS)}."
            )
        if kind == "regression":
            try:
                labelled.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Task {name!r} is a regression task but has non-numeric "
                    "labels; declare it 'binary' or 'multiclass' in tasks."
                ) from None
            specs.append(TaskSpec(name, "regression"))
            continue
        try:
            classes = np.unique(labelled)
        except TypeError:
            raise ValueError(
                f"Task {name!r} (column {k} of y) mixes label types (e.g. strings "
                "and numbers); use one type per column."
            ) from None
        if len(classes) < min_classes:
            raise ValueError(
                f"Task {name!r} (column {k} of y) has only one class "
                f"({classes[0]}); a classification task needs at least 2 classes. "
                "Add labelled rows of another class, or drop the task."
            )
        if kind == "binary" and len(classes) > 2:
            raise ValueError(
                f"Task {name!r} is declared binary but has {len(classes)} classes."
            )
        specs.append(TaskSpec(name, kind, classes))
    return specs


def encode_targets(y: np.ndarray, specs: Sequence[TaskSpec]) -> np.ndarray:
    """Encode labels as float32 (n, K): class index for classification tasks,
    the value for regression, NaN where missing."""
    out = np.full(y.shape, np.nan, dtype=np.float32)
    missing = missing_mask(y)
    for k, spec in enumerate(specs):
        present = ~missing[:, k]
        values = normalize_labels(y[present, k])
        if spec.kind == "regression":
            out[present, k] = values.astype(np.float64)
        else:
            index = np.searchsorted(spec.classes, values)
            index = np.clip(index, 0, len(spec.classes) - 1)
            if not np.array_equal(spec.classes[index], values):
                raise ValueError(
                    f"Task {spec.name!r} has labels not seen when it was set "
                    f"up; known classes are {list(spec.classes)}."
                )
            out[present, k] = index
    return out


def has_column_names(y) -> bool:
    """True when ``y`` is a table with column names (a DataFrame), so its
    columns can be matched to tasks by name."""
    return getattr(y, "columns", None) is not None and getattr(y, "ndim", 2) == 2


def align_to_task_names(y, task_names: Sequence[str], *, what: str = "y"):
    """Reorder the columns of DataFrame ``y`` to ``task_names``.

    The columns are matched by name, so a target whose columns come in
    another order than at fit is scored task by task, not position by
    position. Raises ValueError naming the columns that are not tasks and
    the tasks that have no column.
    """
    columns = [str(c) for c in y.columns]
    names = [str(n) for n in task_names]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(
            f"{what} has the column(s) {repeated} more than once; give one "
            "column per task."
        )
    unknown = [c for c in columns if c not in names]
    absent = [n for n in names if n not in columns]
    if unknown or absent:
        problems = []
        if unknown:
            problems.append(f"unknown column(s) {unknown}")
        if absent:
            problems.append(f"missing task(s) {absent}")
        raise ValueError(
            f"{what}'s columns do not match the tasks the model was fit on: "
            f"{' and '.join(problems)}. The model's tasks are {names}; columns "
            "are matched by name, in any order."
        )
    position = {c: i for i, c in enumerate(columns)}
    order = [position[n] for n in names]
    if hasattr(y, "iloc"):
        return y.iloc[:, order]
    return np.asarray(y, dtype=object)[:, order]


def y_in_task_order(estimator, y, task_names=None):
    """``y`` with its columns in the fitted ``estimator``'s task order.

    Columns are matched by name when the estimator was fit on a DataFrame y
    (``_task_names_from_frame_``) and ``y`` has column names too; otherwise
    ``y`` is returned unchanged (columns pair by position). ``task_names``
    defaults to the estimator's ``task_names_``.
    """
    names = (
        getattr(estimator, "task_names_", None) if task_names is None else task_names
    )
    if (
        getattr(estimator, "_task_names_from_frame_", False)
        and names is not None
        and has_column_names(y)
    ):
        return align_to_task_names(y, names)
    return y
