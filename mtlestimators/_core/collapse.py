"""Detecting a task whose fitted predictions are constant (a collapsed task).

A multi-task model can starve one task (every connection to its tower closed
by a sparsity penalty, a dead ReLU layer, a weighter that drove its weight to
0) while the others train well: the overall loss looks fine and the task
predicts one constant. :func:`warn_constant_tasks` turns that into a
``UserWarning`` naming the task, called by the estimators after ``fit``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["warn_constant_tasks"]

# Standard deviation (over the training rows) of a task's predicted
# probability below which it counts as constant. A healthy fit varies by
# 1e-2 or more; float32 rounding of a constant logit stays below 1e-7.
CONSTANT_STD = 1e-6


def warn_constant_tasks(
    estimator_name: str,
    task_names: Sequence,
    probabilities,
    tol: float = CONSTANT_STD,
) -> list:
    """Warn about each task whose predicted probabilities are constant.

    Parameters
    ----------
    estimator_name : str
        Named in the message (e.g. ``"MSSMClassifier"``).
    task_names : sequence
        One name per task (column of ``probabilities``).
    probabilities : array-like of shape (n_samples, n_tasks) or list of arrays
        Each task's predicted probability (positive class, or any one
        per-row summary of a multiclass task's probabilities) on the training
        rows; a list holds one (n_samples,) or (n_samples, n_classes) array
        per task.
    tol : float, default=1e-6
        A task is constant when the standard deviation of its probabilities
        is at most ``tol`` (every class column, for a 2-D task array).

    Returns
    -------
    list
        The names of the constant tasks (empty when none), in task order.
    """
    if isinstance(probabilities, (list, tuple)):
        columns = [np.asarray(p, dtype=np.float64) for p in probabilities]
    else:
        array = np.asarray(probabilities, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]
        columns = [array[:, k] for k in range(array.shape[1])]
    names = list(task_names)
    if len(names) != len(columns):
        raise ValueError(
            f"warn_constant_tasks got {len(names)} task names for "
            f"{len(columns)} probability columns; give one name per task."
        )
    constant = []
    for name, column in zip(names, columns):
        if len(column) < 2:
            continue  # a single row says nothing about variation
        spread = np.nanstd(column, axis=0)
        if np.all(spread <= tol):
            constant.append(name)
    if constant:
        listed = ", ".join(repr(n) for n in constant)
        warnings.warn(
            f"{estimator_name}: the predictions of task(s) {listed} are constant "
            f"over the training rows (std of the predicted probability <= {tol:g}): "
            "the task collapsed and ranks nothing. Lower the learning rate or "
            "the regularization (for MSSM and SNR the sparsity: l0_penalty, "
            "target_sparsity), or check that the task's labels are not all one "
            "class.",
            UserWarning,
            stacklevel=3,
        )
    return constant


def check_collapsed_tasks(estimator, net, inputs, max_rows: int = 4096) -> list:
    """After a fit: :func:`warn_constant_tasks` on the eval-mode predictions
    of the first ``max_rows`` training rows (``inputs``: the model input, an
    array or a dict of arrays), for every task the net trains (a scenario
    model's branches included). A multiclass task is summarized by its top
    class probability."""
    import torch

    from .data import _length, _take

    n = min(_length(inputs), max_rows)
    if n < 2:
        return []
    head = _take(inputs, slice(0, n))

    columns = []
    for out in net.task_outputs(head):
        out = out.double()
        if out.ndim == 1:
            columns.append(torch.sigmoid(out).numpy())
        else:
            columns.append(torch.softmax(out, dim=1).max(dim=1).values.numpy())
    names = getattr(net, "task_names", None) or [str(k) for k in range(len(columns))]
    return warn_constant_tasks(type(estimator).__name__, names, columns)
