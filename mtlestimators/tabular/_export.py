"""Export adapters of the tabular family (see :mod:`mtlestimators._core.export`).

The field models (MSSM, SNR, MMoE, PLE, CrossStitch, SharedBottom,
SingleTaskMLP: every ``FieldClassifierBase``) take ``categorical`` int64
codes and ``numeric`` float64 raw values (NaN for a missing value), either
left out when the model has no such field, and return ``proba``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._core.base import check_fitted_X
from .._core.export import (
    EXAMPLE_BATCH,
    ClassifierExportAdapter,
    as_buffer,
    eval_copy,
    graph_probabilities,
    metadata_json,
)
from ._fields import _numeric_block


def _pruned(module: nn.Module) -> nn.Module:
    """MSSM/SNR: the module without its closed cells and connections (exact:
    eval-mode hard-concrete gates are deterministic), so the exported graph
    does not compute them; other modules unchanged."""
    copy = getattr(module, "pruned_copy", None)
    pruned = copy() if copy is not None else None
    return module if pruned is None else pruned


class _FieldGraph(nn.Module):
    """(categorical codes, raw numeric) -> predict_proba of the MSSM family."""

    def __init__(self, estimator):
        super().__init__()
        encoder = estimator.field_encoder_
        self.module = _pruned(eval_copy(estimator.net_.module_))
        self.register_buffer("mean", as_buffer(encoder.means))
        self.register_buffer("scale", as_buffer(encoder.scales))
        self.n_categorical = len(encoder.vocabularies)
        self.n_numeric = int((~encoder.categorical).sum())
        self.multi = estimator._multi()

    def run(self, categorical, numeric):
        batch = (categorical if self.n_categorical else numeric).shape[0]
        if self.n_numeric:
            numeric = ((numeric - self.mean) / self.scale).to(torch.float32)
        else:  # no numeric field: an empty (B, 0) block for the module
            numeric = torch.zeros((batch, 0), dtype=torch.float32)
        if not self.n_categorical:
            categorical = torch.zeros((batch, 0), dtype=torch.int64)
        return graph_probabilities(self.module(categorical, numeric), self.multi)

    def forward(self, categorical, numeric):
        return self.run(categorical, numeric)


class _CategoricalGraph(_FieldGraph):
    """A model whose fields are all categorical."""

    def forward(self, categorical):
        return self.run(categorical, None)


class _NumericGraph(_FieldGraph):
    """A model whose fields are all numeric."""

    def forward(self, numeric):
        return self.run(None, numeric)


class FieldExportAdapter(ClassifierExportAdapter):
    """A field model: inputs ``categorical`` and/or ``numeric``; the metadata
    adds the categorical columns and their vocabularies (code 2 + i for
    ``vocabulary[i]``, 0 unseen, 1 missing)."""

    def _counts(self) -> tuple[int, int]:
        encoder = self.estimator.field_encoder_
        return len(encoder.vocabularies), int((~encoder.categorical).sum())

    def graph(self, gallery_graph: str):
        n_cat, n_num = self._counts()
        example, names = [], []
        if n_cat:
            example.append(torch.zeros(EXAMPLE_BATCH, n_cat, dtype=torch.int64))
            names.append("categorical")
        if n_num:
            example.append(torch.zeros(EXAMPLE_BATCH, n_num, dtype=torch.float64))
            names.append("numeric")
        cls = (
            _FieldGraph
            if n_cat and n_num
            else (_CategoricalGraph if n_cat else _NumericGraph)
        )
        return cls(self.estimator), tuple(example), names, "proba", "batch"

    def metadata(self, names, output, gallery_graph) -> dict[str, str]:
        meta = super().metadata(names, output, gallery_graph)
        encoder = self.estimator.field_encoder_
        meta["mtlestimators.categorical_columns"] = metadata_json(
            np.flatnonzero(encoder.categorical).tolist()
        )
        meta["mtlestimators.vocabularies"] = metadata_json(
            [list(v) for v in encoder.vocabularies]
        )
        return meta

    def prepare_inputs(self, X) -> dict[str, np.ndarray]:
        estimator = self.estimator
        X = check_fitted_X(estimator, X, **estimator._X_check_params)
        encoder = estimator.field_encoder_
        inputs = {}
        if encoder.vocabularies:
            inputs["categorical"] = encoder.transform(X)["categorical"]
        if (~encoder.categorical).any():
            inputs["numeric"] = _numeric_block(X, encoder.categorical, encoder.names)
        return inputs
