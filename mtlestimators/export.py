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
- MSSM, SNR, MMoE, PLE, CrossStitch, SharedBottom, SingleTaskMLP:
  ``categorical`` int64 (n, n_cat) codes and ``numeric`` float64 (n, n_num)
  raw values (NaN for a missing value) -> ``proba``: (n, K) for K > 1 tasks,
  (n, n_classes) for one task.
- GalleryEmbedder, ``gallery_graph="images"``: ``images`` float32
  (N, 3, S, S), resized and normalized, the images of B galleries packed one
  gallery after the other, and ``lengths`` int64 (B,), each gallery's number
  of images (not used by this graph) -> ``features`` float32 (N, D), one row
  per image, pooled per gallery with :func:`pool_image_features`.
- GalleryEmbedder, ``gallery_graph="gallery"``: the same ``images`` and
  ``lengths`` -> ``embedding`` float32 (B, D), one pooled embedding per
  gallery (any pooling).

An input with no columns (no categorical field, say) is left out of the graph
and of :func:`prepare_inputs`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

__all__ = ["export_onnx", "export_torch", "pool_image_features", "prepare_inputs"]

GALLERY_GRAPHS = ("images", "gallery")
_INSTALL_HINT = 'pip install "mtlestimators[export]"'


# --------------------------------------------------------------------- checks
def _supported_names() -> list[str]:
    """The public estimator classes whose family provides an export adapter."""
    package = importlib.import_module(__package__)
    return [
        name
        for name in package.__all__
        if isinstance(getattr(package, name, None), type)
        and callable(getattr(getattr(package, name), "_export_adapter", None))
    ]


def _adapter(estimator):
    """The estimator's export adapter (its family's ``_export_adapter()``),
    after checking that it is fitted."""
    hook = getattr(estimator, "_export_adapter", None)
    if isinstance(estimator, type) or not callable(hook):
        names = ", ".join(_supported_names())
        raise TypeError(
            f"Cannot export a {type(estimator).__name__}; export_onnx and "
            f"export_torch support fitted {names}."
        )
    check_is_fitted(estimator)
    return hook()


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
            "features, pooled afterwards) or 'gallery' (one pooled embedding per "
            "gallery)."
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


# ---------------------------------------------------------------- helpers
def _dynamic_shapes(names, axis) -> dict:
    """The dynamic first axis of every input: ``axis`` names one axis shared
    by all inputs, or is ``{input name: axis name}`` (a gallery's images and
    its gallery lengths have axes of their own)."""
    axes = axis if isinstance(axis, dict) else dict.fromkeys(names, axis)
    dims = {a: torch.export.Dim(a, min=1) for a in dict.fromkeys(axes.values())}
    return {name: {0: dims[axes[name]]} for name in names}


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
        encoder plus pooling, one embedding per gallery of the run (its
        ``lengths`` input gives the galleries' sizes; needed to serve
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
    adapter = _adapter(estimator)
    out = _check_path(path, ".onnx")
    _check_gallery_graph(gallery_graph)
    _require_onnx()
    import onnx

    graph, example, names, output, axis = adapter.graph(gallery_graph)
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
    for key, value in adapter.metadata(names, output, gallery_graph).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(out))
    return out


def export_torch(estimator, path, *, gallery_graph: str = "images"):
    """Export a fitted estimator's inference path as a ``torch.export`` program.

    The same computation as :func:`export_onnx`, saved with
    ``torch.export.save``: for a module whose operations ONNX cannot express
    or to serve with torch alone. Load it with
    ``program = torch.export.load(path)`` and call
    ``program.module()(*tensors)`` with the arrays of
    ``prepare_inputs(estimator, X)`` as tensors, in that order; it returns
    the same tensor as the ONNX graph's output.

    Parameters
    ----------
    estimator : fitted estimator
        One of the estimators :func:`export_onnx` supports.
    path : str or os.PathLike
        The file to write (its folder must exist), e.g. ``"model.pt2"``.
    gallery_graph : {"images", "gallery"}, default="images"
        GalleryEmbedder only, as in :func:`export_onnx`.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    NotFittedError, TypeError, ValueError
        As :func:`export_onnx`: unfitted or unsupported estimator, bad path
        or ``gallery_graph``.
    """
    adapter = _adapter(estimator)
    out = _check_path(path, ".pt2")
    _check_gallery_graph(gallery_graph)
    graph, example, names, _, axis = adapter.graph(gallery_graph)
    graph.eval()
    # The forward's argument names are the input names.
    shapes = _dynamic_shapes(names, axis)
    with _quiet():
        program = torch.export.export(graph, example, dynamic_shapes=shapes)
    torch.export.save(program, os.fspath(out))
    return out


def prepare_inputs(estimator, X) -> dict[str, np.ndarray]:
    """The exported graph's inputs for X, computed with numpy.

    X goes through what the estimator does before its module, giving
    ``{input name: array}``, ready for
    ``onnxruntime.InferenceSession.run(None, prepare_inputs(estimator, X))``.

    Parameters
    ----------
    estimator : fitted estimator
        One of the estimators :func:`export_onnx` supports.
    X : array-like or DataFrame
        The rows to predict, checked as by the estimator's ``predict_proba``
        (``transform`` for a GalleryEmbedder, whose images of every gallery
        are packed one gallery after the other, with their ``lengths``
        ``[len(g) for g in X]``, one image per row for a 2-D array).

    Returns
    -------
    dict of str to numpy.ndarray
        The graph's inputs by name, in the graph's input order; an input
        with no columns is left out.

    Raises
    ------
    NotFittedError, TypeError
        Unfitted or unsupported estimator.
    """
    return _adapter(estimator).prepare_inputs(X)


def pool_image_features(features, lengths, pooling: str = "mean") -> np.ndarray:
    """Pool per-image features (N, D) into one row per gallery (B, D) with numpy.

    Parameters
    ----------
    features : array-like of shape (N, D)
        Per-image features, the output of a ``gallery_graph="images"`` graph.
    lengths : array-like of int, shape (B,)
        The B gallery lengths (positive, summing to N), in the order the
        images were packed.
    pooling : {"mean", "max"}, default="mean"
        The reduction over each gallery's images. Attention pooling has
        learned weights: export it with ``gallery_graph="gallery"``.

    Returns
    -------
    numpy.ndarray of shape (B, D)
        One row per gallery, in the dtype of ``features``.

    Examples
    --------
    >>> from mtlestimators.export import pool_image_features
    >>> pool_image_features([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [2, 1])
    array([[2., 3.],
           [5., 6.]])
    >>> pool_image_features([[1.0, 4.0], [3.0, 2.0]], [2], pooling="max")
    array([[3., 4.]])
    """
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
