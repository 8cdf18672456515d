"""What every family's export adapter shares. Private.

:mod:`mtlestimators.export` holds the public functions only; what to put in
the graph, which inputs it takes and what a server needs besides it come from
the estimator's family. An estimator that can be exported has a method
``_export_adapter(self)``, defined once on its family's base class, that
returns an :class:`ExportAdapter` for it; each family keeps its adapters and
graph modules in its own ``_export.py`` (``tabular/``, ``autotask/``,
``gallery/``). Adding a model to a family that has an adapter needs no change
here or in :mod:`mtlestimators.export`.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch
from torch import nn

EXAMPLE_BATCH = 2  # example rows for tracing; the batch axis is dynamic


def eval_copy(module: nn.Module) -> nn.Module:
    """A CPU copy in evaluation mode: exporting never changes the estimator."""
    module = copy.deepcopy(module).to("cpu").eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def as_buffer(values, dtype=torch.float64) -> torch.Tensor:
    """Fitted values (means, scales) as a tensor to register as a buffer."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype)


def graph_probabilities(outputs, multi: bool) -> torch.Tensor:
    """``predict_proba`` from module outputs, in float64 as the estimators:
    one sigmoid column per task when ``multi``, else the one task's class
    probabilities (n, n_classes)."""
    if multi:
        return torch.stack([torch.sigmoid(o.double()) for o in outputs], dim=1)
    (out,) = outputs
    if out.ndim == 1:
        p = torch.sigmoid(out.double())
        return torch.stack([1.0 - p, p], dim=1)
    return torch.softmax(out.double(), dim=1)


def metadata_json(value) -> str:
    """``value`` as a JSON string for the ONNX metadata (numpy scalars as
    Python numbers, anything else JSON cannot write as its ``str``)."""
    return json.dumps(
        value, default=lambda v: v.item() if hasattr(v, "item") else str(v)
    )


class ExportAdapter:
    """How :mod:`mtlestimators.export` exports one fitted estimator.

    The protocol, which a family's adapter implements for its estimators:

    ``graph(gallery_graph) -> (module, example_inputs, input_names,
    output_name, batch_axis_name)``
        The ``nn.Module`` to trace (in evaluation mode, on CPU, a copy: the
        estimator is not changed), a tuple of example tensors, one per input
        of ``module.forward`` in its order, the input names (those of the
        forward's arguments and of :meth:`prepare_inputs`), the output's
        name and the name of the dynamic first axis (or ``{input name: axis
        name}`` when the inputs' first axes differ). ``gallery_graph`` is
        already checked by the caller; only galleries use it.
    ``metadata(names, output, gallery_graph) -> dict[str, str]``
        What a server needs besides the graph, as ONNX metadata (JSON
        strings), keys ``"mtlestimators.<name>"``. The base class writes
        the keys every graph has: version, estimator, inputs and output.
    ``prepare_inputs(X) -> dict[str, np.ndarray]``
        The graph's inputs for X, computed with numpy as the estimator does
        before its module, X checked as by its prediction method.

    Parameters
    ----------
    estimator : fitted estimator
        The estimator to export; the adapter only reads it.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def graph(self, gallery_graph: str):
        """``(module, example inputs, input names, output name, batch axis)``."""
        raise NotImplementedError

    def metadata(self, names, output, gallery_graph) -> dict[str, str]:
        """The metadata keys every exported graph has."""
        from .. import __version__

        return {
            "mtlestimators.version": __version__,
            "mtlestimators.estimator": type(self.estimator).__name__,
            "mtlestimators.inputs": metadata_json(names),
            "mtlestimators.output": output,
        }

    def prepare_inputs(self, X) -> dict[str, np.ndarray]:
        """``{input name: array}`` for X, in the graph's input order."""
        raise NotImplementedError


class ClassifierExportAdapter(ExportAdapter):
    """An adapter for a multi-task classifier: the common keys plus
    ``classes`` (per task for several tasks) and ``task_names``."""

    def metadata(self, names, output, gallery_graph) -> dict[str, str]:
        meta = super().metadata(names, output, gallery_graph)
        classes = self.estimator.classes_
        meta["mtlestimators.classes"] = metadata_json(
            [c.tolist() for c in classes]
            if isinstance(classes, list)
            else classes.tolist()
        )
        meta["mtlestimators.task_names"] = metadata_json(
            self.estimator.task_names_.tolist()
        )
        return meta
