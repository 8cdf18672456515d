"""Sample and class weights: checked, resolved per task, and turned into the
per-row, per-task weight columns that :class:`~mtlestimators._core.net.MultiTaskLoss`
reads from a (n, 2K) target.

The training target of a weighted fit is ``[Y | W]``: the K encoded targets
followed by K weights, ``W[i, k] = sample_weight[i] * class_weight_k[y[i, k]]``
and 0 where the label is missing. An unweighted fit (no ``sample_weight``,
``class_weight=None``) keeps the plain (n, K) target, so its models are
bit-identical to those of the library before weights existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from .targets import TaskSpec


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` as a float64 (n_samples,) array, or None.

    Accepts any 1-D array-like (list, ndarray, pandas Series). Raises
    ValueError, saying how to fix it, for a wrong shape or length, a
    non-numeric, non-finite or negative weight, or weights that are all 0.
    """
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "sample_weight must hold numbers (one non-negative weight per row of X)."
        ) from None
    if weights.ndim != 1:
        raise ValueError(
            f"sample_weight must be 1-D (one weight per row of X), got shape "
            f"{weights.shape}; pass a flat array of {n_samples} weights."
        )
    if len(weights) != n_samples:
        raise ValueError(
            f"sample_weight has {len(weights)} entries but X has {n_samples} "
            "rows; give one weight per row."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError(
            "sample_weight contains NaN or infinity; every weight must be a "
            "finite number (give 0 to a row that should not count)."
        )
    if np.any(weights < 0):
        raise ValueError(
            "sample_weight contains negative values; weights must be >= 0 "
            "(0 leaves a row out of the loss)."
        )
    if not np.any(weights > 0):
        raise ValueError(
            "sample_weight is zero for every row, so there is nothing to train "
            "on; give at least one row a positive weight."
        )
    return weights


def _class_index(classes: np.ndarray, label, task: str) -> int:
    for i, known in enumerate(classes.tolist()):
        # "1" is not the class 1: a string key matches only a string label.
        if isinstance(known, str) != isinstance(label, str):
            continue
        try:
            if known == label:
                return i
        except (TypeError, ValueError):
            continue
    raise ValueError(
        f"class_weight for task {task!r} names the class {label!r}, which is "
        f"not a class of that task; its classes are {classes.tolist()}. Use "
        "the class labels as they appear in y."
    )


def _check_weight_value(value, task: str, label) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(
            f"class_weight for task {task!r} gives class {label!r} the weight "
            f"{value!r}; a weight must be a non-negative number."
        )
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(
            f"class_weight for task {task!r} gives class {label!r} the weight "
            f"{value}; a weight must be a finite number >= 0."
        )
    return value


def _entry_weights(entry, spec: TaskSpec, labels: np.ndarray) -> np.ndarray:
    """The weight of each of ``spec``'s classes for one class_weight entry;
    ``labels`` are the task's encoded labels (class indices), NaN missing."""
    n_classes = len(spec.classes)
    if entry is None:
        return np.ones(n_classes)
    if isinstance(entry, str):
        if entry != "balanced":
            raise ValueError(
                f"class_weight for task {spec.name!r} is {entry!r}; use None, "
                "'balanced' or a dict {class label: weight}."
            )
        present = labels[~np.isnan(labels)].astype(np.int64)
        # sklearn's "balanced": n / (n_classes * count), over the labelled rows.
        return compute_class_weight(
            "balanced", classes=np.arange(n_classes), y=present
        ).astype(np.float64)
    if isinstance(entry, Mapping):
        weights = np.ones(n_classes)
        for label, value in entry.items():
            i = _class_index(spec.classes, label, spec.name)
            weights[i] = _check_weight_value(value, spec.name, label)
        return weights
    raise ValueError(
        f"class_weight for task {spec.name!r} is {entry!r}; use None, "
        "'balanced' or a dict {class label: weight}."
    )


def resolve_class_weight(class_weight, specs: Sequence[TaskSpec], Y: np.ndarray):
    """Each task's weight per class, as a list of ``{class label: weight}``
    dicts (all weights 1 for ``class_weight=None``); None for a regression
    task. ``Y`` is the encoded (n, K) target, ``specs`` its tasks.

    ``class_weight`` is None, ``"balanced"`` (every task), a dict (the one
    task of a single-task y) or a list/tuple with one None, ``"balanced"``
    or dict per task.
    """
    n_tasks = len(specs)
    if class_weight is None or isinstance(class_weight, str):
        entries = [class_weight] * n_tasks
    elif isinstance(class_weight, Mapping):
        if n_tasks != 1:
            raise ValueError(
                f"class_weight is a dict, which gives the class weights of one "
                f"task, but y has {n_tasks} tasks; pass a list with one entry "
                "(None, 'balanced' or a dict) per task, in the order of y's "
                "columns."
            )
        entries = [class_weight]
    elif isinstance(class_weight, (list, tuple)):
        if len(class_weight) != n_tasks:
            raise ValueError(
                f"class_weight has {len(class_weight)} entries but y has "
                f"{n_tasks} task(s); give one entry (None, 'balanced' or a "
                "dict) per task, in the order of y's columns."
            )
        entries = list(class_weight)
    else:
        raise ValueError(
            f"class_weight={class_weight!r} is not supported; use None, "
            "'balanced', a dict {class label: weight} or a list of those, one "
            "per task."
        )
    resolved = []
    for k, (entry, spec) in enumerate(zip(entries, specs)):
        if spec.classes is None:
            if entry is not None:
                raise ValueError(
                    f"class_weight gives weights for task {spec.name!r}, a "
                    "regression task, which has no classes; give None for it."
                )
            resolved.append(None)
            continue
        weights = _entry_weights(entry, spec, Y[:, k])
        resolved.append(dict(zip(spec.classes.tolist(), weights.tolist())))
    return resolved


def row_weights(
    Y: np.ndarray,
    specs: Sequence[TaskSpec],
    class_weight_: Sequence[dict | None],
    sample_weight: np.ndarray | None,
) -> np.ndarray:
    """The (n, K) float32 weights of the training target: each row's sample
    weight times the class weight of its label in each task, 0 where the
    label is missing. Raises ValueError when a task is left without a
    positively weighted label, or a classification task with positively
    weighted rows of a single class."""
    n, n_tasks = Y.shape
    base = np.ones(n) if sample_weight is None else sample_weight
    W = np.zeros((n, n_tasks), dtype=np.float64)
    for k, (spec, table) in enumerate(zip(specs, class_weight_)):
        labelled = ~np.isnan(Y[:, k])
        if table is None:
            per_class = None
            W[labelled, k] = base[labelled]
        else:
            per_class = np.asarray(list(table.values()), dtype=np.float64)
            index = Y[labelled, k].astype(np.int64)
            W[labelled, k] = base[labelled] * per_class[index]
        counted = labelled & (W[:, k] > 0)
        if not counted.any():
            raise ValueError(
                f"Task {spec.name!r} has no labelled row with a positive weight "
                "(sample_weight times class_weight), so it cannot be trained; "
                "give some of its labelled rows a positive weight."
            )
        if per_class is not None:
            present = np.unique(Y[counted, k].astype(np.int64))
            if len(present) < 2:
                label = spec.classes[present[0]]
                raise ValueError(
                    f"Task {spec.name!r} has rows of only one class ({label!r}) "
                    "with a positive weight (sample_weight times class_weight); "
                    "a classification task needs rows of at least 2 classes "
                    "with positive weight. Give rows of another class a "
                    "positive weight."
                )
    return W.astype(np.float32)


def with_weights(Y: np.ndarray, W: np.ndarray | None) -> np.ndarray:
    """The training target: ``Y`` itself when unweighted, else ``[Y | W]``
    (n, 2K) float32, the form :class:`MultiTaskLoss` reads weights from."""
    if W is None:
        return Y
    if W.shape != Y.shape:
        raise AssertionError((Y.shape, W.shape))
    return np.hstack([Y.astype(np.float32), W.astype(np.float32)])


def targets_only(Y: np.ndarray, n_tasks: int) -> np.ndarray:
    """The K targets of a training target, with or without weight columns:
    what code that reads labels (loss weighters' ``prepare``, head
    initialization) must see."""
    Y = np.asarray(Y)
    if Y.ndim == 2 and Y.shape[1] == 2 * n_tasks:
        return Y[:, :n_tasks]
    return Y


def counted_targets(Y: np.ndarray, n_tasks: int) -> np.ndarray:
    """The K targets of a training target with NaN where a label's weight is
    0: the labels that count, for statistics of the labels (loss weighters'
    ``prepare``), which then see a weight-0 label as absent."""
    targets = targets_only(Y, n_tasks)
    weights = weight_columns(Y, n_tasks)
    if weights is None:
        return targets
    return np.where(weights > 0, targets, np.nan).astype(targets.dtype)


def weight_columns(Y: np.ndarray, n_tasks: int) -> np.ndarray | None:
    """The (n, K) weights of a training target, or None when it has none."""
    Y = np.asarray(Y)
    if Y.ndim == 2 and Y.shape[1] == 2 * n_tasks:
        return Y[:, n_tasks:]
    return None


def weighted_mean_std(values: np.ndarray, sample_weight: np.ndarray):
    """Column means and (population) standard deviations of ``values`` (n, d)
    weighted by ``sample_weight``: those of the rows repeated by integer
    weights. A NaN in a column (a missing numeric value) is left out of it."""
    values = np.asarray(values, dtype=np.float64)
    w = np.broadcast_to(
        np.asarray(sample_weight, dtype=np.float64)[:, None], values.shape
    )
    w = np.where(np.isnan(values), 0.0, w)
    filled = np.where(np.isnan(values), 0.0, values)
    total = w.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    means = (w * filled).sum(axis=0) / safe
    variances = (w * (filled - means) ** 2).sum(axis=0) / safe
    return means, np.sqrt(variances)
