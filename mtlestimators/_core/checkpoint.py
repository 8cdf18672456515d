"""Resumable training: per-epoch checkpoints of a fit (``checkpoint_dir``).

After every completed epoch the net's full training state is written to
``checkpoint_dir`` (temporary file, then ``os.replace``, so a kill leaves the
previous checkpoint intact). A later fit with the same parameters and the
same data finds the file by its fingerprint, restores the state and trains
only the remaining epochs, ending with the same model as an uninterrupted
fit. A checkpoint is marked complete only when its fit really ended: all
``max_epochs`` trained, or an ``EarlyStopping`` callback stopped it.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import functools
import hashlib
import os
import random
import tempfile
import types
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

FORMAT = 2
_PREFIX = "mtl-checkpoint-"
# Parameters that do not change the trained model.
_IGNORED_PARAMS = ("checkpoint_dir", "verbose", "accelerator")
_HASH_CHUNK_BYTES = 16 * 2**20
_MAX_DEPTH = 8
_SCALARS = (type(None), bool, int, float, str, bytes)


def check_checkpoint_dir(checkpoint_dir):
    if checkpoint_dir is None or isinstance(checkpoint_dir, (str, os.PathLike)):
        return checkpoint_dir
    raise TypeError(
        "checkpoint_dir must be None or a directory path (str or os.PathLike), "
        f"got {checkpoint_dir!r}."
    )


def check_checkpoint_random_state(checkpoint_dir, random_state) -> None:
    if checkpoint_dir is not None and random_state is None:
        raise ValueError(
            "checkpoint_dir needs an int random_state so that a resumed fit can "
            "reproduce the interrupted one; set random_state=0 (or another int)."
        )


def cuda_rng_devices(device) -> list[int]:
    """The CUDA device whose generator training on ``device`` draws from:
    ``cuda:i`` uses device i, a bare ``cuda`` the current device."""
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [torch.cuda.current_device() if device.index is None else device.index]


def _qualname(obj) -> str:
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
    return f"{module}.{name}"


def _blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _array_digest(array) -> str:
    digest = hashlib.blake2b(digest_size=16)
    _hash_array(digest, array)
    return digest.hexdigest()


def _describe(value, depth: int = 0) -> str:
    """A text that is the same for equal settings in any process (no ids)."""
    if isinstance(value, _SCALARS):
        return repr(value)
    if isinstance(value, np.generic):
        return f"{value.dtype}:{value.item()!r}"
    if depth > _MAX_DEPTH:
        return _qualname(type(value))
    inner = functools.partial(_describe, depth=depth + 1)
    if isinstance(value, enum.Enum):
        return f"{_qualname(type(value))}.{value.name}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}({', '.join(inner(v) for v in value)})"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({', '.join(sorted(map(inner, value)))})"
    if isinstance(value, Mapping):
        items = sorted((inner(k), inner(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, type):
        return _qualname(value)
    if isinstance(value, functools.partial):
        return (
            f"partial({inner(value.func)}, {inner(value.args)}, "
            f"{inner(value.keywords)})"
        )
    if isinstance(value, types.FunctionType):
        # The name, and the code (two lambdas of one module differ there).
        code = value.__code__
        consts = tuple(c for c in code.co_consts if not isinstance(c, types.CodeType))
        body = _blake(code.co_code + inner(consts).encode())
        return f"function {_qualname(value)}:{body}:{inner(value.__defaults__)}"
    if isinstance(value, (types.BuiltinFunctionType, types.MethodType)):
        owner = getattr(value, "__self__", None)
        owner = (
            "" if owner is None or isinstance(owner, types.ModuleType) else inner(owner)
        )
        return f"callable {_qualname(value)}{owner}"
    if isinstance(value, np.random.RandomState):
        return f"RandomState:{inner(value.get_state(legacy=False))}"
    if isinstance(value, np.random.Generator):
        return f"Generator:{inner(value.bit_generator.state)}"
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"array:{_array_digest(value)}"
    if isinstance(value, torch.nn.Module):
        weights = inner(dict(value.state_dict()))
        return f"{_qualname(type(value))}:{value!r}:{_blake(weights.encode())}"
    # Objects (callbacks, splitters, estimators, scorers): their type and
    # settings. Fitted state (names ending in "_") is left out, so a used
    # callback describes as a fresh one.
    settings = None
    get_params = getattr(value, "get_params", None)
    if callable(get_params):
        with contextlib.suppress(Exception):
            settings = dict(get_params(deep=False))
    if hasattr(value, "__dict__"):
        public = settings is not None  # with get_params: public extras only
        extra = {
            k: v
            for k, v in vars(value).items()
            if not k.endswith("_") and not (public and k.startswith("_"))
        }
        settings = {**extra, **(settings or {})}
        kwargs = settings.get("kwargs")
        if isinstance(kwargs, Mapping) and kwargs.get("last_epoch") == -1:
            # skorch's LRScheduler adds last_epoch=-1 (torch's default) to
            # its kwargs when a fit starts.
            settings["kwargs"] = {k: v for k, v in kwargs.items() if k != "last_epoch"}
    if settings is not None:
        return f"{_qualname(type(value))}{inner(settings)}"
    text = repr(value)
    if " at 0x" in text:  # a default repr: only the type is stable
        return _qualname(type(value))
    return f"{_qualname(type(value))}:{text}"


def _hash_array(digest, array) -> None:
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
        return
    array = np.asarray(array)
    digest.update(f"{array.dtype}{array.shape}".encode())
    if array.dtype == object:
        digest.update(repr(array.tolist()).encode())
        return
    if array.ndim == 0 or array.flags.c_contiguous:
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        return
    # A strided view: hashed in blocks of rows (the same bytes as a copy).
    rows = max(1, _HASH_CHUNK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        block = np.ascontiguousarray(array[start : start + rows])
        digest.update(block.reshape(-1).view(np.uint8))


def _hash_data(digest, data) -> None:
    if isinstance(data, Mapping):
        for key in sorted(data):
            digest.update(str(key).encode())
            _hash_data(digest, data[key])
        return
    galleries = getattr(data, "galleries", None)
    if galleries is not None:  # a GalleryDataset: its images or files
        digest.update(f"gallery{len(galleries)}:{data.image_size}".encode())
        for gallery in galleries:
            digest.update(str(len(gallery)).encode())
            for image in gallery:
                if isinstance(image, (str, os.PathLike)):
                    # A file: its path, size and modification time.
                    digest.update(os.fsencode(image))
                    with contextlib.suppress(OSError):
                        stat = os.stat(image)
                        digest.update(f":{stat.st_size}:{stat.st_mtime_ns}".encode())
                else:
                    _hash_array(digest, np.asarray(image))
        return
    _hash_array(digest, data)


def fingerprint(params: dict, X, Y) -> str:
    """Hex digest of the library version, the estimator's parameters and the
    training data."""
    from .. import __version__

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"mtlestimators {__version__}; format {FORMAT};".encode())
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


@contextlib.contextmanager
def seeded_global_generators(seed: int):
    """Seed numpy's and Python's global generators for a fit and put the
    caller's states back afterwards (``torch.random.fork_rng`` does this for
    torch). A random ``train_split`` such as ``ValidSplit(0.2)`` draws from
    numpy's global generator: seeded, a resumed fit draws the same split."""
    numpy_state = np.random.get_state()  # noqa: NPY002
    python_state = random.getstate()
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)


