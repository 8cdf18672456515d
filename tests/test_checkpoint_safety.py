"""Loading a checkpoint (``checkpoint_dir``) or a state_dict file
(``weights=``) runs no code, and every file that cannot be used gets one
clear message naming it."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import random
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skorch.callbacks import Callback

from mtlestimators import SharedBottomClassifier
from mtlestimators._core import checkpoint as _checkpoint
from mtlestimators.gallery._backbone import build_encoder, small_vgg


class Plant:
    """Unpickled, it creates the file ``marker`` (as any code could run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    return X, y


def _estimator(checkpoint_dir, **params):
    defaults = dict(max_epochs=2, verbose=0, random_state=0, loss_weighter="dwa")
    return SharedBottomClassifier(checkpoint_dir=checkpoint_dir, **defaults, **params)


def _fit_once(tmp_path) -> Path:
    """Fit once; the path of its (complete) checkpoint."""
    _estimator(tmp_path).fit(*_data())
    (path,) = tmp_path.glob("mtl-checkpoint-*.pt")
    return path


def _refused(path: Path, reason: str):
    """pytest.raises for the one message: the file, why, and what to do."""
    return pytest.raises(
        ValueError,
        match=(
            re.escape(repr(str(path))) + r" is not a checkpoint of this fit: "
            rf"(?s:.*){reason}(?s:.*)Nothing in it was loaded \(no code in it "
            r"ran\)\. Delete it to start over"
        ),
    )


def _plant_pickles(path: Path, marker: Path) -> list[bytes]:
    """Malicious files: a plain pickle, and torch.save archives (one that
    looks like a checkpoint's dict)."""
    files = [pickle.dumps(Plant(marker))]
    for value in (Plant(marker), {"format": 3, "key": "x", "module": Plant(marker)}):
        torch.save(value, path)
        files.append(path.read_bytes())
    return files


def test_a_malicious_pickle_under_the_checkpoints_name_runs_nothing(
    tmp_path, monkeypatch
):
    X, y = _data()
    path = _fit_once(tmp_path)
    marker = tmp_path / "code-ran"
    files = _plant_pickles(path, marker)
    unsafe_load = torch.load
    with monkeypatch.context() as patch:
        # Refused before torch deserializes anything at all.
        patch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran"))
        for data in files:
            path.write_bytes(data)
            reason = "no zip archive header" if data[:2] != b"PK" else "pickle"
            with _refused(path, reason):
                _estimator(tmp_path).fit(X, y)
            assert not marker.exists()
            assert path.read_bytes() == data  # left for the user to inspect
    # After deleting it, as the message says, the fit trains a model.
    path.unlink()
    model = _estimator(tmp_path).fit(X, y)
    assert model.predict_proba(X).shape == (60, 2)
    assert _checkpoint._from_file(path, path.stem.split("-")[-1])["complete"]
    assert not marker.exists()
    # The planted files do run code when unpickled: the test is not vacuous.
    path.write_bytes(files[-1])
    unsafe_load(path, weights_only=False)
    assert marker.exists()


def test_a_malicious_pickle_under_the_previous_formats_name_is_never_opened(
    tmp_path, monkeypatch
):
    X, y = _data()
    with monkeypatch.context() as patch:
        patch.setattr(_checkpoint, "FORMAT", 2)  # the name format 2 gave
        old = _fit_once(tmp_path)
    marker = tmp_path / "code-ran"
    old.write_bytes(pickle.dumps(Plant(marker)))
    with pytest.warns(UserWarning, match="starts from scratch"):
        model = _estimator(tmp_path).fit(X, y)
    assert not marker.exists()
    assert model.predict_proba(X).shape == (60, 2)
    assert len(list(tmp_path.glob("mtl-checkpoint-*.pt"))) == 2  # its own too


def test_truncated_checkpoints_are_refused_with_one_message(tmp_path):
    X, y = _data()
    path = _fit_once(tmp_path)
    data = path.read_bytes()
    for cut in (1, 4, 100, len(data) // 3, len(data) // 2, len(data) - 30, -1):
        path.write_bytes(data[:cut])
        reason = "no zip archive header" if 0 < cut < 4 else "truncated"
        with _refused(path, reason):
            _estimator(tmp_path).fit(X, y)
    path.write_bytes(data)  # the whole file is still good
    assert len(_estimator(tmp_path).fit(X, y).history_) == 2


def test_foreign_files_are_refused_with_one_message(tmp_path):
    X, y = _data()
    path = _fit_once(tmp_path)
    other_dir = tmp_path / "other"
    _estimator(other_dir, lr=0.05).fit(X, y)
    (other,) = other_dir.glob("mtl-checkpoint-*.pt")
    weights = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(3)}, weights)
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", "not a checkpoint")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * 2**20)
    plain = tmp_path / "plain.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), plain)
    cases = [
        (b"", "it is empty"),
        (np.random.RandomState(0).bytes(4096), "no zip archive header"),
        (weights.read_bytes(), "no zip archive header"),
        (archive.read_bytes(), "not a torch.save file"),
        (bomb.read_bytes(), "compressed members"),
        (plain.read_bytes(), "does not hold a checkpoint's entries"),
        (other.read_bytes(), "written by a fit with other parameters or data"),
    ]
    for data, reason in cases:
        path.write_bytes(data)
        with _refused(path, reason):
            _estimator(tmp_path).fit(X, y)


