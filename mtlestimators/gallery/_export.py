"""Export adapter of the gallery family (see :mod:`mtlestimators._core.export`).

Both graphs take ``images`` float32 (N, 3, S, S), the images of B galleries
packed one gallery after the other, and ``lengths`` int64 (B,), the number of
images of each gallery (positive, summing to N), as :func:`prepare_inputs`
gives them.

``gallery_graph="images"``: -> ``features`` float32 (N, D), the per-image
encoder features, pooled afterwards (``lengths`` is not used by this graph;
it is its input so that one ``prepare_inputs`` feeds both graphs).
``gallery_graph="gallery"``: -> ``embedding`` float32 (B, D), one pooled
embedding per gallery (any pooling).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._core.export import EXAMPLE_BATCH, ExportAdapter, eval_copy
from ._data import check_galleries, preprocess
from ._pooling import AttentionPooling, MaxPooling, MeanPooling

_POOLINGS = (MeanPooling, MaxPooling, AttentionPooling)


class _ImageGraph(nn.Module):
    """Images (N, 3, S, S) -> per-image encoder features (N, D); the gallery
    ``lengths`` are taken and not used."""

    def __init__(self, estimator):
        super().__init__()
        self.encoder = eval_copy(estimator.net_.module_.encoder)

    def forward(self, images, lengths):
        return self.encoder(images)


class _GalleryGraph(nn.Module):
    """The images of B galleries, packed, and their ``lengths`` (B,) -> one
    pooled embedding per gallery (B, D)."""

    def __init__(self, estimator):
        super().__init__()
        module = eval_copy(estimator.net_.module_)
        self.encoder = module.encoder
        self.pooling = module.pooling

    def forward(self, images, lengths):
        h = self.encoder(images)  # (N, D)
        # member[b, i]: image i belongs to gallery b. An image's gallery is
        # the number of galleries that end at or before it (an image past the
        # sum of the lengths belongs to none); masks rather than scatters,
        # for ONNX.
        ends = torch.cumsum(lengths, dim=0)  # (B,)
        position = torch.arange(h.shape[0], device=h.device)
        gallery = (position[:, None] >= ends[None, :]).sum(dim=1)  # (N,)
        galleries = torch.arange(lengths.shape[0], device=h.device)
        member = gallery[None, :] == galleries[:, None]  # (B, N)
        if isinstance(self.pooling, MaxPooling):
            lowest = torch.finfo(h.dtype).min
            masked = torch.where(member[:, :, None], h[None, :, :], lowest)
            return masked.amax(dim=1)
        if isinstance(self.pooling, AttentionPooling):
            scores = self.pooling.score(h)[:, 0]  # (N,)
            logits = torch.where(member, scores[None, :], float("-inf"))
            return torch.softmax(logits, dim=1) @ h  # (B, D)
        weights = member.to(h.dtype)
        return (weights @ h) / weights.sum(dim=1, keepdim=True).clamp(min=1.0)


class GalleryExportAdapter(ExportAdapter):
    """A GalleryEmbedder: input ``images``; the metadata adds the image size,
    the pooling and the ``gallery_graph``."""

    def _pooling(self) -> nn.Module:
        pooling = self.estimator.net_.module_.pooling
        if not isinstance(pooling, _POOLINGS):
            raise TypeError(f"Unknown pooling module {type(pooling).__name__}.")
        return pooling

    def graph(self, gallery_graph: str):
        self._pooling()
        size = self.estimator.image_size_
        # Three images in two galleries: the two axes have their own sizes.
        example = (
            torch.zeros(EXAMPLE_BATCH + 1, 3, size, size),
            torch.tensor([EXAMPLE_BATCH, 1], dtype=torch.int64),
        )
        if gallery_graph == "gallery":
            graph, output = _GalleryGraph(self.estimator), "embedding"
        else:
            graph, output = _ImageGraph(self.estimator), "features"
        axes = {"images": "images", "lengths": "galleries"}
        return graph, example, ["images", "lengths"], output, axes

    def metadata(self, names, output, gallery_graph) -> dict[str, str]:
        meta = super().metadata(names, output, gallery_graph)
        meta["mtlestimators.image_size"] = str(self.estimator.image_size_)
        meta["mtlestimators.pooling"] = type(
            self.estimator.net_.module_.pooling
        ).__name__
        meta["mtlestimators.gallery_graph"] = gallery_graph
        return meta

    def prepare_inputs(self, X) -> dict[str, np.ndarray]:
        """The images of every gallery, packed one gallery after the other,
        and the gallery lengths."""
        galleries = check_galleries(X)
        images = [
            preprocess(g, self.estimator.image_size_, f"X[{i}]")
            for i, g in enumerate(galleries)
        ]
        lengths = np.array([len(g) for g in images], dtype=np.int64)
        return {"images": torch.cat(images).numpy(), "lengths": lengths}