def _is_plain(value) -> bool:
    if isinstance(value, (*_SCALARS, np.generic, np.ndarray, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _is_cache(value) -> bool:
    """A list of arrays or tensors: some batches' outputs."""
    return isinstance(value, list) and any(
        isinstance(v, (np.ndarray, torch.Tensor, list)) for v in value
    )


def callbacks_state(net) -> dict:
    """The callbacks' training state: their attributes ending in ``_`` that
    are plain data (EarlyStopping's ``misses_``, ``dynamic_threshold_``,
    ``best_model_weights_``, ...) or have a ``state_dict`` (an
    ``LRScheduler``'s ``lr_scheduler_``). Per-batch caches (lists of
    batches' outputs) and other objects are left out: each callback's
    ``on_train_begin`` rebuilds them."""
    state = {}
    for name, callback in getattr(net, "callbacks_", []):
        attrs = {}
        for attr, value in vars(callback).items():
            if attr.startswith("_") or not attr.endswith("_"):
                continue
            if isinstance(value, type):
                continue  # e.g. an LRScheduler's policy_ class
            if callable(getattr(value, "state_dict", None)) and callable(
                getattr(value, "load_state_dict", None)
            ):
                attrs[attr] = ("state_dict", copy.deepcopy(value.state_dict()))
            elif _is_plain(value) and not _is_cache(value):
                attrs[attr] = ("value", copy.deepcopy(value))
        state[name] = (_qualname(type(callback)), attrs)
    return state


def load_callbacks_state(net, state: dict) -> None:
    callbacks = dict(getattr(net, "callbacks_", []))
    for name, (kind, attrs) in state.items():
        callback = callbacks.get(name)
        if callback is None or _qualname(type(callback)) != kind:
            continue
        for attr, (how, value) in attrs.items():
            if how == "state_dict":
                target = getattr(callback, attr, None)
                if target is not None:
                    target.load_state_dict(value)
            else:
                setattr(callback, attr, value)


def stopped_early(net) -> bool:
    """Whether an ``EarlyStopping`` callback of ``net`` ended its training."""
    from skorch.callbacks import EarlyStopping

    return any(
        isinstance(callback, EarlyStopping)
        and getattr(callback, "misses_", 0) >= callback.patience
        for _, callback in getattr(net, "callbacks_", [])
    )


class Checkpointer:
    """Writes and restores the checkpoints of one fit.

    The net calls ``train_begin`` after its ``on_train_begin`` callbacks
    (where a resumed fit puts back the callbacks' state, which those callbacks
    have just reset), ``epoch_begin`` before every epoch's callbacks (where
    a resumed fit restores the random generators, at the point of the
    uninterrupted fit where the saved epoch ended, after the validation
    split is drawn) and ``epoch_end`` after every epoch's callbacks, also
    when one of them ended training with ``KeyboardInterrupt``.
    """

    def __init__(self, directory, key: str, cuda_devices=()):
        self.directory = Path(directory)
        self.key = key
        self.cuda_devices = list(cuda_devices)
        self.path = self.directory / f"{_PREFIX}{key}.pt"
        self._pending = None
        self._last = None
        self.saved_epoch = 0
        self.stopped = False

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files of this fingerprint that a killed write
        left behind (other fingerprints' files may be another process's
        write in progress, so they stay)."""
        for tmp in self.directory.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def load(self):
        """The stored checkpoint of this fit, or None (with a warning when
        the directory holds checkpoints of other fits)."""
        self.remove_stale_temporaries()
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
        self._pending = state
        self.saved_epoch = int(state["epoch"])
        self.stopped = bool(state["stopped"])
        return self.saved_epoch

    def train_begin(self, net) -> None:
        if self._pending is not None:
            load_callbacks_state(net, self._pending["callbacks"])
            # A callback's on_train_begin may have changed the optimizer
            # (an LRScheduler sets the learning rates when it builds its
            # scheduler): back to the saved state.
            net.optimizer_.load_state_dict(self._pending["optimizer"])

    def epoch_begin(self, net) -> None:
        if self._pending is not None:
            _set_rng_state(self._pending["rng"])
            self._pending = None

    def _snapshot(self, net, complete: bool) -> dict:
        scaler = getattr(net, "grad_scaler_", None)
        return {
            "format": FORMAT,
            "key": self.key,
            "epoch": len(net.history),
            "complete": complete,
            "stopped": self.stopped,
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "loss_weighter": net.loss_weighter_.state_dict(),
            "grad_scaler": None if scaler is None else scaler.state_dict(),
            "extra": net.checkpoint_extra(),
            "callbacks": callbacks_state(net),
            "history": [dict(row) for row in net.history],
            "rng": _rng_state(self.cuda_devices),
        }

    def epoch_end(self, net, stopped: bool = False) -> None:
        """Write the checkpoint of the epoch that just ended; ``stopped``:
        a callback ended training there on purpose (EarlyStopping)."""
        self.stopped = stopped
        self._last = self._snapshot(net, complete=False)
        self.write(self._last)
        self.saved_epoch = self._last["epoch"]

    def finish(self, net, max_epochs: int) -> bool:
        """After training: write the net's final state marked complete (a fit
        with the same parameters and data then loads it without training)
        when the fit really ended: all ``max_epochs`` epochs trained and
        checkpointed, or stopped early by a callback. An interrupted fit
        (``KeyboardInterrupt``) keeps its last epoch's checkpoint incomplete,
        so the same fit later trains the remaining epochs."""
        epochs = len(net.history)
        done = self.saved_epoch == epochs and (self.stopped or epochs >= max_epochs)
        if done:
            self.write(self._snapshot(net, complete=True))
        return done

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
