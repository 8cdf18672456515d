"""Invariances of gallery embeddings (hypothesis).

Batched float math may differ from one-at-a-time math in the last bits
(the convolutions run over batches of other shapes), so embeddings are
compared at 1e-5.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlestimators import GalleryEmbedder

ATOL = 1e-5


def _pool(n=60, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, size=(n, 10, 10), dtype=np.uint8)


@pytest.fixture(scope="module", params=["mean", "max", "attention"])
def embedder(request):
    rng = np.random.RandomState(0)
    images = _pool()
    galleries = [images[rng.choice(60, size=k)] for k in rng.randint(1, 8, size=40)]
    y = np.column_stack([rng.randint(0, 2, 40), rng.normal(size=40)])
    emb = GalleryEmbedder(
        backbone="small_vgg",
        image_size=10,
        pooling=request.param,
        lr=1e-3,
        max_epochs=2,
        verbose=0,
        random_state=0,
    )
    return emb.fit(galleries, y)


galleries_strategy = st.lists(
    st.lists(st.integers(0, 59), min_size=1, max_size=9), min_size=1, max_size=12
)


def _build(index_lists):
    images = _pool()
    return [images[index] for index in index_lists]


@settings(max_examples=15, deadline=None)
@given(index_lists=galleries_strategy, seed=st.integers(0, 2**16))
def test_embedding_ignores_the_order_of_images_in_a_gallery(
    embedder, index_lists, seed
):
    rng = np.random.RandomState(seed)
    shuffled = [rng.permutation(index) for index in index_lists]
    np.testing.assert_allclose(
        embedder.transform(_build(shuffled)),
        embedder.transform(_build(index_lists)),
        atol=ATOL,
    )


@settings(max_examples=15, deadline=None)
@given(
    index_lists=galleries_strategy,
    seed=st.integers(0, 2**16),
    batch_size=st.integers(1, 12),
)
def test_embedding_ignores_the_order_and_grouping_of_galleries(
    embedder, index_lists, seed, batch_size
):
    galleries = _build(index_lists)
    order = np.random.RandomState(seed).permutation(len(galleries))
    reference = embedder.transform(galleries)
    embedder.set_params(batch_size=batch_size)
    try:
        permuted = embedder.transform([galleries[i] for i in order])
    finally:
        embedder.set_params(batch_size=16)
    np.testing.assert_allclose(permuted, reference[order], atol=ATOL)


@settings(max_examples=15, deadline=None)
@given(index_lists=galleries_strategy)
def test_packed_batch_equals_one_gallery_at_a_time(embedder, index_lists):
    galleries = _build(index_lists)
    packed = embedder.transform(galleries)
    one_by_one = np.vstack([embedder.transform([g]) for g in galleries])
    np.testing.assert_allclose(packed, one_by_one, atol=ATOL)


def test_segment_pooling_matches_a_loop_over_galleries():
    import torch

    from mtlestimators.gallery._pooling import POOLINGS

    torch.manual_seed(0)
    lengths = torch.tensor([3, 1, 5])
    h = torch.randn(int(lengths.sum()), 4)
    segments = torch.repeat_interleave(torch.arange(3), lengths)
    for name, reduce in [("mean", torch.mean), ("max", torch.amax)]:
        pooled = POOLINGS[name](4)(h, segments, 3)
        expected = torch.stack(
            [reduce(part, dim=0) for part in h.split(lengths.tolist())]
        )
        torch.testing.assert_close(pooled, expected)
    attention = POOLINGS["attention"](4)
    weights = torch.softmax(attention.score(h)[:, 0].split(lengths.tolist())[2], dim=0)
    expected = (weights[:, None] * h.split(lengths.tolist())[2]).sum(0)
    torch.testing.assert_close(attention(h, segments, 3)[2], expected)
