"""Export adapter of the gallery family (see :mod:`mtlestimators._core.export`).

``gallery_graph="images"``: ``images`` float32 (N, 3, S, S) -> ``features``
float32 (N, D), the per-image encoder features, pooled afterwards.
``gallery_graph="gallery"``: the ``images`` of one gallery -> ``embedding``
float32 (1, D), its pooled embedding (any pooling).
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
    """Images (N, 3, S, S) -> per-image encoder features (N, D)."""

    def __init__(self, estimator):
        super().__init__()
        self.encoder = eval_copy(estimator.net_.module_.encoder)

    def forward(self, images):
        return self.encoder(images)


class _GalleryGraph(nn.Module):
    """The images of one gallery -> its pooled embedding (1, D)."""

    def __init__(self, estimator):
        super().__init__()
        module = eval_copy(estimator.net_.module_)
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
        example = (torch.zeros(EXAMPLE_BATCH, 3, size, size),)
        if gallery_graph == "gallery":
            graph, output = _GalleryGraph(self.estimator), "embedding"
        else:
            graph, output = _ImageGraph(self.estimator), "features"
        return graph, example, ["images"], output, "images"

    def metadata(self, names, output, gallery_graph) -> dict[str, str]:
        meta = super().metadata(names, output, gallery_graph)
        meta["mtlestimators.image_size"] = str(self.estimator.image_size_)
        meta["mtlestimators.pooling"] = type(
            self.estimator.net_.module_.pooling
        ).__name__
        meta["mtlestimators.gallery_graph"] = gallery_graph
        return meta

    def prepare_inputs(self, X) -> dict[str, np.ndarray]:
        """The images of every gallery, packed one gallery after the other."""
        galleries = check_galleries(X)
        images = [
            preprocess(g, self.estimator.image_size_, f"X[{i}]")
            for i, g in enumerate(galleries)
        ]
        return {"images": torch.cat(images).numpy()}
