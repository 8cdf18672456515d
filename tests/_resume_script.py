"""A training run for ``test_resume.py``, importable in-process and runnable
in a subprocess (``python -c "from tests._resume_script import main; main()"
NAME CHECKPOINT_DIR``).

With ``MTL_RESUME_HANG=k`` in the environment, the run touches the file
``MTL_RESUME_MARKER`` during epoch k + 1 (after the checkpoint of epoch k is
written) and sleeps, so the test can kill it mid-epoch.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from mtlestimators import AutoTaskClassifier, SharedBottomClassifier

MAX_EPOCHS = 5


class HangInEpoch(Callback):
    """Counts the epochs this process trained; hangs when asked to."""

    epochs_run = 0

    def on_epoch_begin(self, net, **kwargs):
        HangInEpoch.epochs_run += 1

    def on_batch_end(self, net, **kwargs):
        hang = os.environ.get("MTL_RESUME_HANG")
        if hang and len(net.history) == int(hang) + 1:
            Path(os.environ["MTL_RESUME_MARKER"]).touch()
            time.sleep(300)


def data(name: str):
    """(X_train, y_train, X_test): small, so an epoch is a few milliseconds."""
    rng = np.random.RandomState(0)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    if name == "shared_bottom":
        y = np.column_stack(
            [features[:, 0] > 0, features[:, 1] + features[:, 2] > 0]
        ).astype(float)
        y[rng.rand(300) < 0.2, 1] = np.nan
        return features[:200], y[:200], features[200:]
    task = np.array(["a", "b", "c"])[rng.randint(3, size=300)]
    X = np.column_stack([features.astype(object), task])
    y = (features[:, 0] + (task == "b") > 0.3).astype(int)
    return X[:200], y[:200], X[200:]


def estimator(name: str, checkpoint_dir=None):
    params = dict(
        max_epochs=MAX_EPOCHS,
        batch_size=32,
        random_state=0,
        verbose=0,
        callbacks=[HangInEpoch()],
        checkpoint_dir=checkpoint_dir,
    )
    if name == "shared_bottom":
        # Dropout and a stateful weighter: the generators and the weighter's
        # buffers must be restored exactly.
        return SharedBottomClassifier(
            bottom_units=(16,),
            tower_units=(8,),
            dropout=0.2,
            loss_weighter="dwa",
            **params,
        )
    # task_dropout draws from torch's generator in every batch.
    return AutoTaskClassifier(task_dropout=0.3, dropout=0.1, **params)


def fit(name: str, checkpoint_dir=None):
    """Fit with one thread (the same arithmetic in every process)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X, y, _ = data(name)
        return estimator(name, checkpoint_dir).fit(X, y)
    finally:
        torch.set_num_threads(threads)


def main():
    fit(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
