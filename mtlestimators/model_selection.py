"""Cross-validation of multi-task targets with missing labels.

scikit-learn's ``check_cv`` turns an integer ``cv`` of a classifier into a
:class:`~sklearn.model_selection.StratifiedKFold`, and to decide it reads y's
type with ``type_of_target``, which refuses NaN: ``GridSearchCV(model, grid,
cv=5)`` and ``cross_val_score(model, X, y, cv=5)`` fail before any fit when y
marks missing labels with NaN. :class:`MultiTaskStratifiedKFold` is the
splitter to pass instead: it reads NaN as "no label" and keeps the mix of
labels (missing ones included) alike across folds.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state

from ._core.targets import missing_mask, task_names_of

__all__ = ["MultiTaskStratifiedKFold"]


def _normalize_label(value):
    """A label as a plain Python value, so that 1, 1.0 and np.int64(1) fall
    in one stratum."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (numbers.Real, np.number)):
        as_float = float(value)
        return int(as_float) if as_float.is_integer() else as_float
    return value


class MultiTaskStratifiedKFold(BaseCrossValidator):
    """K-fold splitter stratified on multi-task labels, NaN allowed.

    Each row's stratum is its pattern of labels: the tuple of its labels over
    the tasks, a missing label (NaN, None or ``pandas.NA``) counting as a
    value of its own. The rows of each stratum are dealt to the folds in turn,
    so every fold gets its share of each pattern (and so of each task's
    classes and missing labels) and fold sizes differ by at most one row.
    With ``task`` the strata are the labels of that one task only.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    task : int, str or None, default=None
        Stratify on this task only: a column position, or a column name of a
        DataFrame y. None stratifies on the pattern of all tasks.
    shuffle : bool, default=False
        Shuffle the rows of each stratum before dealing them to the folds.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffle; used only when ``shuffle`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators.model_selection import MultiTaskStratifiedKFold
    >>> y = np.array([[0, 1], [0, 1], [1, np.nan], [1, np.nan], [1, 0], [1, 0]])
    >>> cv = MultiTaskStratifiedKFold(n_splits=2)
    >>> [test.tolist() for _, test in cv.split(np.zeros((6, 1)), y)]
    [[0, 2, 4], [1, 3, 5]]

    Pass it as ``cv=`` where an integer fails on NaN labels:
    ``GridSearchCV(model, grid, cv=MultiTaskStratifiedKFold(5))``.
    """

    def __init__(self, n_splits=5, *, task=None, shuffle=False, random_state=None):
        if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool):
            raise ValueError(f"n_splits must be an integer, got {n_splits!r}.")
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {n_splits}.")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}.")
        self.n_splits = int(n_splits)
        self.task = task
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for the scikit-learn splitter API.

        Returns
        -------
        int
        """
        return self.n_splits

    def split(self, X, y, groups=None):
        """Indices of the train and test rows of each fold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs; only their number of rows is used.
        y : array-like or DataFrame of shape (n_samples,) or (n_samples, K)
            Labels, NaN/None where missing.
        groups : object
            Ignored.

        Yields
        ------
        train : ndarray of int
            Rows of the training set of the fold.
        test : ndarray of int
            Rows of the test set of the fold.
        """
        yield from super().split(X, y, groups)

    def _strata(self, y) -> np.ndarray:
        labels = np.asarray(y, dtype=object)
        labels = labels.reshape(len(labels), -1)
        if self.task is not None:
            names = task_names_of(y, labels.shape[1])
            if isinstance(self.task, numbers.Integral) and not isinstance(
                self.task, bool
            ):
                if not -labels.shape[1] <= self.task < labels.shape[1]:
                    raise ValueError(
                        f"task={self.task} but y has {labels.shape[1]} column(s)."
                    )
                labels = labels[:, [self.task]]
            elif str(self.task) in names:
                labels = labels[:, [names.index(str(self.task))]]
            else:
                raise ValueError(
                    f"task={self.task!r} is not a column of y; y's columns are {names}."
                )
        missing = missing_mask(labels)
        # One code per (task, label) pair, a missing label a value of its own.
        values = np.empty(labels.shape, dtype=int)
        for k in range(labels.shape[1]):
            column = [
                "<missing>" if m else repr(_normalize_label(v))
                for v, m in zip(labels[:, k], missing[:, k])
            ]
            _, values[:, k] = np.unique(
                np.array(column, dtype=str), return_inverse=True
            )
        offsets = np.concatenate([[0], np.cumsum(values.max(axis=0) + 1)[:-1]])
        label_ids = values + offsets
        _, strata = np.unique(values, axis=0, return_inverse=True)
        return strata.reshape(-1), label_ids

    def _iter_test_indices(self, X=None, y=None, groups=None):
        if y is None:
            raise ValueError("MultiTaskStratifiedKFold needs y to stratify on.")
        n_samples = len(y)
        k = self.n_splits
        if k > n_samples:
            raise ValueError(
                f"Cannot have n_splits={k} greater than the number "
                f"of samples: n_samples={n_samples}."
            )
        strata, label_ids = self._strata(y)
        rng = check_random_state(self.random_state) if self.shuffle else None
        # Each stratum gives every fold the same number of rows; the rows
        # left over (fewer than n_splits per stratum) go one at a time to the
        # fold that lacks most of their labels, keeping fold sizes within
        # one row of each other.
        n_labels = int(label_ids.max()) + 1
        wanted = np.bincount(label_ids.ravel(), minlength=n_labels) / k
        have = np.zeros((k, n_labels))
        size = np.zeros(k, dtype=int)
        full, extra = divmod(n_samples, k)
        fold = np.empty(n_samples, dtype=int)
        for code in np.unique(strata):
            rows = np.flatnonzero(strata == code)
            if rng is not None:
                rows = rng.permutation(rows)
            n_even = len(rows) - len(rows) % k
            fold[rows[:n_even]] = np.arange(n_even) % k
            ids = label_ids[rows[0]]
            have[:, ids] += n_even // k
            size += n_even // k
            for row in rows[n_even:]:
                n_big = int((size > full).sum())
                open_ = (size < full) | ((size == full) & (n_big < extra))
                need = (wanted[ids] - have[:, ids]).sum(axis=1)
                need = np.where(open_, need, -np.inf)
                best = np.flatnonzero(need == need.max())
                chosen = best[np.argmin(size[best])]
                fold[row] = chosen
                have[chosen, ids] += 1
                size[chosen] += 1
        for f in range(k):
            yield np.flatnonzero(fold == f)
