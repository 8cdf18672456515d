"""Two CPU processes (gloo) train one model together, under ``torchrun`` and
under ``accelerate launch`` (see docs/scaling.md).

Run as a script (``python -m torch.distributed.run ... tests/test_distributed.py
OUT FIT...``) this file is the worker: every process runs each FIT (``model:
loss_weighter``, or ``refusals``) with an ``Accelerator(cpu=True)`` and writes
what it saw and what it ended with to ``OUT/<fit>-rank<k>.json``. The tests
launch it once per launcher (a launch costs most of the time: two fresh
interpreters importing torch) and compare the ranks with each other and with
a single-process fit.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 4001, 2000  # odd: one row per epoch is padded by wrapping
# Every row trains (the sharding is checked row by row): no held-out rows.
# The linear numeric encoding: with the piecewise-linear default two processes
# (half the steps) were 0.015 AUC from one at 20 epochs, past the 0.01 margin.
SETTINGS = dict(
    batch_size=64,
    lr=3e-3,
    verbose=0,
    random_state=0,
    early_stopping=False,
    numeric_embedding="linear",
)
# SharedBottom on field embeddings needs more steps than on the float matrix
# before two processes (half the steps, twice the joint batch) reach one
# process's AUC: at 10 epochs they were 0.011 apart.
EPOCHS = {"shared_bottom": 20, "mssm": 2}


def _data():
    from mtlestimators.datasets import make_multitask_classification

    X, Y = make_multitask_classification(
        n_samples=N_TRAIN + N_TEST, n_features=8, task_correlation=0.9, random_state=1
    )
    return X[:N_TRAIN], Y[:N_TRAIN], X[N_TRAIN:], Y[N_TRAIN:]


def _model(name, **params):
    from mtlestimators import MSSMClassifier, SharedBottomClassifier

    cls = {"shared_bottom": SharedBottomClassifier, "mssm": MSSMClassifier}[name]
    return cls(max_epochs=EPOCHS[name], **SETTINGS, **params)


def _auc(model, X_test, Y_test):
    proba = model.predict_proba(X_test)
    return [roc_auc_score(Y_test[:, k], proba[:, k]) for k in range(Y_test.shape[1])]


def _state_hash(module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------ worker
def _fit_in_worker(accelerator, name: str, loss_weighter: str) -> dict:
    import torch
    from skorch.callbacks import Callback

    X, Y, X_test, Y_test = _data()
    # Row ids by their first feature (distinct floats), to see which rows
    # each process trained on in each epoch.
    row_of = {float(v): i for i, v in enumerate(X[:, 0])}
    assert len(row_of) == len(X)
    # The field models (SharedBottom among them) see z-scored float32 values.
    from mtlestimators.tabular._fields import FieldEncoder

    encoder = FieldEncoder.fit(
        np.asarray(X, dtype=np.float64),
        np.zeros(X.shape[1], bool),
        list(range(X.shape[1])),
    )
    z = encoder.transform(np.asarray(X, dtype=np.float64))["numeric"][:, 0]
    standardized_row_of = {float(v): i for i, v in enumerate(z)}

    class Rows(Callback):
        def initialize(self):
            self.epochs = []
            return self

        def on_epoch_begin(self, net, **kwargs):
            self.epochs.append([])

        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if not training:
                return
            if isinstance(batch[0], dict):  # field inputs: standardized values
                first = batch[0]["numeric"][:, 0].detach().cpu().tolist()
                self.epochs[-1].extend(standardized_row_of.get(v, -1) for v in first)
                return
            first = batch[0][:, 0].detach().cpu().tolist()
            self.epochs[-1].extend(row_of[float(np.float32(v))] for v in first)

    class During(Callback):
        # What the net looks like while it trains (it is unwrapped after).
        def on_train_begin(self, net, **kwargs):
            self.module_type = type(net.module_).__name__
            bare = getattr(net.module_, "module", net.module_)
            own = getattr(bare, "regularization", None)
            self.regularization = [
                float(net._regularization("cpu")),
                None if own is None else float(own()),
            ]

    rows, during = Rows(), During()
    model = _model(
        name,
        accelerator=accelerator,
        loss_weighter=loss_weighter,
        callbacks=[rows, during],
    )
    log = io.StringIO()
    with redirect_stdout(log):
        model.fit(X, Y)
    weighter = model.net_.loss_weighter_
    return {
        "rank": accelerator.process_index,
        "world": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "backend": torch.distributed.get_backend()
        if torch.distributed.is_initialized()
        else None,
        "module_hash": _state_hash(model.net_.module_),
        "weighter_hash": _state_hash(weighter),
        "weighter_params": [p.detach().tolist() for p in weighter.parameters()],
        "auc": _auc(model, X_test, Y_test),
        "rows": rows.epochs,
        "train_loss": list(model.net_.history[:, "train_loss"]),
        "module_type": type(model.net_.module_).__name__,
        "module_type_during": during.module_type,
        "regularization_during": during.regularization,
        "printed": log.getvalue(),
    }


def _refusals_in_worker(accelerator, out: Path) -> dict:
    from mtlestimators import SharedBottomClassifier

    X, Y, _, _ = _data()
    messages = {}
    cases = {
        "checkpoint_dir": dict(checkpoint_dir=out / "checkpoints"),
        "gradient_level": dict(loss_weighter="pcgrad"),
    }
    for case, params in cases.items():
        model = SharedBottomClassifier(
            accelerator=accelerator, max_epochs=1, verbose=0, **params
        )
        try:
            model.fit(X[:200], Y[:200])
        except ValueError as error:
            messages[case] = str(error)
        else:
            messages[case] = None
    return {"rank": accelerator.process_index, "messages": messages}


def _worker(out: Path, fits: list[str]) -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    for fit in fits:
        if fit == "refusals":
            result = _refusals_in_worker(accelerator, out)
        else:
            result = _fit_in_worker(accelerator, *fit.split(":"))
        name = fit.replace(":", "-")
        (out / f"{name}-rank{accelerator.process_index}.json").write_text(
            json.dumps(result)
        )


# ------------------------------------------------------------------ launch
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc_per_node",
    "2",
]
# ``accelerate launch --cpu`` starts one process (its simple launcher runs
# the script once); ``--multi_gpu`` is the launcher that starts several
# local processes (through torch.distributed.run), and with no GPU (or with
# Accelerator(cpu=True)) they are CPU processes over gloo.
ACCELERATE = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_machines",
    "1",
    "--num_processes",
    "2",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "--main_process_port",
    "0",
]


def _launch(launcher, out: Path, fits: list[str]) -> dict:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    result = subprocess.run(
        [*launcher, __file__, str(out), *fits],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {
        fit: [
            json.loads(p.read_text())
            for p in sorted(out.glob(fit.replace(":", "-") + "-rank*.json"))
        ]
        for fit in fits
    }


@pytest.fixture(scope="module")
def torchrun(tmp_path_factory):
    fits = ["shared_bottom:uniform", "shared_bottom:uncertainty", "mssm:uniform"]
    fits.append("refusals")
    return _launch(TORCHRUN, tmp_path_factory.mktemp("torchrun"), fits)


@functools.cache
def _single_process_auc(name, loss_weighter):
    import torch

    X, Y, X_test, Y_test = _data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes
    try:
        single = _model(name, loss_weighter=loss_weighter).fit(X, Y)
    finally:
        torch.set_num_threads(threads)
    return tuple(_auc(single, X_test, Y_test))


def _check_ranks(
    ranks, name="shared_bottom", loss_weighter="uniform", auc=True, row_ids=True
):
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 for r in ranks)
    assert all(r["distributed_type"] == "DistributedType.MULTI_CPU" for r in ranks)
    assert all(r["backend"] == "gloo" for r in ranks)
    # DDP wraps the module while it trains; the fitted net holds the plain
    # module (skorch unwraps it after training).
    assert all(r["module_type_during"] == "DistributedDataParallel" for r in ranks)
    assert all(r["module_type"] != "DistributedDataParallel" for r in ranks)
    # verbose=0 prints nothing, in either process.
    assert [r["printed"] for r in ranks] == ["", ""]
    # One model: the same weights (and weighter state) in both processes,
    # and the same recorded training loss (the mean over the processes).
    assert ranks[0]["module_hash"] == ranks[1]["module_hash"]
    assert ranks[0]["weighter_hash"] == ranks[1]["weighter_hash"]
    assert ranks[0]["auc"] == ranks[1]["auc"]
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]
    # Each process trained on its own half of every epoch: ceil(4001 / 2)
    # rows, disjoint but for the one row padded by wrapping, covering all.
    epochs = EPOCHS[name]
    assert all(len(r["rows"]) == epochs for r in ranks)
    for epoch in range(epochs):
        first, second = (r["rows"][epoch] for r in ranks)
        assert len(first) == len(second) == -(-N_TRAIN // 2)
        if not row_ids:
            continue
        assert len(set(first)) == len(first) and len(set(second)) == len(second)
        assert len(set(first) & set(second)) == 1
        assert set(first) | set(second) == set(range(N_TRAIN))
    if row_ids:  # a new shuffle each epoch
        assert ranks[0]["rows"][0] != ranks[0]["rows"][1]
    if not auc:
        return
    # Held-out quality within 0.01 ROC AUC of one process with the same
    # settings (whose batches are half the two processes' joint batch, and
    # twice as many).
    for two, one in zip(ranks[0]["auc"], _single_process_auc(name, loss_weighter)):
        assert one > 0.9
        assert abs(two - one) <= 0.01, (two, one)


def test_two_processes_under_torchrun_train_one_model(torchrun):
    _check_ranks(torchrun["shared_bottom:uniform"])


def test_the_uncertainty_weighter_trains_under_ddp(torchrun):
    # Its log variances are trainable and kept out of DDP: their gradients
    # are averaged across the processes, so both end with the same values,
    # moved away from their start (0) by training.
    ranks = torchrun["shared_bottom:uncertainty"]
    _check_ranks(ranks, loss_weighter="uncertainty")
    params = ranks[0]["weighter_params"]
    assert params == ranks[1]["weighter_params"]
    assert np.all(np.abs(np.asarray(params[0])) > 0.1)


def test_a_model_with_a_regularization_term_trains_under_ddp(torchrun):
    # MSSM adds its module's regularization() to the loss, outside the
    # DDP-wrapped forward pass: it must not be lost behind the wrapper.
    ranks = torchrun["mssm:uniform"]
    _check_ranks(ranks, name="mssm", auc=False, row_ids=False)
    through_net, own = ranks[0]["regularization_during"]
    assert own is not None and own > 0
    assert through_net == own


def test_checkpoints_and_gradient_level_weighters_are_refused_under_ddp(torchrun):
    ranks = torchrun["refusals"]
    assert [r["rank"] for r in ranks] == [0, 1]
    for rank in ranks:
        messages = rank["messages"]
        assert (
            "checkpoint_dir is not supported together with an accelerator"
            in (messages["checkpoint_dir"])
        )
        assert (
            "PCGrad combines per-task gradients itself" in (messages["gradient_level"])
        )


def test_two_processes_under_accelerate_launch_train_one_model(tmp_path):
    ranks = _launch(ACCELERATE, tmp_path, ["shared_bottom:uniform"])
    _check_ranks(ranks["shared_bottom:uniform"])


def test_verbose_zero_prints_nothing_with_an_accelerator(capsys):
    accelerate = pytest.importorskip("accelerate")
    from mtlestimators import SharedBottomClassifier

    X, Y, _, _ = _data()
    model = SharedBottomClassifier(
        accelerator=accelerate.Accelerator(cpu=True), max_epochs=1, verbose=0
    )
    model.fit(X[:200], Y[:200])
    assert capsys.readouterr().out == ""
    model.set_params(verbose=1).fit(X[:200], Y[:200])
    assert "train_loss" in capsys.readouterr().out


def test_a_launch_the_accelerator_does_not_see_is_refused(monkeypatch):
    # Under torchrun without a GPU, Accelerator() (no cpu=True) ignores the
    # process group: each process would silently train its own model.
    accelerate = pytest.importorskip("accelerate")
    from mtlestimators import SharedBottomClassifier

    accelerator = accelerate.Accelerator(cpu=True)  # one process here
    monkeypatch.setenv("WORLD_SIZE", "2")
    X, Y, _, _ = _data()
    model = SharedBottomClassifier(accelerator=accelerator, max_epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"launched as one of 2 \(WORLD_SIZE\)"):
        model.fit(X[:100], Y[:100])


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), sys.argv[2:])
