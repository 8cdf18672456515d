"""Resumable training: per-epoch checkpoints of a fit (``checkpoint_dir``).

After every completed epoch the net's full training state is written to
``checkpoint_dir`` (temporary file, then ``os.replace``, so a kill leaves the
previous checkpoint intact). A later fit with the same parameters and the
same data finds the file by its fingerprint, restores the state and trains
only the remaining epochs, ending with the same model as an uninterrupted
fit. A checkpoint is marked complete only when its fit really ended: all
``max_epochs`` trained, or an ``EarlyStopping`` callback stopped it.

Loading a checkpoint runs no code, whatever the file holds. The file stays a
``torch.save`` zip archive named ``mtl-checkpoint-<fingerprint>.pt`` (so
``torch.load`` still opens it for inspection), but of a dict of plain values
only: the module's state_dict, a flat table of every other tensor, the rest
of the state as one JSON document whose tensors are references into that
table (RNG states, optimizer param_groups, history, callbacks' state: no
pickled objects) and a SHA-256 over all of it. safetensors would hold the
tensors too, but the archive keeps ``mtl-checkpoint-*.pt`` readable by
``torch.load`` as before, with the same safety: before anything is
deserialized the file's size, zip structure and CRCs are checked and the
pickle's opcodes are scanned against an allow-list (tensors, storages,
``OrderedDict``; no other global, no object construction), and only then is
it read with ``torch.load(weights_only=True)``, torch's restricted unpickler.
Its format, hash and fingerprint are checked before any value is used. A
file under this fit's name that fails any check raises one ``ValueError``
that names the file, says why, and says to delete it (nothing in it was
loaded); a fit never overwrites a file it could not verify as its own.
Checkpoints of the previous format (pickles of arbitrary objects) have other
fingerprints (the format is hashed into them), so they are never opened.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import enum
import functools
import hashlib
import io
import json
import os
import pickletools
import random
import re
import tempfile
import types
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

FORMAT = 3  # 3: plain values + JSON + SHA-256 (2 was a pickle of objects)
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
    if isinstance(value, np.ndarray):
        return _storable_dtype(value.dtype)  # not objects: a checkpoint has none
    if isinstance(value, (*_SCALARS, np.generic, torch.Tensor)):
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


# ------------------------------------------------------------ the file format
# A checkpoint file is ``torch.save`` of this dict and nothing else:
#   format, key, epoch, complete, stopped   plain values (for inspection too)
#   module     the module's state_dict, name -> tensor
#   tensors    every other tensor of the state, name -> tensor
#   document   the rest of the state as JSON; a tensor is {"__mtl__": "tensor",
#              "name": ...} (a key of ``tensors``), and tuples, non-str-keyed
#              dicts, OrderedDicts, numpy arrays and scalars and bytes are
#              tagged the same way, so that they come back as they were
#   sha256     over all of the above (``_content_digest``)
_FILE_KEYS = frozenset(
    {"format", "key", "epoch", "complete", "stopped", "module", "tensors"}
    | {"document", "sha256"}
)
_TAG = "__mtl__"
_ZIP_MAGIC = b"PK\x03\x04"
# The only globals a checkpoint's pickle may name: what torch.save writes for
# a dict of dense tensors (the tensor rebuild functions, the storages, the
# dtypes of v3-rebuilt tensors such as uint16 or float8, OrderedDict).
_ALLOWED_GLOBALS = frozenset(
    {
        "torch._utils _rebuild_tensor_v2",
        "torch._utils _rebuild_tensor_v3",
        "torch.storage UntypedStorage",
        "collections OrderedDict",
    }
)
_TORCH_GLOBAL = re.compile(r"torch ([A-Za-z0-9_]+)")


def _allowed_global(name: str) -> bool:
    if name in _ALLOWED_GLOBALS:
        return True
    match = _TORCH_GLOBAL.fullmatch(name)
    if match is None:
        return False
    attr = match.group(1)
    if attr.endswith("Storage"):  # torch.FloatStorage, torch.ByteStorage, ...
        return True
    return isinstance(vars(torch).get(attr), torch.dtype)  # no getattr hooks


# Opcodes that build objects from names on the stack or a registry; torch.save
# (protocol 2) never writes them for plain data.
_REFUSED_OPCODES = frozenset({"INST", "OBJ", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4"})


class UnusableCheckpoint(Exception):
    """Why a file cannot be used as this fit's checkpoint (internal)."""


def _storable_dtype(dtype) -> bool:
    return not dtype.hasobject and dtype.fields is None


