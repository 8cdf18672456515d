"""Resumable training: per-epoch checkpoints of a fit (``checkpoint_dir``).

After every completed epoch the net's full training state is written to
``checkpoint_dir`` (temporary file, then ``os.replace``, so a kill leaves the
previous checkpoint intact). A later fit with the same parameters and the
same data finds the file by its fingerprint, restores the state and trains
only the remaining epochs, ending with the same model as an uninterrupted
fit.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
_PREFIX = "mtl-checkpoint-"
# Parameters that do not change the trained model.
_IGNORED_PARAMS = ("checkpoint_dir", "verbose", "accelerator")
_FULL_HASH_BYTES = 64 * 2**20


def check_checkpoint_dir(checkpoint_dir):
    if checkpoint_dir is None or isinstance(checkpoint_dir, (str, os.PathLike)):
        return checkpoint_dir
    raise TypeError(
        "checkpoint_dir must be None or a directory path (str or os.PathLike), "
        f"got {checkpoint_dir!r}."
    )


def _describe(value) -> str:
    """A text that is the same for equal settings in any process (no ids)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_describe(v) for v in value)
        return f"{type(value).__name__}({inner})"
    if isinstance(value, Mapping):
        items = sorted((str(k), _describe(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, torch.nn.Module):
        return f"{type(value).__qualname__}:{value!r}"
    # Objects (callbacks, splitters, a RandomState): their type and their
    # plain settings.
    settings = {
        k: v
        for k, v in sorted(getattr(value, "__dict__", {}).items())
        if not k.startswith("_")
        and isinstance(v, (type(None), bool, int, float, str, tuple))
    }
    return f"{type(value).__qualname__}{_describe(settings)}"


def _hash_array(digest, array) -> None:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    digest.update(f"{array.dtype}{array.shape}".encode())
    if array.dtype == object:
        digest.update(repr(array.tolist()).encode())
        return
    if array.nbytes > _FULL_HASH_BYTES and array.ndim > 0:
        # A large array: its sum and 4096 evenly spread rows.
        rows = np.linspace(0, len(array) - 1, 4096).astype(int)
        digest.update(np.ascontiguousarray(array[rows]).tobytes())
        digest.update(repr(float(np.nansum(array, dtype=np.float64))).encode())
    else:
        digest.update(np.ascontiguousarray(array).tobytes())


def _hash_data(digest, data) -> None:
    if isinstance(data, Mapping):
        for key in sorted(data):
            digest.update(str(key).encode())
            _hash_data(digest, data[key])
        return
    galleries = getattr(data, "galleries", None)
    if galleries is not None:  # a GalleryDataset: its images or paths
        digest.update(f"gallery{len(galleries)}:{data.image_size}".encode())
        for gallery in galleries:
            digest.update(str(len(gallery)).encode())
            for image in gallery:
                if isinstance(image, (str, os.PathLike)):
                    digest.update(os.fsencode(image))
                else:
                    _hash_array(digest, np.asarray(image))
        return
    _hash_array(digest, data)


def fingerprint(params: dict, X, Y) -> str:
    """Hex digest of the estimator's parameters and the training data."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(params):
        if name not in _IGNORED_PARAMS:
            digest.update(f"{name}={_describe(params[name])};".encode())
    _hash_data(digest, X)
    _hash_data(digest, Y)
    return digest.hexdigest()


def _rng_state(cuda_devices) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": {d: torch.cuda.get_rng_state(d) for d in cuda_devices},
        "numpy": np.random.get_state(),  # noqa: NPY002 (the global state)
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    for device, value in state["cuda"].items():
        torch.cuda.set_rng_state(value, device)
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])


class Checkpointer:
    """Writes and restores the checkpoints of one fit.

    The net calls ``train_begin`` after its ``on_train_begin`` callbacks
    (where a resumed fit restores the random generators, at the point of the
    uninterrupted fit where the saved epoch ended) and ``epoch_end`` after
    every epoch's callbacks.
    """

    def __init__(self, directory, key: str, cuda_devices=()):
        self.directory = Path(directory)
        self.key = key
        self.cuda_devices = list(cuda_devices)
        self.path = self.directory / f"{_PREFIX}{key}.pt"
        self._pending_rng = None
        self._last = None

    def load(self):
        """The stored checkpoint of this fit, or None (with a warning when
        the directory holds checkpoints of other fits)."""
        if not self.path.exists():
            others = sorted(self.directory.glob(f"{_PREFIX}*.pt"))
            if others:
                warnings.warn(
                    f"checkpoint_dir {str(self.directory)!r} holds "
                    f"{len(others)} checkpoint(s) of fits with other "
                    "parameters or data; this fit starts from scratch and "
                    f"writes its own ({self.path.name}).",
                    UserWarning,
                    stacklevel=5,
                )
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("format") != FORMAT or state.get("key") != self.key:
            raise ValueError(
                f"{str(self.path)!r} is not a checkpoint of this fit (another "
                "format or fingerprint); delete it to start over."
            )
        return state

    def restore(self, net, state: dict) -> int:
        """Put ``state`` into the initialized ``net``; returns the epochs done."""
        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        net.loss_weighter_.load_state_dict(state["loss_weighter"])
        scaler = getattr(net, "grad_scaler_", None)
        if scaler is not None and state["grad_scaler"] is not None:
            scaler.load_state_dict(state["grad_scaler"])
        net.load_checkpoint_extra(state["extra"])
        net.history.clear()
        net.history.extend(state["history"])
        self._pending_rng = state["rng"]
        return int(state["epoch"])

    def train_begin(self, net) -> None:
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None

    def epoch_end(self, net) -> None:
        scaler = getattr(net, "grad_scaler_", None)
        self._last = {
            "format": FORMAT,
            "key": self.key,
            "epoch": len(net.history),
            "complete": False,
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "loss_weighter": net.loss_weighter_.state_dict(),
            "grad_scaler": None if scaler is None else scaler.state_dict(),
            "extra": net.checkpoint_extra(),
            "history": [dict(row) for row in net.history],
            "rng": _rng_state(self.cuda_devices),
        }
        self.write(self._last)

    def mark_complete(self, state=None) -> None:
        """Rewrite the last checkpoint with ``complete=True``: a fit with the
        same parameters and data then loads it without training."""
        state = state if state is not None else getattr(self, "_last", None)
        if state is not None and not state["complete"]:
            state["complete"] = True
            self.write(state)

    def write(self, state: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.directory, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
