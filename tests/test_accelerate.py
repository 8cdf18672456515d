"""Training through Hugging Face Accelerate (``accelerator=``), on the CPU in
one process: what this machine can run. Multi-GPU / multi-node runs use the
same code path under ``accelerate launch`` (see docs/scaling.md)."""

from __future__ import annotations

import io
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

accelerate = pytest.importorskip("accelerate")

from mtlestimators import MSSMClassifier, SharedBottomClassifier  # noqa: E402
from mtlestimators._core.net import AcceleratedMultiTaskNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def accelerator():
    return accelerate.Accelerator(cpu=True)


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    Y = np.column_stack([X[:, 0] + X[:, 1] > 0, X[:, 2] - X[:, 0] > 0]).astype(float)
    Y[rng.rand(400) < 0.2, 1] = np.nan
    return X[:300], Y[:300], X[300:], Y[300:]


PARAMS = dict(max_epochs=8, batch_size=32, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def fitted(accelerator):
    X, Y, _, _ = _data()
    return SharedBottomClassifier(accelerator=accelerator, **PARAMS).fit(X, Y)


def test_accelerated_fit_learns_and_matches_a_plain_fit(fitted):
    X, Y, X_test, Y_test = _data()
    assert isinstance(fitted.net_, AcceleratedMultiTaskNet)
    assert fitted.net_.device is None  # placement was left to accelerate
    proba = fitted.predict_proba(X_test)
    for k in range(2):
        rows = ~np.isnan(Y_test[:, k])
        assert roc_auc_score(Y_test[rows, k], proba[rows, k]) > 0.9
    # One CPU process without mixed precision: the same arithmetic as a
    # plain fit with the same seed.
    # Not fused Adam, which a plain fit uses and accelerate does not.
    plain = SharedBottomClassifier(**PARAMS, optimizer__fused=False).fit(X, Y)
    np.testing.assert_allclose(proba, plain.predict_proba(X_test), atol=1e-6)


def test_clone_shares_the_accelerator_and_refits(fitted, accelerator):
    copy = clone(fitted)
    assert copy.accelerator is accelerator
    assert not hasattr(copy, "net_")
    X, Y, X_test, _ = _data()
    np.testing.assert_array_equal(
        copy.fit(X, Y).predict_proba(X_test), fitted.predict_proba(X_test)
    )


def test_a_pickle_drops_the_accelerator_and_keeps_the_model(fitted, accelerator):
    _, _, X_test, _ = _data()
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no device warning from skorch
        loaded = joblib.load(buffer)
    assert loaded.accelerator is None
    # The loaded net is the plain class, so skorch's own methods work on it.
    assert not isinstance(loaded.net_, AcceleratedMultiTaskNet)
    assert getattr(loaded.net_, "accelerator", None) is None
    # skorch's own path, on the model input (the field codes and values)
    first_task = loaded.net_.forward(loaded._predict_inputs(X_test))[0]
    np.testing.assert_allclose(
        torch.sigmoid(first_task).numpy(),
        loaded.predict_proba(X_test)[:, 0],
        atol=1e-6,
    )
    assert loaded.net_.device == "cpu"
    np.testing.assert_array_equal(
        loaded.predict_proba(X_test), fitted.predict_proba(X_test)
    )
    assert fitted.accelerator is accelerator  # the original keeps its own
    assert fitted.net_.accelerator is accelerator
    # Refitting the loaded estimator trains without accelerate.
    X, Y, _, _ = _data()
    refit = pickle.loads(pickle.dumps(loaded)).fit(X, Y)
    assert not isinstance(refit.net_, AcceleratedMultiTaskNet)


def test_settings_that_do_not_combine_with_an_accelerator(accelerator, tmp_path):
    X, Y, _, _ = _data()
    with pytest.raises(ValueError, match="mixed_precision"):
        SharedBottomClassifier(accelerator=accelerator, autocast=True).fit(X, Y)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        SharedBottomClassifier(accelerator=accelerator, checkpoint_dir=tmp_path).fit(
            X, Y
        )
    with pytest.raises(TypeError, match="accelerate.Accelerator"):
        SharedBottomClassifier(accelerator="cpu").fit(X, Y)


def test_gradient_level_weighters_are_refused_with_an_accelerator(accelerator):
    pytest.importorskip("mtl_gradient_weighters")
    X, Y, _, _ = _data()
    with pytest.raises(ValueError, match="combines per-task gradients"):
        SharedBottomClassifier(
            accelerator=accelerator, loss_weighter="pcgrad", max_epochs=1, verbose=0
        ).fit(X, Y)


def test_field_models_train_with_an_accelerator(accelerator):
    X, Y, X_test, Y_test = _data()
    model = MSSMClassifier(accelerator=accelerator, **PARAMS).fit(X, Y)
    proba = model.predict_proba(X_test)
    rows = ~np.isnan(Y_test[:, 0])
    assert roc_auc_score(Y_test[rows, 0], proba[rows, 0]) > 0.85
    # The gates' sparsity is logged every epoch, as without an accelerator.
    logged = model.history_[:, "connection_sparsity"]
    assert len(logged) == len(model.history_)
    assert logged[-1] == pytest.approx(model.connection_sparsity_)


def test_the_example_runs_under_accelerate_launch():
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--cpu",
        str(ROOT / "examples" / "accelerate_train.py"),
        "--n-samples",
        "2000",
        "--max-epochs",
        # The example's default: 2 epochs of 6 steps no longer train MSSM's
        # piecewise-linear fields past AUC 0.7.
        "5",
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = dict(re.findall(r"held-out ROC AUC (\w+): ([0-9.]+)", result.stdout))
    assert set(scores) == {"income", "never_married"}
    assert all(float(v) > 0.7 for v in scores.values()), scores
