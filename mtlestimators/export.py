"""Export a fitted estimator's inference path for serving.

:func:`export_onnx` writes an ONNX graph that ONNX Runtime (or any ONNX
runtime) runs without torch, skorch or scikit-learn; :func:`export_torch`
writes a ``torch.export`` program, the fallback for a model whose operations
ONNX cannot express. :func:`prepare_inputs` turns X into the graph's inputs
with numpy, exactly as the estimator does before its module.

What is inside the graph and what stays outside:

- Inside: the trained module in evaluation mode (dropout off, hard-concrete
  gates at their deterministic test-time values, AutoTask rows scored one by
  one), the standardization of the numeric columns with the fitted means and
  scales, and the probability transform of ``predict_proba`` (sigmoid or
  softmax, in float64). The batch axis is dynamic.
- Outside (:func:`prepare_inputs`, numpy): validating X, splitting off the
  task-id column and mapping task ids to codes (``tasks_``: code k + 1 for
  ``tasks_[k]``, 0 for an id not seen in fit), mapping categories to codes
  (``field_encoder_``: 2 + index in the field's vocabulary, 0 unseen, 1
  missing), and for galleries decoding, resizing and normalizing images. The
  code tables are also written into the ONNX file's metadata (JSON), so a
  server in another language can apply them.

Graph inputs -> output (the user guide, ``docs/export.md``, has the details):

- AutoTask, MultiTaskDNN: ``features`` float64 (n, d - 1), the raw feature
  columns, and ``task`` int64 (n,), the task codes -> ``proba`` float64
  (n, n_classes).
- MSSM, SNR, MMoE, PLE, CrossStitch: ``categorical`` int64 (n, n_cat) codes
  and ``numeric`` float64 (n, n_num) raw values -> ``proba``: (n, K) for K > 1
  tasks, (n, n_classes) for one task.
- SharedBottom: ``X`` float64 (n, d) -> ``proba``.
- GalleryEmbedder, ``gallery_graph="images"``: ``images`` float32
  (N, 3, S, S), resized and normalized -> ``features`` float32 (N, D), one row
  per image, pooled per gallery with :func:`pool_image_features`.
- GalleryEmbedder, ``gallery_graph="gallery"``: the ``images`` of one gallery
  -> ``embedding`` float32 (1, D), its pooled embedding (any pooling).

An input with no columns (no categorical field, say) is left out of the graph
and of :func:`prepare_inputs`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._core.base import check_fitted_X
from .autotask._autotask import AutoTaskClassifier
from .autotask._multitask_dnn import MultiTaskDNNClassifier
from .autotask._scenario import ScenarioClassifierBase
from .gallery._data import check_galleries, preprocess
from .gallery._embedder import GalleryEmbedder
from .gallery._pooling import AttentionPooling, MaxPooling, MeanPooling
from .tabular import CrossStitchClassifier, PLEClassifier, SNRClassifier
from .tabular._base import FieldClassifierBase
from .tabular._fields import _numeric_block
from .tabular._mmoe import MMoEClassifier
from .tabular._mssm import MSSMClassifier
from .tabular._shared_bottom import SharedBottomClassifier

__all__ = ["export_onnx", "export_torch", "pool_image_features", "prepare_inputs"]

SUPPORTED = (
    AutoTaskClassifier,
    MultiTaskDNNClassifier,
    MSSMClassifier,
    SNRClassifier,
    MMoEClassifier,
    PLEClassifier,
    CrossStitchClassifier,
    SharedBottomClassifier,
    GalleryEmbedder,
)
GALLERY_GRAPHS = ("images", "gallery")
_INSTALL_HINT = 'pip install "mtlestimators[export]"'


# --------------------------------------------------------------------- checks
def _check_estimator(estimator) -> None:
    if not isinstance(estimator, SUPPORTED):
        names = ", ".join(cls.__name__ for cls in SUPPORTED)
        raise TypeError(
            f"Cannot export a {type(estimator).__name__}; export_onnx and "
            f"export_torch support fitted {names}."
        )
    check_is_fitted(estimator)


def _check_path(path, suffix: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a file path (str or os.PathLike), got "
            f"{type(path).__name__}; e.g. path='model{suffix}'."
        )
    out = Path(path)
    if out.is_dir():
        raise ValueError(
            f"path={os.fspath(path)!r} is a directory; give a file name such as "
            f"{os.fspath(out / ('model' + suffix))!r}."
        )
    if not out.parent.is_dir():
        raise ValueError(
            f"path={os.fspath(path)!r}: the folder {os.fspath(out.parent)!r} "
            "does not exist; create it first or choose another path."
        )
    return out


def _check_gallery_graph(gallery_graph) -> None:
    if gallery_graph not in GALLERY_GRAPHS:
        raise ValueError(
            f"gallery_graph={gallery_graph!r} is unknown; use 'images' (per-image "
            "features, pooled afterwards) or 'gallery' (one gallery's pooled "
            "embedding)."
        )


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"export_onnx needs the packages onnx and onnxscript ({exc}); install "
            f"them with: {_INSTALL_HINT}"
        ) from None


# ---------------------------------------------------------------- the graphs
def _eval_copy(module: nn.Module) -> nn.Module:
    """A CPU copy in evaluation mode: exporting never changes the estimator."""
    module = copy.deepcopy(module).to("cpu").eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _as_buffer(values, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype)


def _probabilities(outputs, multi: bool) -> torch.Tensor:
    """``predict_proba`` from module outputs, in float64 as the estimators."""
    if multi:
        return torch.stack([torch.sigmoid(o.double()) for o in outputs], dim=1)
    (out,) = outputs
    if out.ndim == 1:
        p = torch.sigmoid(out.double())
        return torch.stack([1.0 - p, p], dim=1)
    return torch.softmax(out.double(), dim=1)


class _ScenarioGraph(nn.Module):
    """(raw features, task codes) -> predict_proba of a scenario model."""

    def __init__(self, estimator):
        super().__init__()
        self.module = _eval_copy(estimator.net_.module_)
        self.register_buffer("mean", _as_buffer(estimator.feature_mean_))
        self.register_buffer("scale", _as_buffer(estimator.feature_scale_))
        # MultiTaskDNN returns (task branch, general branch); AutoTask one output.
        self.output = 0
        if isinstance(estimator, MultiTaskDNNClassifier):
            estimator._check_branch()
            self.output = ("task", "general").index(estimator.branch)

    def forward(self, features, task):
        x = ((features - self.mean) / self.scale).to(torch.float32)
        outputs = self.module(x, task)
        return _probabilities((outputs[self.output],), multi=False)


class _FieldGraph(nn.Module):
    """(categorical codes, raw numeric) -> predict_proba of the MSSM family."""

    def __init__(self, estimator):
        super().__init__()
        encoder = estimator.field_encoder_
        self.module = _eval_copy(estimator.net_.module_)
        self.register_buffer("mean", _as_buffer(encoder.means))
        self.register_buffer("scale", _as_buffer(encoder.scales))
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
        return _probabilities(self.module(categorical, numeric), self.multi)

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


class _MatrixGraph(nn.Module):
    """X -> predict_proba of a float-matrix model (SharedBottom)."""

    def __init__(self, estimator):
        super().__init__()
        self.module = _eval_copy(estimator.net_.module_)
        self.multi = estimator._multi()

    def forward(self, X):
        outputs = self.module(X.to(torch.float32))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return _probabilities(outputs, self.multi)


class _ImageGraph(nn.Module):
    """Images (N, 3, S, S) -> per-image encoder features (N, D)."""

    def __init__(self, estimator):
        super().__init__()
        self.encoder = _eval_copy(estimator.net_.module_.encoder)

    def forward(self, images):
        return self.encoder(images)


class _GalleryGraph(nn.Module):
    """The images of one gallery -> its pooled embedding (1, D)."""

    def __init__(self, estimator):
        super().__init__()
        module = _eval_copy(estimator.net_.module_)
        self.encoder = module.encoder
        self.pooling = module.pooling

    def forward(self, images):
        h = self.encoder(images)  # (N, D)
        if isinstance(self.pooling, MaxPooling):
            return h.amax(dim=0, keepdim=True)
        if isinstance(self.pooling, AttentionPooling):
            a = torch.softmax(self.pooling.score(h)[:, 0], dim=0)  # (N,)
            return (a[:, None] * h).sum(dim=0, keepdim=True)
        return h.mean(dim=0, keepdim=True)


def _graph(estimator, gallery_graph: str):
    """``(module, example inputs, input names, output name, batch axis name)``."""
    batch = 2  # example rows for tracing; the batch axis is dynamic
    if isinstance(estimator, GalleryEmbedder):
        _check_gallery_graph(gallery_graph)
        pooling = estimator.net_.module_.pooling
        if not isinstance(pooling, (MeanPooling, MaxPooling, AttentionPooling)):
            raise TypeError(f"Unknown pooling module {type(pooling).__name__}.")
        size = estimator.image_size_
        example = (torch.zeros(batch, 3, size, size),)
        if gallery_graph == "gallery":
            return _GalleryGraph(estimator), example, ["images"], "embedding", "images"
        return _ImageGraph(estimator), example, ["images"], "features", "images"
    if isinstance(estimator, ScenarioClassifierBase):
        d = len(estimator.feature_mean_)
        example = (
            torch.zeros(batch, d, dtype=torch.float64),
            torch.ones(batch, dtype=torch.int64),
        )
        return (
            _ScenarioGraph(estimator),
            example,
            ["features", "task"],
            "proba",
            "batch",
        )
    if isinstance(estimator, FieldClassifierBase):
        encoder = estimator.field_encoder_
        n_cat = len(encoder.vocabularies)
        n_num = int((~encoder.categorical).sum())
        example, names = [], []
        if n_cat:
            example.append(torch.zeros(batch, n_cat, dtype=torch.int64))
            names.append("categorical")
        if n_num:
            example.append(torch.zeros(batch, n_num, dtype=torch.float64))
            names.append("numeric")
        cls = (
            _FieldGraph
            if n_cat and n_num
            else (_CategoricalGraph if n_cat else _NumericGraph)
        )
        return cls(estimator), tuple(example), names, "proba", "batch"
    example = (torch.zeros(batch, estimator.n_features_in_, dtype=torch.float64),)
    return _MatrixGraph(estimator), example, ["X"], "proba", "batch"


def _dynamic_shapes(names, axis: str) -> dict:
    dim = torch.export.Dim(axis, min=1)
    return {name: {0: dim} for name in names}


def _json(value) -> str:
    return json.dumps(
        value, default=lambda v: v.item() if hasattr(v, "item") else str(v)
    )


def _metadata(estimator, names, output, gallery_graph) -> dict[str, str]:
    """What a server needs besides the graph, as ONNX metadata (JSON strings)."""
    from . import __version__

    meta = {
        "mtlestimators.version": __version__,
        "mtlestimators.estimator": type(estimator).__name__,
        "mtlestimators.inputs": _json(names),
        "mtlestimators.output": output,
    }
    if isinstance(estimator, GalleryEmbedder):
        meta["mtlestimators.image_size"] = str(estimator.image_size_)
        meta["mtlestimators.pooling"] = type(estimator.net_.module_.pooling).__name__
        meta["mtlestimators.gallery_graph"] = gallery_graph
        return meta
    classes = estimator.classes_
    meta["mtlestimators.classes"] = _json(
        [c.tolist() for c in classes] if isinstance(classes, list) else classes.tolist()
    )
    meta["mtlestimators.task_names"] = _json(estimator.task_names_.tolist())
    if isinstance(estimator, ScenarioClassifierBase):
        # code k + 1 for tasks_[k]; 0 for a task id not seen in fit
        meta["mtlestimators.tasks"] = _json(list(estimator.tasks_))
        meta["mtlestimators.task_column"] = _json(estimator.task_column)
        if isinstance(estimator, MultiTaskDNNClassifier):
            meta["mtlestimators.branch"] = estimator.branch
    if isinstance(estimator, FieldClassifierBase):
        encoder = estimator.field_encoder_
        # code 2 + i for vocabulary[i]; 0 unseen, 1 missing
        meta["mtlestimators.categorical_columns"] = _json(
            np.flatnonzero(encoder.categorical).tolist()
        )
        meta["mtlestimators.vocabularies"] = _json(
            [list(v) for v in encoder.vocabularies]
        )
    return meta


@contextlib.contextmanager
def _quiet():
    """Without the exporters' notes on torch internals and axis names."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", message=".*axis name.*")
        yield


