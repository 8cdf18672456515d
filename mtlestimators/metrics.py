"""Per-task metrics for multi-task predictions, in one helper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    log_loss,
    mean_squared_error,
    roc_auc_score,
)

from ._core.targets import (
    TaskSpec,
    missing_mask,
    normalize_labels,
    resolve_tasks,
    task_names_of,
)

__all__ = ["per_task_scores"]


def _positive_class(spec: TaskSpec):
    if len(spec.classes) == 2:
        return spec.classes[1]
    (only,) = spec.classes
    if only in (0, 1):  # 0/1 labels: 1 is the positive class
        return 1
    raise ValueError(
        f"Task {spec.name!r} shows the single class {only!r} in y_true, so its "
        "positive class is unknown; pass the model's classes_ as classes=."
    )


def per_task_scores(
    y_true,
    y_score,
    tasks: dict[str, str] | Sequence[str] | None = None,
    classes=None,
) -> dict[str, dict[str, float]]:
    """Score every task of a multi-task prediction on its labelled rows.

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples,) or (n_samples, K)
        Labels; NaN/None marks a missing label, which is skipped.
    y_score : array-like of shape (n_samples, K) or list of K arrays
        Per task: the positive-class probability (binary), the (n, C) class
        probabilities (multiclass, a list entry), or the prediction
        (regression). A classifier's ``predict_proba`` output fits directly.
    tasks : dict or sequence of kinds, optional
        Task kinds ("binary", "multiclass", "regression"); inferred if None.
    classes : array or list of arrays, optional
        The classes the scores refer to, one array per task (a fitted
        classifier's ``classes_`` fits directly). Needed when a split lacks
        some of a task's classes; otherwise inferred from ``y_true``.

    Returns
    -------
    dict
        ``{task name: {metric: value}}`` with ``roc_auc``, ``pr_auc``,
        ``log_loss`` and ``accuracy`` for binary tasks, ``log_loss`` and
        ``accuracy`` for multiclass tasks, ``mse`` for regression tasks, and
        ``n`` (labelled rows) for all.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[0, 1], [1, np.nan], [1, 0], [0, 0]])
    >>> p = np.array([[0.2, 0.9], [0.7, 0.5], [0.6, 0.1], [0.1, 0.3]])
    >>> scores = per_task_scores(y, p)
    >>> scores["task_0"]["roc_auc"], scores["task_1"]["n"]
    (1.0, 3)
    """
    names_source = y_true
    y = np.asarray(y_true, dtype=object)
    n = len(y)
    y = y.reshape(n, -1)
    names = task_names_of(names_source, y.shape[1])
    specs = resolve_tasks(y, names, tasks, min_classes=1)
    if classes is not None:
        per_task = (
            [classes] if len(specs) == 1 and np.ndim(classes[0]) == 0 else classes
        )
        if len(per_task) != len(specs):
            raise ValueError(
                f"classes gives {len(per_task)} arrays for {len(specs)} tasks; "
                "pass one array of classes per task."
            )
        specs = [
            spec if spec.kind == "regression" else replace(spec, classes=np.asarray(c))
            for spec, c in zip(specs, per_task)
        ]
    if isinstance(y_score, list):
        scores = y_score
    else:
        s = np.asarray(y_score, dtype=float)
        if s.ndim == 1:
            s = s.reshape(n, 1)
        if len(specs) == 1 and specs[0].kind == "binary" and s.shape[1] == 2:
            s = s[:, 1:]  # predict_proba of a single binary task
        if len(specs) == 1 and specs[0].kind == "multiclass":
            scores = [s]
        else:
            if s.shape[1] != len(specs):
                raise ValueError(
                    f"y_score has {s.shape[1]} columns but y_true has "
                    f"{len(specs)} tasks."
                )
            scores = [s[:, k] for k in range(len(specs))]
    missing = missing_mask(y)
    out: dict[str, dict[str, float]] = {}
    for k, spec in enumerate(specs):
        rows = ~missing[:, k]
        score = np.asarray(scores[k], dtype=float)[rows]
        truth = y[rows, k]
        result: dict[str, float] = {"n": int(rows.sum())}
        if spec.kind == "regression":
            result["mse"] = float(mean_squared_error(truth.astype(float), score))
        elif spec.kind == "binary":
            positive = (normalize_labels(truth) == _positive_class(spec)).astype(int)
            clipped = np.clip(score, 1e-15, 1 - 1e-15)
            if len(np.unique(positive)) == 2:
                result["roc_auc"] = float(roc_auc_score(positive, score))
                result["pr_auc"] = float(average_precision_score(positive, score))
            else:
                result["roc_auc"] = result["pr_auc"] = float("nan")
            result["log_loss"] = float(log_loss(positive, clipped, labels=[0, 1]))
            result["accuracy"] = float(accuracy_score(positive, score > 0.5))
        else:
            truth = normalize_labels(truth)
            if score.shape[1] != len(spec.classes):
                raise ValueError(
                    f"Task {spec.name!r}: y_score has {score.shape[1]} class "
                    f"columns but y_true shows {len(spec.classes)} classes; pass "
                    "the model's classes_ as classes=."
                )
            index = np.searchsorted(spec.classes, truth)
            labels = np.arange(len(spec.classes))
            result["log_loss"] = float(log_loss(index, score, labels=labels))
            result["accuracy"] = float(accuracy_score(index, score.argmax(axis=1)))
        out[spec.name] = result
    return out
