"""Per-task metrics for multi-task predictions, and scorers for model
selection that average them over tasks."""

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
    align_to_task_names,
    has_column_names,
    missing_mask,
    normalize_labels,
    resolve_tasks,
    task_names_of,
    y_in_task_order,
)

__all__ = [
    "make_multitask_scorer",
    "multitask_roc_auc",
    "neg_multitask_log_loss",
    "per_task_scores",
]


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
    task_names: Sequence[str] | None = None,
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
    task_names : sequence of str, optional
        The names of ``y_score``'s tasks, in its column order (a fitted
        estimator's ``task_names_`` fits directly). A DataFrame ``y_true`` is
        then matched to them by column name, in any order; a column that is
        not a task, or a task without a column, raises ValueError. An array
        ``y_true`` is taken column by column and its results are labelled
        with these names. When None, ``y_true``'s columns are paired with
        ``y_score``'s by position, whatever their names: pass ``task_names``
        whenever ``y_true`` may hold the tasks in another order than the
        model was fit on.

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
    if task_names is not None:
        task_names = [str(name) for name in task_names]
        if has_column_names(y_true):
            y_true = align_to_task_names(y_true, task_names, what="y_true")
    names_source = y_true
    y = np.asarray(y_true, dtype=object)
    n = len(y)
    y = y.reshape(n, -1)
    if task_names is None:
        names = task_names_of(names_source, y.shape[1])
    elif len(task_names) != y.shape[1]:
        raise ValueError(
            f"task_names gives {len(task_names)} names but y_true has "
            f"{y.shape[1]} columns; give one name per task."
        )
    else:
        names = task_names
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


# Metric of per_task_scores -> whether greater is better.
_SCORER_METRICS = {
    "roc_auc": True,
    "pr_auc": True,
    "accuracy": True,
    "log_loss": False,
    "mse": False,
}


def _gallery_task_scores(estimator, X) -> list[np.ndarray]:
    """Per-task scores of a GalleryEmbedder: positive-class probability
    (binary), class probabilities (multiclass), the value (regression)."""
    import torch

    outputs = estimator.net_.task_outputs(
        estimator._dataset(X),
        batch_size=estimator.batch_size,
        num_workers=estimator._check_num_workers(),
    )
    scores = []
    for spec, out in zip(estimator.task_specs_, outputs):
        out = out.double()
        if spec.kind == "binary":
            scores.append(torch.sigmoid(out.reshape(-1)).numpy())
        elif spec.kind == "multiclass":
            scores.append(torch.softmax(out, dim=1).numpy())
        else:
            scores.append(out.reshape(-1).numpy())
    return scores


def _estimator_task_scores(estimator, X):
    """``(y_score, classes, kinds, task_names)`` of a fitted estimator for
    :func:`per_task_scores`."""
    from .gallery import GalleryEmbedder

    specs = getattr(estimator, "task_specs_", None)
    kinds = None if specs is None else [spec.kind for spec in specs]
    names = getattr(estimator, "task_names_", None)
    names = None if names is None else [str(name) for name in names]
    if isinstance(estimator, GalleryEmbedder):
        classes = [spec.classes for spec in estimator.task_specs_]
        return _gallery_task_scores(estimator, X), classes, kinds, names
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(
            f"{type(estimator).__name__} has no predict_proba; a multi-task "
            "scorer needs an estimator that predicts probabilities."
        )
    classes = getattr(estimator, "classes_", None)
    return estimator.predict_proba(X), classes, kinds, names


class _MultiTaskScorer:
    """A scikit-learn scorer: the mean over tasks of one metric of
    :func:`per_task_scores`, sign-flipped where lower is better."""

    def __init__(self, metric: str):
        self.metric = metric
        self._sign = 1.0 if _SCORER_METRICS[metric] else -1.0

    def __call__(self, estimator, X, y_true) -> float:
        y_score, classes, kinds, names = _estimator_task_scores(estimator, X)
        if names is not None:
            y_true = y_in_task_order(estimator, y_true, names)
        y = np.asarray(y_true, dtype=object)
        y = y.reshape(len(y), -1)
        if kinds is None or len(kinds) != y.shape[1] or names is None:
            kinds = names = None  # per_task_scores infers or reports the mismatch
        elif len(kinds) > 1:
            # A task with no label in these rows (a small fold) has no score.
            labelled = np.flatnonzero(~missing_mask(y).all(axis=0))
            if labelled.size == 0:
                return float("nan")
            if labelled.size < y.shape[1]:
                y = y[:, labelled]
                if isinstance(y_score, list):
                    y_score = [y_score[k] for k in labelled]
                else:
                    y_score = np.asarray(y_score)[:, labelled]
                if classes is not None:
                    classes = [classes[k] for k in labelled]
                kinds = [kinds[k] for k in labelled]
                names = [names[k] for k in labelled]
        results = per_task_scores(
            y, y_score, tasks=kinds, classes=classes, task_names=names
        )
        values = []
        for name, result in results.items():
            if self.metric not in result:
                have = sorted(k for k in result if k != "n")
                raise ValueError(
                    f"Task {name!r} has no {self.metric!r} score (its scores are "
                    f"{have}); choose a metric every task has."
                )
            values.append(result[self.metric])
        values = np.asarray(values, dtype=float)
        if np.isnan(values).all():
            return float("nan")
        return float(self._sign * np.nanmean(values))

    def __repr__(self) -> str:
        return f"make_multitask_scorer({self.metric!r})"


def make_multitask_scorer(metric: str = "roc_auc"):
    """A scorer for ``scoring=`` that averages one metric over the tasks.

    scikit-learn's own scorers read an (n, K) ``predict_proba`` as one
    K-class distribution and cannot skip missing labels: ``"neg_log_loss"``
    then scores something else than the tasks, and ``"roc_auc"`` fails on
    NaN. This scorer computes each task's metric with
    :func:`per_task_scores` on that task's labelled rows and returns the mean
    over tasks. A task whose metric is undefined on the rows scored (ROC AUC
    of a task that shows one class there) is left out of the mean; if every
    task's is, the score is NaN.

    Parameters
    ----------
    metric : {"roc_auc", "pr_auc", "accuracy", "log_loss", "mse"}, default="roc_auc"
        The per-task metric (a key of :func:`per_task_scores`' results).
        ``"log_loss"`` and ``"mse"`` are negated, so that greater is better
        as ``GridSearchCV`` expects.

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float`` for ``scoring=`` of
        ``GridSearchCV``, ``cross_val_score``, ``cross_validate`` (also in a
        dict of several scorers). It scores a fitted multi-task classifier
        (from ``predict_proba``; a 1-D y is one task) or a
        ``GalleryEmbedder``. When the model was fit on a DataFrame, a
        DataFrame y is matched to the tasks by column name.

    Examples
    --------
    >>> from mtlestimators.metrics import make_multitask_scorer
    >>> make_multitask_scorer("log_loss")
    make_multitask_scorer('log_loss')
    """
    if metric not in _SCORER_METRICS:
        raise ValueError(
            f"metric must be one of {sorted(_SCORER_METRICS)}, got {metric!r}."
        )
    return _MultiTaskScorer(metric)


#: Mean over tasks of each task's ROC AUC on its labelled rows.
multitask_roc_auc = make_multitask_scorer("roc_auc")
#: Minus the mean over tasks of each task's log loss on its labelled rows.
neg_multitask_log_loss = make_multitask_scorer("log_loss")