# ------------------------------------------------------------------ the API
def export_onnx(
    estimator,
    path,
    *,
    gallery_graph: str = "images",
    opset_version: int | None = None,
):
    """Export a fitted estimator's inference path to an ONNX file.

    Parameters
    ----------
    estimator : fitted estimator
        AutoTaskClassifier, MultiTaskDNNClassifier (with its current
        ``branch``), MSSMClassifier, SNRClassifier, MMoEClassifier,
        PLEClassifier, CrossStitchClassifier, SharedBottomClassifier or
        GalleryEmbedder.
    path : str or os.PathLike
        The file to write (its folder must exist).
    gallery_graph : {"images", "gallery"}, default="images"
        GalleryEmbedder only: "images" exports the image encoder (per-image
        features, any number of images per run); "gallery" exports the
        encoder plus pooling for one gallery per run (needed to serve
        attention pooling without torch).
    opset_version : int, optional
        ONNX opset; the exporter's default when None.

    Returns
    -------
    pathlib.Path
        The written file. Its input names are those of
        ``prepare_inputs(estimator, X)``; the first axis of every input and of
        the output is dynamic.

    Raises
    ------
    NotFittedError, TypeError, ValueError
        Unfitted or unsupported estimator, bad path or ``gallery_graph``.
    ImportError
        onnx or onnxscript is missing (``pip install "mtlestimators[export]"``).
    RuntimeError
        The module uses an operation ONNX cannot express; use
        :func:`export_torch` instead.
    """
    _check_estimator(estimator)
    out = _check_path(path, ".onnx")
    _check_gallery_graph(gallery_graph)
    _require_onnx()
    import onnx

    graph, example, names, output, axis = _graph(estimator, gallery_graph)
    graph.eval()
    try:
        with _quiet():
            program = torch.onnx.export(
                graph,
                example,
                input_names=names,
                output_names=[output],
                dynamic_shapes=_dynamic_shapes(names, axis),
                opset_version=opset_version,
                dynamo=True,
                verbose=False,
            )
    except Exception as exc:
        raise RuntimeError(
            f"The {type(estimator).__name__}'s module could not be exported to "
            f"ONNX ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). "
            "Use mtlestimators.export.export_torch(estimator, path) for a "
            "torch.export program instead."
        ) from exc
    model = program.model_proto
    for key, value in _metadata(estimator, names, output, gallery_graph).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(out))
    return out