def test_tampered_checkpoints_are_refused_with_one_message(tmp_path):
    X, y = _data()
    path = _fit_once(tmp_path)
    original = path.read_bytes()
    saved = torch.load(path, weights_only=True)
    name = next(iter(saved["module"]))
    saved["module"][name].view(-1)[0] += 1.0  # one weight changed, same shape
    torch.save(saved, path)
    with _refused(path, "do not match the SHA-256"):
        _estimator(tmp_path).fit(X, y)
    saved = torch.load(io.BytesIO(original), weights_only=True)
    saved["document"] = saved["document"].replace('"epoch"', '"epoch" ', 1)
    saved["epoch"] = 1  # resume earlier than it was written
    torch.save(saved, path)
    with _refused(path, "do not match the SHA-256"):
        _estimator(tmp_path).fit(X, y)
    # One byte flipped in a tensor's bytes, the zip's CRC fixed up as well
    # (a deliberate edit): the SHA-256 catches it.
    path.write_bytes(_flip_tensor_byte(original, fix_crc=True))
    with _refused(path, "do not match the SHA-256"):
        _estimator(tmp_path).fit(X, y)
    path.write_bytes(_flip_tensor_byte(original, fix_crc=False))
    with _refused(path, "CRC check failed"):
        _estimator(tmp_path).fit(X, y)


