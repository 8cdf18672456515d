"""Retrieval over gallery embeddings with bucketed random-projection LSH.

The gallery paper (section 4, figure 1) ranks accommodations by the
proximity of their gallery embeddings to the embedding of a set of "seed"
images, with the bucketed random projection form of locality-sensitive
hashing (Indyk & Motwani 1998; the form of Spark's
``BucketedRandomProjectionLSH``): each hash is ``floor(v . x / r)`` for a
random Gaussian direction ``v`` and a bucket length ``r``; a table keys an
item by ``n_projections`` such hashes; a query's candidates are the items
sharing its key in at least one of ``n_tables`` tables, re-ranked by exact
cosine distance.
"""

from __future__ import annotations

import numbers
from collections import defaultdict

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array

from .._core.params import HasMethods, InstanceOf, Integer, Real, validate_params


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


class GalleryIndex:
    """Approximate cosine nearest neighbours of galleries.

    Embeddings are L2-normalized, so Euclidean buckets on the unit sphere
    follow cosine distance. Candidates come from the LSH buckets; when the
    buckets of a query hold fewer than ``n_neighbors`` items, the rest are
    filled by an exact scan (counted in ``n_exhaustive_``), so a query always
    returns ``n_neighbors`` results.

    Parameters
    ----------
    embedder : fitted GalleryEmbedder or None, default=None
        Turns galleries into embeddings for ``fit`` and ``kneighbors``; None
        means ``fit`` and ``kneighbors`` take embeddings (n, D) directly.
    n_tables : int, default=8
        Number of hash tables (more: higher recall, more candidates).
    n_projections : int, default=4
        Random projections per table (more: smaller buckets).
    bucket_length : float, default=1.0
        Width ``r`` of a bucket along each projection, in units of the
        normalized embeddings.
    n_neighbors : int, default=5
        Default number of neighbours of a query.
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    embeddings_ : ndarray (n, D)
        Normalized embeddings of the indexed galleries.
    n_exhaustive_ : int
        Queries so far whose buckets held too few candidates.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators import GalleryIndex
    >>> rng = np.random.RandomState(0)
    >>> E = rng.normal(size=(100, 16))
    >>> index = GalleryIndex(n_neighbors=3, random_state=0).fit(E)
    >>> distances, indices = index.kneighbors(E[:2])
    >>> indices[:, 0].tolist()  # each item is its own nearest neighbour
    [0, 1]
    """

    _parameter_constraints = {
        "embedder": [None, HasMethods("transform")],
        "n_tables": [Integer(1)],
        "n_projections": [Integer(1)],
        "bucket_length": [Real(0, None, closed="neither")],
        "n_neighbors": [Integer(1)],
        "random_state": [
            None,
            Integer(0, 2**32 - 1),
            InstanceOf(np.random.RandomState, description="a numpy RandomState"),
        ],
    }

    def __init__(
        self,
        embedder=None,
        n_tables: int = 8,
        n_projections: int = 4,
        bucket_length: float = 1.0,
        n_neighbors: int = 5,
        random_state=None,
    ):
        self.embedder = embedder
        self.n_tables = n_tables
        self.n_projections = n_projections
        self.bucket_length = bucket_length
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def _embed(self, X, argument: str) -> np.ndarray:
        if self.embedder is not None:
            X = self.embedder.transform(X)
        return check_array(X, dtype=np.float64, input_name=argument, estimator=self)

    def _keys(self, Z: np.ndarray) -> np.ndarray:
        codes = np.floor(Z @ self.projections_ / self.bucket_length)  # (n, T*P)
        return codes.astype(np.int64).reshape(len(Z), self.n_tables, self.n_projections)

    def fit(self, X) -> GalleryIndex:
        """Index galleries (or embeddings, without an embedder).

        Draws the random projections and builds the hash tables.

        Parameters
        ----------
        X : galleries, or array-like of shape (n_galleries, n_dims)
            Galleries in any form ``embedder.transform`` takes; without an
            embedder, their embeddings.

        Returns
        -------
        self
        """
        validate_params(self)
        Z = _unit(self._embed(X, "X"))
        rng = check_random_state(self.random_state)
        self.projections_ = rng.normal(
            size=(Z.shape[1], self.n_tables * self.n_projections)
        )
        self.embeddings_ = Z
        keys = self._keys(Z)
        self.tables_ = []
        for t in range(self.n_tables):
            table = defaultdict(list)
            for i, key in enumerate(map(tuple, keys[:, t])):
                table[key].append(i)
            self.tables_.append(dict(table))
        self.n_exhaustive_ = 0
        return self

    def kneighbors(
        self, X, n_neighbors: int | None = None, return_distance: bool = True
    ):
        """Approximate nearest indexed galleries of each query gallery.

        Parameters
        ----------
        X : galleries, or array-like of shape (n_queries, n_dims)
            Query galleries in any form ``embedder.transform`` takes; without
            an embedder, their embeddings (as many dimensions as the indexed
            ones).
        n_neighbors : int, optional
            Neighbours per query, from 1 to the number of indexed galleries;
            None uses the ``n_neighbors`` the index was built with.
        return_distance : bool, default=True
            Also return the distances.

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors)
            Cosine distances ``1 - cos``, nearest first; only returned with
            ``return_distance=True``.
        indices : ndarray of shape (n_queries, n_neighbors)
            Rows of the indexed galleries, nearest first.
        """
        if not hasattr(self, "embeddings_"):
            raise ValueError("This GalleryIndex is not fitted yet; call fit first.")
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if not isinstance(k, numbers.Integral) or not 1 <= k <= len(self.embeddings_):
            raise ValueError(
                f"n_neighbors must be an integer from 1 to the {len(self.embeddings_)} "
                f"indexed galleries, got {k!r}."
            )
        Q = _unit(self._embed(X, "X"))
        if Q.shape[1] != self.embeddings_.shape[1]:
            raise ValueError(
                f"X has {Q.shape[1]} dimensions but the index holds "
                f"{self.embeddings_.shape[1]}-dimensional embeddings; query with "
                "embeddings of the model that embedded the indexed galleries."
            )
        keys = self._keys(Q)
        distances = np.empty((len(Q), k))
        indices = np.empty((len(Q), k), dtype=np.int64)
        for q in range(len(Q)):
            found = set()
            for t, table in enumerate(self.tables_):
                found.update(table.get(tuple(keys[q, t]), ()))
            if len(found) < k:
                candidates = np.arange(len(self.embeddings_))
                self.n_exhaustive_ += 1
            else:
                candidates = np.fromiter(found, dtype=np.int64)
            d = 1.0 - self.embeddings_[candidates] @ Q[q]
            order = np.lexsort((candidates, d))[:k]
            distances[q], indices[q] = d[order], candidates[order]
        return (distances, indices) if return_distance else indices

    def query_images(
        self, images, n_neighbors: int | None = None, return_distance=True
    ):
        """Neighbours of a set of "seed" images (the paper's figure 1): the
        images are embedded as one gallery and that gallery is the query.

        Needs an ``embedder``.

        Parameters
        ----------
        images : sequence of images
            The seed images (numpy arrays, PIL images or file paths), one
            gallery.
        n_neighbors : int, optional
            As in :meth:`kneighbors`.
        return_distance : bool, default=True
            As in :meth:`kneighbors`.

        Returns
        -------
        distances, indices : ndarray of shape (1, n_neighbors)
            As in :meth:`kneighbors` (only ``indices`` with
            ``return_distance=False``).
        """
        if self.embedder is None:
            raise ValueError(
                "query_images needs an embedder; build the index with "
                "GalleryIndex(embedder=fitted_gallery_embedder)."
            )
        return self.kneighbors([list(images)], n_neighbors, return_distance)