class _Encoder:
    """State -> JSON-able values, tensors moved to a table of their own."""

    def __init__(self):
        self.tensors: dict = {}

    def encode(self, value, where: str):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):  # before float: np.float64 is one
            return {_TAG: "scalar", "dtype": value.dtype.str, "value": value.item()}
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided or value.is_quantized:
                raise TypeError(
                    f"checkpoint_dir: the training state {where} is a "
                    f"{value.layout} tensor; a checkpoint stores dense tensors "
                    "only. Fit with checkpoint_dir=None."
                )
            name = (
                where if where not in self.tensors else f"{where}#{len(self.tensors)}"
            )
            self.tensors[name] = value.detach()
            return {_TAG: "tensor", "name": name}
        if isinstance(value, np.ndarray) and _storable_dtype(value.dtype):
            data = np.ascontiguousarray(value).tobytes()
            return {
                _TAG: "array",
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "base64": base64.b64encode(data).decode("ascii"),
            }
        if isinstance(value, bytes):
            return {_TAG: "bytes", "base64": base64.b64encode(value).decode("ascii")}
        if isinstance(value, list):
            return [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            items = [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]
            return {_TAG: "tuple", "items": items}
        if isinstance(value, Mapping):
            plain = type(value) is dict and _TAG not in value
            if plain and all(isinstance(k, str) for k in value):
                return {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}
            encoded = {
                _TAG: "odict" if isinstance(value, collections.OrderedDict) else "dict",
                "items": [
                    [self.encode(k, f"{where}.key"), self.encode(v, f"{where}.{k}")]
                    for k, v in value.items()
                ],
            }
            metadata = getattr(value, "_metadata", None)  # a state_dict's versions
            if metadata is not None:
                encoded["metadata"] = self.encode(metadata, f"{where}._metadata")
            return encoded
        raise TypeError(
            f"checkpoint_dir: the training state {where} is a "
            f"{type(value).__name__}, which a checkpoint does not store (tensors, "
            "numpy arrays, numbers, strings, bytes, lists, tuples and dicts "
            "only; no pickled objects). Record plain values, or fit with "
            "checkpoint_dir=None."
        )


def _decode(value, tensors: Mapping):
    """The inverse of ``_Encoder.encode``; any malformed part raises."""
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v, tensors) for k, v in value.items()}
    if tag == "tensor":
        return tensors[value["name"]]
    if tag == "tuple":
        return tuple(_decode(v, tensors) for v in value["items"])
    if tag in ("dict", "odict"):
        cls = collections.OrderedDict if tag == "odict" else dict
        result = cls(
            (_decode(k, tensors), _decode(v, tensors)) for k, v in value["items"]
        )
        if "metadata" in value:
            result._metadata = _decode(value["metadata"], tensors)
        return result
    if tag == "scalar":
        return np.dtype(value["dtype"]).type(value["value"])
    if tag == "array":
        dtype = np.dtype(value["dtype"])
        if not _storable_dtype(dtype):
            raise ValueError(f"an array of dtype {dtype}")
        data = base64.b64decode(value["base64"], validate=True)
        return np.frombuffer(data, dtype=dtype).reshape(value["shape"]).copy()
    if tag == "bytes":
        return base64.b64decode(value["base64"], validate=True)
    raise ValueError(f"an unknown entry {tag!r}")


def _content_digest(saved: Mapping) -> str:
    """SHA-256 of everything in a checkpoint file's dict but the digest."""
    digest = hashlib.sha256()
    header = {k: saved[k] for k in ("format", "key", "epoch", "complete", "stopped")}
    digest.update(json.dumps(header, sort_keys=True).encode())
    document = saved["document"].encode()
    digest.update(f";document {len(document)}:".encode() + document)
    for section in ("module", "tensors"):
        for name, tensor in saved[section].items():
            digest.update(f";{section} {len(name)}:{name}".encode())
            _hash_array(digest, tensor)
    return digest.hexdigest()


def _to_file_dict(state: dict) -> dict:
    """The internal state (``Checkpointer._snapshot``) as a file's dict."""
    module = state["module"]
    if not all(isinstance(v, torch.Tensor) for v in module.values()):
        raise TypeError(
            "checkpoint_dir: the module's state_dict holds values other than "
            "tensors (an extra state), which a checkpoint does not store; fit "
            "with checkpoint_dir=None."
        )
    encoder = _Encoder()
    rest = {
        k: v
        for k, v in state.items()
        if k not in ("format", "key", "epoch", "complete", "stopped", "module")
    }
    rest["module_metadata"] = getattr(module, "_metadata", None)
    document = json.dumps(encoder.encode(rest, "state"), allow_nan=True)
    saved = {
        "format": FORMAT,
        "key": state["key"],
        "epoch": int(state["epoch"]),
        "complete": bool(state["complete"]),
        "stopped": bool(state["stopped"]),
        "module": {name: tensor.detach() for name, tensor in module.items()},
        "tensors": encoder.tensors,
        "document": document,
    }
    saved["sha256"] = _content_digest(saved)
    return saved


def _check_pickle(data: bytes) -> None:
    """Scan a pickle's opcodes (no object is built) for names outside the
    allow-list."""
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in _REFUSED_OPCODES:
            raise UnusableCheckpoint(
                f"its pickle uses the {opcode.name} opcode, which a checkpoint "
                "never holds (a foreign or malicious file)"
            )
        if opcode.name == "GLOBAL":
            name = str(arg)
            if not _allowed_global(name):
                raise UnusableCheckpoint(
                    f"its pickle names {name!r}, which a checkpoint never "
                    "holds (a foreign or malicious file)"
                )


