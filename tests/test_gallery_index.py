import numpy as np
import pytest

from mtlestimators import GalleryEmbedder, GalleryIndex


def _clustered(n=600, dim=32, clusters=30, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(size=(clusters, dim))
    return centres[rng.randint(clusters, size=n)] + 0.3 * rng.normal(size=(n, dim))


def _exact(Z, k):
    unit = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    return np.argsort(-(unit @ unit.T), axis=1, kind="stable")[:, :k]


def test_recall_at_10_against_exact_cosine_neighbours():
    Z = _clustered()
    index = GalleryIndex(n_tables=8, n_projections=4, random_state=0).fit(Z)
    distances, approx = index.kneighbors(Z, n_neighbors=10)
    exact = _exact(Z, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.88
    assert index.n_exhaustive_ == 0  # every answer came from the buckets
    assert np.all(np.diff(distances, axis=1) >= -1e-12)  # nearest first
    # It is approximate: a query's buckets hold a small part of the index.
    keys = index._keys(index.embeddings_)
    found = [
        len(set().union(*(t[tuple(keys[q, i])] for i, t in enumerate(index.tables_))))
        for q in range(len(Z))
    ]
    assert np.mean(found) < 0.2 * len(Z)


def test_distances_are_cosine_distances():
    Z = _clustered(100)
    index = GalleryIndex(n_neighbors=3, random_state=0).fit(Z)
    distances, indices = index.kneighbors(Z[:5])
    unit = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    expected = 1 - np.sum(unit[:5, None] * unit[indices], axis=2)
    np.testing.assert_allclose(distances, expected, atol=1e-12)
    np.testing.assert_array_equal(indices[:, 0], np.arange(5))


def test_too_few_candidates_fall_back_to_an_exact_scan():
    Z = _clustered(50)
    index = GalleryIndex(
        n_tables=1, n_projections=8, bucket_length=0.01, random_state=0
    )
    far = index.fit(Z).kneighbors(-Z[:2], n_neighbors=5, return_distance=False)
    assert far.shape == (2, 5) and index.n_exhaustive_ == 2
    unit = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    exact = np.argsort(unit @ unit[:2].T, axis=0, kind="stable")[:5].T
    np.testing.assert_array_equal(far, exact)


def test_queries_by_gallery_and_by_seed_images():
    rng = np.random.RandomState(0)
    bright = [
        rng.randint(180, 256, size=(4, 10, 10), dtype=np.uint8) for _ in range(20)
    ]
    dark = [rng.randint(0, 60, size=(4, 10, 10), dtype=np.uint8) for _ in range(20)]
    galleries = bright + dark
    y = np.r_[np.ones(20), np.zeros(20)]
    embedder = GalleryEmbedder(
        backbone="small_vgg",
        image_size=10,
        lr=1e-3,
        max_epochs=3,
        verbose=0,
        random_state=0,
    ).fit(galleries, y)
    index = GalleryIndex(embedder, n_neighbors=5, random_state=0).fit(galleries)
    by_gallery = index.kneighbors(galleries[:1], return_distance=False)
    assert by_gallery[0, 0] == 0
    seeds = [rng.randint(0, 60, size=(10, 10), dtype=np.uint8) for _ in range(3)]
    _, by_seeds = index.query_images(seeds)
    assert np.all(by_seeds >= 20)  # dark seed images find dark galleries


def test_bad_index_use_is_explained():
    Z = _clustered(20)
    with pytest.raises(ValueError, match="not fitted"):
        GalleryIndex().kneighbors(Z)
    with pytest.raises(ValueError, match="n_neighbors must be"):
        GalleryIndex().fit(Z).kneighbors(Z, n_neighbors=21)
    with pytest.raises(ValueError, match="X has 3 dimensions"):
        GalleryIndex().fit(Z).kneighbors(Z[:, :3])
    with pytest.raises(ValueError, match="bucket_length"):
        GalleryIndex(bucket_length=0).fit(Z)
    with pytest.raises(ValueError, match="needs an embedder"):
        GalleryIndex().fit(Z).query_images([np.zeros((4, 4))])
