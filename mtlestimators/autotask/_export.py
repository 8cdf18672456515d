"""Export adapter of the AutoTask family (see :mod:`mtlestimators._core.export`).

A scenario model (every ``ScenarioClassifierBase``) takes ``features``
float64 (n, d - 1), the raw feature columns, and ``task`` int64 (n,), the
task codes (k + 1 for ``tasks_[k]``, 0 for a task id not seen in fit), and
returns ``proba``.

A model whose module returns several outputs says which one the graph serves
with a method ``_export_output(self) -> (output index, extra metadata)`` (it
may raise for invalid settings); without one the graph serves output 0 and
adds no metadata.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._core.export import (
    EXAMPLE_BATCH,
    ClassifierExportAdapter,
    as_buffer,
    eval_copy,
    graph_probabilities,
    metadata_json,
)


def _served_output(estimator) -> tuple[int, dict[str, str]]:
    """The estimator's ``_export_output()``, or output 0 and no metadata."""
    hook = getattr(estimator, "_export_output", None)
    if hook is None:
        return 0, {}
    index, extra = hook()
    return int(index), dict(extra)


class _ScenarioGraph(nn.Module):
    """(raw features, task codes) -> predict_proba of a scenario model."""

    def __init__(self, estimator):
        super().__init__()
        self.module = eval_copy(estimator.net_.module_)
        self.register_buffer("mean", as_buffer(estimator.feature_mean_))
        self.register_buffer("scale", as_buffer(estimator.feature_scale_))
        self.output, _ = _served_output(estimator)

    def forward(self, features, task):
        x = ((features - self.mean) / self.scale).to(torch.float32)
        outputs = self.module(x, task)
        return graph_probabilities((outputs[self.output],), multi=False)


class ScenarioExportAdapter(ClassifierExportAdapter):
    """A scenario model: inputs ``features`` and ``task``; the metadata adds
    the task ids (``tasks``), the ``task_column`` and the model's own keys."""

    def graph(self, gallery_graph: str):
        d = len(self.estimator.feature_mean_)
        example = (
            torch.zeros(EXAMPLE_BATCH, d, dtype=torch.float64),
            torch.ones(EXAMPLE_BATCH, dtype=torch.int64),
        )
        return (
            _ScenarioGraph(self.estimator),
            example,
            ["features", "task"],
            "proba",
            "batch",
        )

    def metadata(self, names, output, gallery_graph) -> dict[str, str]:
        meta = super().metadata(names, output, gallery_graph)
        estimator = self.estimator
        # code k + 1 for tasks_[k]; 0 for a task id not seen in fit
        meta["mtlestimators.tasks"] = metadata_json(list(estimator.tasks_))
        meta["mtlestimators.task_column"] = metadata_json(estimator.task_column)
        meta.update(_served_output(estimator)[1])
        return meta

    def prepare_inputs(self, X) -> dict[str, np.ndarray]:
        features, codes = self.estimator._checked_predict_columns(X)
        return {"features": features, "task": codes}