def _flip_tensor_byte(data: bytes, fix_crc: bool) -> bytes:
    """``data`` (a stored zip) with one byte of its largest tensor flipped;
    with ``fix_crc``, that member's CRC-32 rewritten to match."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = max(
            (i for i in z.infolist() if "/data/" in i.filename),
            key=lambda i: i.file_size,
        )
        member = bytearray(z.read(info))
    assert info.compress_type == zipfile.ZIP_STORED
    # The local header: 30 bytes, then the name and the extra field.
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 :][:4])
    start = info.header_offset + 30 + name_len + extra_len
    assert data[start : start + len(member)] == member
    out = bytearray(data)
    out[start + len(member) // 2] ^= 0x01
    if fix_crc:
        member[len(member) // 2] ^= 0x01
        crc = struct.pack("<I", zlib.crc32(bytes(member)))
        old = struct.pack("<I", info.CRC)
        out[info.header_offset + 14 : info.header_offset + 18] = crc
        # The central directory's copy of it.
        offset = struct.pack("<I", info.header_offset)
        pos = -1
        while True:
            pos = bytes(out).find(b"PK\x01\x02", pos + 1)
            assert pos >= 0
            if bytes(out[pos + 42 : pos + 46]) == offset and (
                bytes(out[pos + 16 : pos + 20]) == old
            ):
                out[pos + 16 : pos + 20] = crc
                break
    return bytes(out)


def test_the_state_comes_back_with_its_types():
    state = {
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": {0: torch.zeros(4, dtype=torch.uint8)},
            "numpy": np.random.RandomState(3).get_state(),
            "python": random.Random(3).getstate(),
        },
        "values": [np.float64(0.5), np.bool_(True), np.int64(-3), b"\x00\xff"],
        "floats": (float("nan"), float("inf"), -0.0, 1e-300),
        "keys": {0: "a", (1, 2): "b", "__mtl__": "c"},
        "array": np.arange(6, dtype=np.uint32).reshape(2, 3)[:, ::2],
    }
    weights = collections.OrderedDict(w=torch.ones(2))
    weights._metadata = {"": {"version": 2}}
    state["weights"] = weights
    encoder = _checkpoint._Encoder()
    text = json.dumps(encoder.encode(state, "state"))
    back = _checkpoint._decode(json.loads(text), encoder.tensors)
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    assert list(back["rng"]["cuda"]) == [0]
    numpy_state = back["rng"]["numpy"]
    assert isinstance(numpy_state, tuple) and numpy_state[1].dtype == np.uint32
    np.random.RandomState().set_state(numpy_state)
    assert np.array_equal(numpy_state[1], state["rng"]["numpy"][1])
    assert back["rng"]["python"] == state["rng"]["python"]
    generator = random.Random()
    generator.setstate(back["rng"]["python"])
    assert generator.random() == random.Random(3).random()
    assert [type(v) for v in back["values"]] == [type(v) for v in state["values"]]
    assert back["values"][1:] == state["values"][1:]
    nan, inf, zero, tiny = back["floats"]
    assert np.isnan(nan) and inf == float("inf") and str(zero) == "-0.0"
    assert tiny == 1e-300
    assert back["keys"] == state["keys"]
    np.testing.assert_array_equal(back["array"], state["array"])
    assert back["array"].dtype == np.uint32
    assert isinstance(back["weights"], collections.OrderedDict)
    assert back["weights"]._metadata == {"": {"version": 2}}


class RecordsAnObject(Callback):
    def on_epoch_end(self, net, **kwargs):
        net.history.record("thing", object())


def test_state_a_checkpoint_cannot_hold_is_refused_when_written(tmp_path):
    with pytest.raises(TypeError, match=r"state\.history\.0\.thing is a object"):
        _estimator(tmp_path, callbacks=[RecordsAnObject()]).fit(*_data())
    assert not list(tmp_path.iterdir())  # no checkpoint, no temporary file


# ------------------------------------------------ gallery weights= files
def test_state_dict_files_in_safetensors_are_loaded(tmp_path):
    model = small_vgg()
    path = tmp_path / "vgg.safetensors"
    save_file(model.state_dict(), path)
    encoder, _ = build_encoder("small_vgg", weights=path, image_size=16)
    loaded = encoder.state_dict()
    for name, tensor in model.state_dict().items():
        assert any(
            torch.equal(tensor, v) for k, v in loaded.items() if k.endswith(name)
        )
    # Also by its contents, whatever the file's name.
    other = tmp_path / "vgg.bin"
    other.write_bytes(path.read_bytes())
    build_encoder("small_vgg", weights=os.fspath(other), image_size=16)


def test_unusable_weights_files_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    weights = tmp_path / "vgg.safetensors"
    save_file(small_vgg().state_dict(), weights)
    cases = {
        "evil.pt": b"",
        "truncated.safetensors": weights.read_bytes()[:1000],
        "empty.pt": b"",
    }
    torch.save(Plant(marker), tmp_path / "evil.pt")
    cases["evil.pt"] = (tmp_path / "evil.pt").read_bytes()
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(
            ValueError,
            match=re.escape(f"weights={str(path)!r} could not be read as a PyTorch "),
        ):
            build_encoder("small_vgg", weights=path, image_size=16)
    assert not marker.exists()


def _state(key: str, **extra) -> dict:
    return {
        "format": _checkpoint.FORMAT,
        "key": key,
        "epoch": 1,
        "complete": False,
        "stopped": False,
        "module": {"w": torch.ones(2)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "loss_weighter": {},
        "grad_scaler": None,
        "extra": extra,
        "callbacks": {},
        "history": [],
        "rng": {},
    }


def test_every_dense_dtype_round_trips_and_other_layouts_are_refused(tmp_path):
    key = "f" * 32
    checkpointer = _checkpoint.Checkpointer(tmp_path, key)
    tensors = {
        str(dtype): torch.arange(4).to(dtype)
        for dtype in (torch.uint16, torch.uint32, torch.float8_e4m3fn, torch.bfloat16)
    }
    checkpointer.write(_state(key, **tensors))
    loaded = checkpointer.load()["extra"]
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name].view(torch.uint8), tensor.view(torch.uint8))
    sparse = torch.eye(3).to_sparse()
    with pytest.raises(TypeError, match=r"state\.extra\.s is a torch\.sparse_coo"):
        checkpointer.write(_state(key, s=sparse))
    assert _checkpoint._allowed_global("torch float32")
    assert not _checkpoint._allowed_global("torch _dynamo")
    assert not _checkpoint._allowed_global("torch load")
    assert not _checkpoint._allowed_global("builtins open")
