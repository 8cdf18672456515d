"""The gallery paper's family: GalleryEmbedder (a torchvision encoder,
permutation-invariant pooling over image galleries, per-task heads) and
GalleryIndex (retrieval over its embeddings)."""

from ._embedder import GalleryEmbedder
from ._index import GalleryIndex

__all__ = ["GalleryEmbedder", "GalleryIndex"]