def _check_archive(raw: bytes) -> None:
    """Size, zip structure, CRCs and the pickle's opcodes of a file's bytes;
    nothing is deserialized."""
    size = len(raw)
    if size == 0:
        raise UnusableCheckpoint("it is empty")
    if raw[: len(_ZIP_MAGIC)] != _ZIP_MAGIC:
        raise UnusableCheckpoint("it is not a checkpoint file (no zip archive header)")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            # torch.save stores its members uncompressed: anything else is
            # foreign (and is not decompressed: no zip bombs).
            packed = [
                i.filename
                for i in archive.infolist()
                if i.compress_type != zipfile.ZIP_STORED or i.file_size > size
            ]
            if packed:
                raise UnusableCheckpoint(
                    f"it is a zip archive with compressed members ({packed[0]}), "
                    "not a torch.save file"
                )
            damaged = archive.testzip()
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            data = archive.read(pickles[0]) if len(pickles) == 1 else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnusableCheckpoint(
            f"it is truncated or damaged (not a complete zip archive: {exc})"
        ) from None
    if damaged is not None:
        raise UnusableCheckpoint(f"it is damaged (a CRC check failed in {damaged})")
    if data is None:
        raise UnusableCheckpoint("it is a zip archive but not a torch.save file")
    try:
        _check_pickle(data)
    except UnusableCheckpoint:
        raise
    except Exception as exc:  # pickletools on malformed data
        raise UnusableCheckpoint(f"its pickle is damaged ({exc})") from None


def _from_file(path: Path, key: str) -> dict:
    """The internal state stored in ``path`` for the fit ``key``; raises
    ``UnusableCheckpoint`` with the reason when the file fails a check."""
    # Read once: the bytes that were checked are the bytes that are loaded
    # (a file swapped between the check and the load is never read).
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnusableCheckpoint(f"it cannot be read ({exc})") from None
    _check_archive(raw)
    try:
        saved = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnusableCheckpoint(f"torch could not read it ({exc})") from None
    if not isinstance(saved, dict) or set(saved) != _FILE_KEYS:
        found = (
            sorted(map(repr, saved))[:12]
            if isinstance(saved, dict)
            else type(saved).__name__
        )
        raise UnusableCheckpoint(f"it does not hold a checkpoint's entries ({found})")
    if type(saved["format"]) is not int or saved["format"] != FORMAT:
        raise UnusableCheckpoint(
            f"it is of checkpoint format {saved['format']!r}; this version "
            f"reads format {FORMAT}"
        )
    try:
        valid = (
            isinstance(saved["key"], str)
            and isinstance(saved["document"], str)
            and isinstance(saved["sha256"], str)
            and all(
                isinstance(saved[s], dict)
                and all(
                    isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in saved[s].items()
                )
                for s in ("module", "tensors")
            )
            and saved["sha256"] == _content_digest(saved)
        )
    except Exception:
        valid = False
    if not valid:
        raise UnusableCheckpoint(
            "its contents do not match the SHA-256 written with them (the file "
            "was modified or damaged after it was written)"
        )
    if saved["key"] != key:
        raise UnusableCheckpoint(
            "it was written by a fit with other parameters or data (another "
            "fingerprint)"
        )
    try:
        rest = _decode(json.loads(saved["document"]), saved["tensors"])
        module = collections.OrderedDict(saved["module"])
        if rest.get("module_metadata") is not None:
            module._metadata = rest["module_metadata"]
        state = {
            "format": FORMAT,
            "key": key,
            "epoch": int(saved["epoch"]),
            "complete": bool(saved["complete"]),
            "stopped": bool(saved["stopped"]),
            "module": module,
        }
        for name in (
            "optimizer",
            "loss_weighter",
            "grad_scaler",
            "extra",
            "callbacks",
            "history",
            "rng",
        ):
            state[name] = rest[name]
    except Exception as exc:
        raise UnusableCheckpoint(f"its JSON document is malformed ({exc!r})") from None
    return state


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
        the directory holds checkpoints of other fits). A file under this
        fit's name that fails a check (``_from_file``) raises ValueError."""
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
        # One policy for every file under this fit's name that fails a check
        # (unreadable, truncated, foreign, tampered, another fit's): a
        # ValueError that names it. Not a warning and a fresh fit: that
        # would overwrite a file this fit cannot tell is its own.
        try:
            return _from_file(self.path, self.key)
        except UnusableCheckpoint as exc:
            reason = str(exc)
        except OSError as exc:
            reason = f"it could not be read ({exc})"
        except Exception as exc:  # any other surprise: still the one message
            reason = f"it could not be checked ({type(exc).__name__}: {exc})"
        raise ValueError(
            f"{str(self.path)!r} is not a checkpoint of this fit: {reason}. "
            "Nothing in it was loaded (no code in it ran). Delete it to start "
            "over; the fit then writes a new checkpoint there."
        )

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
        saved = _to_file_dict(state)  # plain values, JSON and their SHA-256
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.directory, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(saved, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
