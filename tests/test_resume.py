"""Resumable training (``checkpoint_dir``): a fit killed mid-epoch and run
again ends with exactly the model of an uninterrupted fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, LRScheduler
from skorch.dataset import ValidSplit
from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR, StepLR

import mtlestimators
from mtlestimators import SharedBottomClassifier
from mtlestimators._core import checkpoint as _checkpoint
from tests import _resume_script as script

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER = 2  # epochs checkpointed before the kill


def _state_dicts_equal(a, b) -> bool:
    sa, sb = a.net_.module_.state_dict(), b.net_.module_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _start(name: str, checkpoint_dir: Path, marker: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        MTL_RESUME_HANG=str(KILL_AFTER),
        MTL_RESUME_MARKER=str(marker),
        OMP_NUM_THREADS="1",
    )
    command = "from tests._resume_script import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", command, name, str(checkpoint_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_in_epoch(runs: dict) -> None:
    """Wait until every run is inside epoch KILL_AFTER + 1, then SIGKILL it."""
    try:
        deadline = time.monotonic() + 150
        for process, marker in runs.values():
            while not marker.exists():
                if process.poll() is not None:
                    error = process.stderr.read().decode()
                    raise AssertionError(f"a training run ended early: {error}")
                assert time.monotonic() < deadline, "a training run did not start"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)  # no cleanup of any kind
            process.wait(timeout=30)
            assert process.returncode == -signal.SIGKILL
    finally:
        for process, _ in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()


def test_fits_killed_mid_epoch_resume_to_the_uninterrupted_models(tmp_path):
    names = ["shared_bottom", "autotask"]
    # Both runs start at once: most of a run's time is importing torch.
    runs = {
        name: (
            _start(name, tmp_path / name, tmp_path / f"{name}.in-epoch"),
            tmp_path / f"{name}.in-epoch",
        )
        for name in names
    }
    _kill_in_epoch(runs)
    for name in names:
        checkpoint_dir = tmp_path / name
        (checkpoint,) = checkpoint_dir.glob("mtl-checkpoint-*.pt")
        saved = torch.load(checkpoint, weights_only=False)
        assert saved["epoch"] == KILL_AFTER and not saved["complete"]
        assert not list(checkpoint_dir.glob(".*.tmp"))  # no stray temporary file

        script.HangInEpoch.epochs_run = 0
        resumed = script.fit(name, checkpoint_dir)
        # Only the remaining epochs trained; the history is the whole fit's.
        assert script.HangInEpoch.epochs_run == script.MAX_EPOCHS - KILL_AFTER
        assert [row["epoch"] for row in resumed.history_] == [1, 2, 3, 4, 5]

        reference = script.fit(name)  # uninterrupted, no checkpoints
        _, _, X_test = script.data(name)
        assert _state_dicts_equal(resumed, reference), name
        np.testing.assert_array_equal(
            resumed.predict_proba(X_test), reference.predict_proba(X_test)
        )
        np.testing.assert_array_equal(
            resumed.history_[:, "train_loss"], reference.history_[:, "train_loss"]
        )
        final = torch.load(checkpoint, weights_only=False)
        assert final["complete"] and final["epoch"] == script.MAX_EPOCHS


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def test_a_completed_checkpoint_is_loaded_without_training(tmp_path):
    X, y = _data()
    params = dict(max_epochs=3, verbose=0, random_state=0, checkpoint_dir=tmp_path)
    first = SharedBottomClassifier(callbacks=[script.HangInEpoch()], **params)
    first.fit(X, y)
    script.HangInEpoch.epochs_run = 0
    again = SharedBottomClassifier(callbacks=[script.HangInEpoch()], **params)
    again.fit(X, y)
    assert script.HangInEpoch.epochs_run == 0
    assert _state_dicts_equal(first, again)
    assert len(again.history_) == 3
    assert len(list(tmp_path.glob("mtl-checkpoint-*.pt"))) == 1


def test_other_parameters_or_data_start_over_with_a_warning(tmp_path):
    X, y = _data()
    params = dict(max_epochs=2, verbose=0, random_state=0, checkpoint_dir=tmp_path)
    SharedBottomClassifier(**params).fit(X, y)
    with pytest.warns(UserWarning, match="starts from scratch"):
        other = SharedBottomClassifier(lr=0.01, **params).fit(X, y)
    fresh = SharedBottomClassifier(lr=0.01, max_epochs=2, verbose=0, random_state=0)
    assert _state_dicts_equal(other, fresh.fit(X, y))
    with pytest.warns(UserWarning, match="starts from scratch"):
        SharedBottomClassifier(**params).fit(X, 1 - y)  # other labels
    assert len(list(tmp_path.glob("mtl-checkpoint-*.pt"))) == 3


def test_a_checkpoint_of_another_fit_under_this_name_is_refused(tmp_path):
    X, y = _data()
    params = dict(max_epochs=2, verbose=0, random_state=0, checkpoint_dir=tmp_path)
    SharedBottomClassifier(**params).fit(X, y)
    (path,) = tmp_path.glob("mtl-checkpoint-*.pt")
    state = torch.load(path, weights_only=False)
    state["key"] = "0" * 32
    torch.save(state, path)
    with pytest.raises(ValueError, match="not a checkpoint of this fit"):
        SharedBottomClassifier(**params).fit(X, y)


def test_checkpoint_dir_is_checked():
    X, y = _data()
    with pytest.raises(TypeError, match="checkpoint_dir"):
        SharedBottomClassifier(checkpoint_dir=3, max_epochs=1, verbose=0).fit(X, y)


# ------------------------------------------------- interrupts and early stops
class Interrupt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the end of epoch ``at``,
    while ``Interrupt.armed`` counts down."""

    armed = 0

    def __init__(self, at=2):
        self.at = at

    def on_epoch_end(self, net, **kwargs):
        if Interrupt.armed and len(net.history) == self.at:
            Interrupt.armed -= 1
            raise KeyboardInterrupt


