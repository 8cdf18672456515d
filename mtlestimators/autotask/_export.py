"""Export adapter of the AutoTask family (see :mod:`mtlestimators._core.export`).

A scenario model (every ``ScenarioClassifierBase``) takes ``features``
float64 (n, d - 1), the raw feature columns, and ``task`` int64 (n,), the
task codes (k + 1 for ``tasks_[k]``, 0 for a task id not seen in fit), and
returns ``proba``. A model fitted with text columns takes a third input,
``text`` int64 (n, L): the token ids of its text columns, made outside the
graph by the fitted tokenizer as the task codes are (``prepare_inputs``).

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


class _TextScenarioGraph(_ScenarioGraph):
    """(raw features, task codes, text token ids) -> predict_proba."""

    def forward(self, features, task, text):
        x = ((features - self.mean) / self.scale).to(torch.float32)
        outputs = self.module(x, task, text)
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
        n_text = _text_tokens(self.estimator)
        if n_text:
            # words in the first slots, padding after: the graph's own layout
            text = torch.zeros(EXAMPLE_BATCH, n_text, dtype=torch.int64)
            text[:, : max(1, n_text // 2)] = 1
            return (
                _TextScenarioGraph(self.estimator),
                (*example, text),
                ["features", "task", "text"],
                "proba",
                "batch",
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
        if _text_tokens(estimator):
            # what a server needs to make the text input: the columns, the
            # ids per column and the tokenizer (like every key, JSON: it
            # decodes to the string that tokenizers.Tokenizer.from_str takes)
            meta["mtlestimators.text_columns"] = metadata_json(
                list(estimator.text_columns_)
            )
            meta["mtlestimators.max_text_tokens"] = metadata_json(
                int(estimator.max_text_tokens)
            )
            meta["mtlestimators.text_tokenizer"] = metadata_json(
                estimator.text_tokenizer_
            )
        meta.update(_served_output(estimator)[1])
        return meta

    def prepare_inputs(self, X) -> dict[str, np.ndarray]:
        return self.estimator._unscaled_predict_inputs(X)


def _text_tokens(estimator) -> int:
    """L, the text token ids per row of the fitted module (0 without text)."""
    return int(getattr(estimator.net_.module_, "n_text_tokens", 0))
