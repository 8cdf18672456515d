"""Mixed precision (``autocast``) on the CPU: bfloat16 forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from mtlestimators import AutoTaskClassifier, SharedBottomClassifier
from tests._harness import make_data


def _bfloat16_forward_passes(model, X) -> set:
    """dtypes of the Linear layers' outputs while ``model`` predicts."""
    seen = set()
    handles = [
        m.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
        for m in model.net_.module_.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    try:
        model.predict_proba(X)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("cls", [SharedBottomClassifier, AutoTaskClassifier])
def test_bfloat16_training_learns_and_returns_float_predictions(cls):
    model = cls(autocast="bfloat16", max_epochs=15, verbose=0, random_state=0)
    X, y, X_test, y_test = make_data(model, n_samples=400)
    model.fit(X, y)
    assert model.net_.autocast == "bfloat16"
    assert _bfloat16_forward_passes(model, X_test) == {torch.bfloat16}
    proba = model.predict_proba(X_test)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    assert all(np.isfinite(model.history_[:, "train_loss"]))
    pred, truth = model.predict(X_test), y_test
    if truth.ndim == 1:
        baseline = max(np.mean(truth), 1 - np.mean(truth))
        assert accuracy_score(truth, pred) > baseline + 0.1
    else:  # two binary tasks with missing labels
        for k in range(truth.shape[1]):
            rows = ~np.isnan(truth[:, k])
            rate = np.mean(truth[rows, k])
            baseline = max(rate, 1 - rate)
            assert np.mean(pred[rows, k] == truth[rows, k]) > baseline + 0.1


def test_autocast_true_is_bfloat16_on_cpu_and_false_is_full_precision():
    model = SharedBottomClassifier(autocast=True, max_epochs=1, verbose=0)
    X, y, X_test, _ = make_data(model, n_samples=80)
    assert model.fit(X, y).net_.autocast == "bfloat16"
    plain = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, y)
    assert plain.net_.autocast is None
    assert _bfloat16_forward_passes(plain, X_test) == {torch.float32}


@pytest.mark.parametrize("value", ["fp16", 16, "half"])
def test_autocast_values_are_checked(value):
    model = SharedBottomClassifier(autocast=value, max_epochs=1, verbose=0)
    X, y, _, _ = make_data(model, n_samples=40)
    with pytest.raises(ValueError, match="autocast="):
        model.fit(X, y)