def export_torch(estimator, path, *, gallery_graph: str = "images"):
    """Export the same inference path as :func:`export_onnx` as a
    ``torch.export`` program (``torch.export.save``), for a module whose
    operations ONNX cannot express or to serve with torch alone.

    Load it with ``program = torch.export.load(path)`` and call
    ``program.module()(*tensors)`` with the arrays of
    ``prepare_inputs(estimator, X)`` as tensors, in that order; it returns
    the same tensor as the ONNX graph's output.

    Returns the written ``pathlib.Path``. Raises as :func:`export_onnx`.
    """
    _check_estimator(estimator)
    out = _check_path(path, ".pt2")
    _check_gallery_graph(gallery_graph)
    graph, example, names, _, axis = _graph(estimator, gallery_graph)
    graph.eval()
    # The forward's argument names are the input names.
    shapes = _dynamic_shapes(names, axis)
    with _quiet():
        program = torch.export.export(graph, example, dynamic_shapes=shapes)
    torch.export.save(program, os.fspath(out))
    return out


def prepare_inputs(estimator, X) -> dict[str, np.ndarray]:
    """The exported graph's inputs for X, computed with numpy as the estimator
    does before its module: ``{input name: array}``, ready for
    ``onnxruntime.InferenceSession.run(None, prepare_inputs(estimator, X))``.

    X is checked as by the estimator's ``predict_proba`` (``transform`` for
    a GalleryEmbedder, whose images of every gallery are packed one gallery
    after the other; the gallery lengths are ``[len(g) for g in X]``, one
    image per row for a 2-D array).
    """
    _check_estimator(estimator)
    if isinstance(estimator, GalleryEmbedder):
        galleries = check_galleries(X)
        images = [
            preprocess(g, estimator.image_size_, f"X[{i}]")
            for i, g in enumerate(galleries)
        ]
        return {"images": torch.cat(images).numpy()}
    if isinstance(estimator, ScenarioClassifierBase):
        features, codes = estimator._checked_predict_columns(X)
        return {"features": features, "task": codes}
    if isinstance(estimator, FieldClassifierBase):
        X = check_fitted_X(estimator, X, **estimator._X_check_params)
        encoder = estimator.field_encoder_
        inputs = {}
        if encoder.vocabularies:
            inputs["categorical"] = encoder.transform(X)["categorical"]
        if (~encoder.categorical).any():
            inputs["numeric"] = _numeric_block(X, encoder.categorical, encoder.names)
        return inputs
    X = check_fitted_X(estimator, X, dtype=[np.float64, np.float32])
    return {"X": X.astype(np.float64, copy=False)}


