"""Tensor-resident data path for skorch.

skorch's default data path builds each batch row by row through a ``Dataset``
and ``default_collate``; on tabular data that is most of the training time.
Here the inputs are converted to tensors once per fit (on the net's device)
and every batch is one indexed slice of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, Subset


def _as_tensor(data, device):
    if isinstance(data, Mapping):
        return {k: _as_tensor(v, device) for k, v in data.items()}
    if isinstance(data, torch.Tensor):
        return data.to(device)
    array = np.asarray(data)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    elif not array.flags.writeable:  # e.g. a read-only memmap or pandas view
        array = array.copy()
    return torch.as_tensor(array, device=device)


def _take(data, index):
    if isinstance(data, Mapping):
        return {k: v[index] for k, v in data.items()}
    return data[index]


def _length(data) -> int:
    if isinstance(data, Mapping):
        return len(next(iter(data.values())))
    return len(data)


class TensorData(Dataset):
    """X (a tensor or a dict of tensors) and optional y, held as tensors."""

    def __init__(self, X, y=None, device="cpu"):
        self.X = _as_tensor(X, device)
        self.y = None if y is None else _as_tensor(y, device)
        n = _length(self.X)
        if self.y is not None and len(self.y) != n:
            raise ValueError(f"X has {n} rows but y has {len(self.y)}.")

    def __len__(self) -> int:
        return _length(self.X)

    @property
    def device(self) -> torch.device:
        first = next(iter(self.X.values())) if isinstance(self.X, Mapping) else self.X
        return first.device

    def __getitem__(self, index):
        y = None if self.y is None else self.y[index]
        return _take(self.X, index), y

    def rows(self, index):
        """X at ``index`` (a slice or an index tensor)."""
        return _take(self.X, index)

    def batch(self, index: torch.Tensor):
        """One batch ``(X[index], y[index])``; y is a placeholder when absent."""
        X = self.rows(index)
        y = (
            torch.zeros(len(index), device=index.device)
            if self.y is None
            else self.y[index]
        )
        return X, y


def _same_in_every_process(order: torch.Tensor, device) -> torch.Tensor:
    """``order`` as drawn in the first process of the running process group
    (broadcast from it), so every process shards the same permutation even
    if their random generators drifted apart; unchanged without a group."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return order
    if dist.get_world_size() < 2:
        return order
    order = order.to(device)
    dist.broadcast(order, src=0)
    return order


class TensorBatchIterator:
    """Yields ``(X_batch, y_batch)`` slices of a :class:`TensorData`.

    Accepts a ``torch.utils.data.Subset`` of a ``TensorData`` too, which is
    what skorch's ``ValidSplit`` hands over. Shuffling draws from torch's
    global generator, which the estimators seed from ``random_state``.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
    ):
        if isinstance(dataset, Subset):
            base, indices = dataset.dataset, torch.as_tensor(dataset.indices)
        else:
            base, indices = dataset, None
        if not isinstance(base, TensorData):
            raise TypeError(
                "TensorBatchIterator needs a TensorData dataset; got "
                f"{type(base).__name__}."
            )
        self.data = base
        self.indices = indices
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        # (process index, number of processes) for data parallel training:
        # each process takes its stride of the order (broadcast from the
        # first process), padded by wrapping as torch's DistributedSampler
        # does, so every process runs the same number of batches; rows
        # trained per process and epoch: ceil(n / processes).
        self.shard = None

    def _count(self) -> int:
        n = len(self.data) if self.indices is None else len(self.indices)
        if self.shard is not None:
            return -(-n // self.shard[1])
        return n

    def __len__(self) -> int:
        n = self._count()
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __iter__(self):
        device = self.data.device
        n = len(self.data) if self.indices is None else len(self.indices)
        if self.shuffle:
            order = torch.randperm(n)
        else:
            order = torch.arange(n)
        if self.indices is not None:
            order = self.indices[order]
        if self.shard is not None:
            order = _same_in_every_process(order, device)
            index, count = self.shard
            per_process = -(-n // count)
            copies = -(-per_process * count // max(n, 1))
            order = order.repeat(copies)[: per_process * count]
            order = order[index::count]
            n = per_process
        order = order.to(device)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield self.data.batch(order[start : start + self.batch_size])
