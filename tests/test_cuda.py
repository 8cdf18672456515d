"""CUDA path; these tests skip on machines without a CUDA device."""

import io

import joblib
import numpy as np
import pytest
import torch

from mtlestimators import SharedBottomClassifier

pytestmark = pytest.mark.cuda


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    Y[:100, 1] = np.nan
    return X, Y


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_fit_moves_module_weighter_and_data_to_cuda(device):
    X, Y = _data()
    clf = SharedBottomClassifier(
        device=device,
        loss_weighter="uncertainty",
        max_epochs=5,
        verbose=0,
        random_state=0,
    ).fit(X, Y)
    assert next(clf.net_.module_.parameters()).is_cuda
    assert clf.net_.loss_weighter_.log_variance.is_cuda
    assert clf.net_.loss_weighter_.factor.is_cuda
    assert clf.predict_proba(X).shape == (400, 2)


def test_cuda_and_cpu_fits_agree_closely():
    X, Y = _data()
    params = dict(max_epochs=3, verbose=0, random_state=0)
    cpu = SharedBottomClassifier(device="cpu", **params).fit(X, Y).predict_proba(X)
    gpu = SharedBottomClassifier(device="cuda", **params).fit(X, Y).predict_proba(X)
    np.testing.assert_allclose(cpu, gpu, atol=0.05)


def test_a_cuda_model_loads_and_predicts_on_a_cpu_only_machine(monkeypatch):
    X, Y = _data()
    clf = SharedBottomClassifier(device="cuda", max_epochs=2, verbose=0).fit(X, Y)
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA"):
        loaded = joblib.load(buffer)
    assert not next(loaded.net_.module_.parameters()).is_cuda
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-5)
