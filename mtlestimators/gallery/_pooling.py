"""Permutation-invariant pooling of image embeddings per gallery.

Every pooling takes the packed image embeddings ``h`` (N, D) and the gallery
of each image ``segments`` (N,) with values in ``0 .. B-1``, and returns one
vector per gallery (B, D). Each is a symmetric function of a gallery's
images, so the result does not depend on their order (the gallery paper,
section 2.2).
"""

from __future__ import annotations

import torch
from torch import nn


def segment_sum(h: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
    out = h.new_zeros(n, *h.shape[1:])
    return out.index_add_(0, segments, h)  # (B, D)


def segment_max(h: torch.Tensor, segments: torch.Tensor, n: int) -> torch.Tensor:
    index = segments.view(-1, *([1] * (h.ndim - 1))).expand_as(h)
    out = h.new_full((n, *h.shape[1:]), float("-inf"))
    return out.scatter_reduce(0, index, h, reduce="amax", include_self=True)


def segment_softmax(scores: torch.Tensor, segments: torch.Tensor, n: int):
    """Softmax of (N,) scores within each segment."""
    top = segment_max(scores[:, None], segments, n)[:, 0]  # (B,)
    weights = torch.exp(scores - top[segments])  # (N,)
    total = segment_sum(weights[:, None], segments, n)[:, 0]  # (B,)
    return weights / total[segments]


class MeanPooling(nn.Module):
    """The paper's pooling: the average of a gallery's image embeddings."""

    def __init__(self, dim: int):
        super().__init__()

    def forward(self, h, segments, n):
        counts = torch.bincount(segments, minlength=n).clamp(min=1)  # (B,)
        return segment_sum(h, segments, n) / counts[:, None].to(h.dtype)


class MaxPooling(nn.Module):
    """Element-wise maximum over a gallery's image embeddings."""

    def __init__(self, dim: int):
        super().__init__()

    def forward(self, h, segments, n):
        return segment_max(h, segments, n)


class AttentionPooling(nn.Module):
    """Learned attention pooling (Ilse, Tomczak & Welling, ICML 2018, eq. 9):
    weights ``a_i = softmax_i(w^T tanh(V h_i))`` within the gallery and
    ``z = sum_i a_i h_i``; a weighted mean whose weights are learned."""

    def __init__(self, dim: int, units: int = 128):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, units), nn.Tanh(), nn.Linear(units, 1)
        )

    def forward(self, h, segments, n):
        a = segment_softmax(self.score(h)[:, 0], segments, n)  # (N,)
        return segment_sum(a[:, None] * h, segments, n)  # (B, D)


POOLINGS = {"mean": MeanPooling, "max": MaxPooling, "attention": AttentionPooling}