def pool_image_features(features, lengths, pooling: str = "mean") -> np.ndarray:
    """Pool per-image features (N, D) into one row per gallery (B, D) with
    numpy: ``lengths`` are the B gallery lengths (summing to N), in the order
    the images were packed. ``pooling`` is "mean" or "max"; attention pooling
    has learned weights: export it with ``gallery_graph="gallery"``."""
    features = np.asarray(features)
    lengths = np.asarray(lengths, dtype=np.int64)
    if features.ndim != 2:
        raise ValueError(f"features must be (n_images, D), got {features.shape}.")
    if lengths.ndim != 1 or (lengths < 1).any() or lengths.sum() != len(features):
        raise ValueError(
            f"lengths must be positive gallery sizes summing to the {len(features)} "
            f"image rows of features, got {lengths.tolist()}."
        )
    if pooling not in ("mean", "max"):
        raise ValueError(
            f"pooling={pooling!r}: only 'mean' and 'max' pool in numpy; export "
            "attention pooling with export_onnx(..., gallery_graph='gallery')."
        )
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    reduce = np.add if pooling == "mean" else np.maximum
    pooled = reduce.reduceat(features, starts, axis=0)
    if pooling == "mean":
        pooled = pooled / lengths[:, None].astype(features.dtype)
    return pooled.astype(features.dtype, copy=False)