def _interruptible(checkpoint_dir=None, **params):
    defaults = dict(
        bottom_units=(16,),
        tower_units=(8,),
        dropout=0.2,
        batch_size=32,
        verbose=0,
        random_state=0,
        checkpoint_dir=checkpoint_dir,
    )
    return SharedBottomClassifier(**{**defaults, **params})


def _callbacks():
    # A random validation split (numpy's global generator) and a scheduler.
    return dict(
        train_split=ValidSplit(0.2),
        callbacks=[
            LRScheduler(policy=StepLR, step_size=2, gamma=0.5),
            script.HangInEpoch(),
            Interrupt(at=2),
        ],
    )


def test_an_interrupted_fit_resumes_the_remaining_epochs_on_the_same_split(
    tmp_path,
):
    X, y = _data()
    numpy_state = np.random.get_state()  # noqa: NPY002
    Interrupt.armed = 1
    stopped = _interruptible(tmp_path, max_epochs=5, **_callbacks()).fit(X, y)
    assert len(stopped.history_) == 2  # the model at the interrupt
    (path,) = tmp_path.glob("mtl-checkpoint-*.pt")
    saved = torch.load(path, weights_only=False)
    assert saved["epoch"] == 2 and not saved["complete"]
    module = stopped.net_.module_.state_dict()
    assert all(torch.equal(module[k], v) for k, v in saved["module"].items())

    script.HangInEpoch.epochs_run = 0
    resumed = _interruptible(tmp_path, max_epochs=5, **_callbacks()).fit(X, y)
    assert script.HangInEpoch.epochs_run == 3  # only the remaining epochs
    reference = _interruptible(max_epochs=5, **_callbacks()).fit(X, y)
    assert [row["epoch"] for row in resumed.history_] == [1, 2, 3, 4, 5]
    assert _state_dicts_equal(resumed, reference)
    for column in ("train_loss", "valid_loss"):
        np.testing.assert_array_equal(
            resumed.history_[:, column], reference.history_[:, column]
        )
    lr = resumed.net_.optimizer_.param_groups[0]["lr"]
    assert lr == reference.net_.optimizer_.param_groups[0]["lr"] < resumed.lr
    assert torch.load(path, weights_only=False)["complete"]
    # The fits seeded numpy's global generator and put the caller's back.
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(numpy_state[1], after[1]) and numpy_state[2] == after[2]


def test_an_early_stop_is_complete_and_a_resumed_fit_stops_at_the_same_epoch(
    tmp_path,
):
    X, y = _data()

    def estimator(checkpoint_dir=None):
        stopper = EarlyStopping(
            monitor="train_loss", patience=3, threshold=0.5, load_best=True
        )
        callbacks = [stopper, script.HangInEpoch(), Interrupt(at=3)]
        return _interruptible(checkpoint_dir, max_epochs=10, callbacks=callbacks)

    reference = estimator().fit(X, y)
    assert len(reference.history_) == 4  # 3 epochs without halving the loss
    Interrupt.armed = 1
    assert len(estimator(tmp_path).fit(X, y).history_) == 3
    # The EarlyStopping counter and best weights come back with the rest.
    script.HangInEpoch.epochs_run = 0
    resumed = estimator(tmp_path).fit(X, y)
    assert script.HangInEpoch.epochs_run == 1
    assert len(resumed.history_) == 4
    assert _state_dicts_equal(resumed, reference)  # load_best: epoch 1's
    (path,) = tmp_path.glob("mtl-checkpoint-*.pt")
    saved = torch.load(path, weights_only=False)
    assert saved["complete"] and saved["stopped"] and saved["epoch"] == 4
    script.HangInEpoch.epochs_run = 0
    again = estimator(tmp_path).fit(X, y)
    assert script.HangInEpoch.epochs_run == 0
    assert _state_dicts_equal(again, reference)


