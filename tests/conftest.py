import os

import pytest
import torch

# Small models on 2 cores: more threads only add contention.
torch.set_num_threads(int(os.environ.get("MTL_TEST_THREADS", "2")))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.RandomState(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
