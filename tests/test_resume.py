"""Resumable training (``checkpoint_dir``): a fit killed mid-epoch and run
again ends with exactly the model of an uninterrupted fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlestimators import SharedBottomClassifier
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