def test_an_early_stop_is_checkpointed_with_the_returned_model(tmp_path):
    X, y = _data()
    stopper = EarlyStopping(monitor="train_loss", patience=2, threshold=0.5)
    params = dict(max_epochs=10, callbacks=[stopper])
    first = _interruptible(tmp_path, **params).fit(X, y)
    assert len(first.history_) == 3
    saved = torch.load(next(tmp_path.glob("mtl-checkpoint-*.pt")), weights_only=False)
    assert saved["complete"] and saved["epoch"] == 3
    stopper = EarlyStopping(monitor="train_loss", patience=2, threshold=0.5)
    again = _interruptible(tmp_path, max_epochs=10, callbacks=[stopper]).fit(X, y)
    assert _state_dicts_equal(first, again)
    assert len(again.history_) == 3


# ------------------------------------------------------------- fingerprints
def _scoring_a(net, X, y):
    return 0.0


def _scoring_b(net, X, y):
    return 1.0


def test_different_settings_have_different_descriptions():
    pairs = [
        (np.random.RandomState(0), np.random.RandomState(1)),
        (LRScheduler(policy=StepLR), LRScheduler(policy=CosineAnnealingLR)),
        (
            LRScheduler(policy=MultiStepLR, milestones=[2]),
            LRScheduler(policy=MultiStepLR, milestones=[5]),
        ),
        (EpochScoring(scoring=_scoring_a), EpochScoring(scoring=_scoring_b)),
        (lambda x: x + 1, lambda x: x + 2),
        ([StepLR], [MultiStepLR]),
        ({"k": (1, [2])}, {"k": (1, [3])}),
        (np.arange(3), np.arange(1, 4)),
        (torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)),  # other weights
        (torch.float32, torch.float64),
        (ValidSplit(0.2), ValidSplit(0.3)),
    ]
    for a, b in pairs:
        assert _checkpoint._describe(a) != _checkpoint._describe(b), (a, b)
    # Equal settings describe equally, and a used callback as a fresh one.
    used = LRScheduler(policy=StepLR, step_size=2)
    _interruptible(max_epochs=1, callbacks=[used]).fit(*_data())
    assert _checkpoint._describe(used) == _checkpoint._describe(
        LRScheduler(policy=StepLR, step_size=2)
    )
    assert _checkpoint._describe(np.random.RandomState(0)) == (
        _checkpoint._describe(np.random.RandomState(0))
    )


def test_the_fingerprint_covers_the_library_version(monkeypatch):
    X, y = _data()
    key = _checkpoint.fingerprint({"lr": 0.1}, X, y)
    monkeypatch.setattr(mtlestimators, "__version__", "999")
    assert _checkpoint.fingerprint({"lr": 0.1}, X, y) != key


def test_large_and_strided_arrays_are_hashed_whole(monkeypatch):
    big = np.zeros((81920, 1024), dtype=np.uint8)  # 80 MiB
    key = _checkpoint.fingerprint({}, big, None)
    big[12345, 678] = 1  # a row that a sample of rows would miss
    assert _checkpoint.fingerprint({}, big, None) != key
    del big
    # A strided view hashes (in blocks of rows) like its contiguous copy.
    monkeypatch.setattr(_checkpoint, "_HASH_CHUNK_BYTES", 64)
    base = np.random.RandomState(0).normal(size=(50, 12))
    view = base[:, ::3]
    key = _checkpoint.fingerprint({}, view, None)
    assert key == _checkpoint.fingerprint({}, np.ascontiguousarray(view), None)
    base[37, 6] += 1.0
    assert _checkpoint.fingerprint({}, view, None) != key


def test_gallery_files_are_fingerprinted_by_size_and_modification_time(tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in paths:
        path.write_bytes(b"image")
    data = SimpleNamespace(galleries=[[str(p) for p in paths]], image_size=8)
    key = _checkpoint.fingerprint({}, data, None)
    paths[1].write_bytes(b"other image")
    changed = _checkpoint.fingerprint({}, data, None)
    assert changed != key
    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _checkpoint.fingerprint({}, data, None) != changed


def test_checkpoint_dir_needs_an_int_random_state(tmp_path):
    X, y = _data()
    estimator = SharedBottomClassifier(max_epochs=1, verbose=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="int random_state"):
        estimator.fit(X, y)
    assert not list(tmp_path.iterdir())


def test_a_bare_cuda_device_uses_the_current_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert _checkpoint.cuda_rng_devices("cuda") == [3]
    assert _checkpoint.cuda_rng_devices("cuda:1") == [1]
    assert _checkpoint.cuda_rng_devices("cpu") == []


def test_stale_temporary_files_of_this_fit_are_removed(tmp_path):
    X, y = _data()
    params = dict(max_epochs=1, verbose=0, random_state=0, checkpoint_dir=tmp_path)
    SharedBottomClassifier(**params).fit(X, y)
    (path,) = tmp_path.glob("mtl-checkpoint-*.pt")
    own = tmp_path / f".{path.name}.k1ll3d.tmp"
    other = tmp_path / f".mtl-checkpoint-{'0' * 32}.pt.wr1t1ng.tmp"
    own.write_bytes(b"half a checkpoint")
    other.write_bytes(b"another process's write")
    SharedBottomClassifier(**params).fit(X, y)
    assert not own.exists()
    assert other.exists()  # another fit's write in progress stays
