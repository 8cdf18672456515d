"""CUDA path; these tests skip on machines without a CUDA device."""

import io

import joblib
import numpy as np
import pytest
import torch

from mtlestimators import (
    AutoTaskClassifier,
    GalleryEmbedder,
    MSSMClassifier,
    SharedBottomClassifier,
)
from mtlestimators.gates import Gate
from tests._harness import make_data, outputs

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


# ---------------------------------------------------------------- every family
# One model per family: a tabular model with gates (MSSM, with the
# pseudo-uniform weighter's statistics), a scenario model (AutoTask) and the
# gallery model (small VGG on 8 x 8 images; its default weighter is
# pseudo-uniform too, with a regression task).
FAMILIES = {
    "mssm": lambda **kw: MSSMClassifier(loss_weighter="pseudo_uniform", **kw),
    "autotask": lambda **kw: AutoTaskClassifier(**kw),
    "gallery": lambda **kw: GalleryEmbedder(
        backbone="small_vgg", image_size=8, lr=1e-3, **kw
    ),
}


def _family(name, **params):
    model = FAMILIES[name](max_epochs=3, verbose=0, random_state=0, **params)
    return model, make_data(model, n_samples=160)


def _on_cuda(module) -> bool:
    tensors = list(module.parameters()) + list(module.buffers())
    return bool(tensors) and all(t.is_cuda for t in tensors)


@pytest.mark.parametrize("device", ["cuda", "auto"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_trains_on_cuda(name, device):
    model, (X, y, X_test, _) = _family(name, device=device)
    model.fit(X, y)
    net = model.net_
    assert net.device.startswith("cuda")
    assert _on_cuda(net.module_)
    # Weighter parameters and statistics (pseudo-uniform's scale buffer).
    assert all(t.is_cuda for t in net.loss_weighter_.buffers())
    assert all(t.is_cuda for t in net.loss_weighter_.parameters())
    if name in ("mssm", "gallery"):
        assert net.loss_weighter_.scale.is_cuda
    if name == "mssm":
        gates = [m for m in net.module_.modules() if isinstance(m, Gate)]
        assert gates and all(_on_cuda(g) for g in gates)
        assert np.isfinite(model.connection_sparsity_)
    out = outputs(model, X_test)
    assert np.isfinite(out).all() and len(out) == len(X_test)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_float16_autocast_on_cuda_uses_a_grad_scaler(name):
    model, (X, y, X_test, _) = _family(name, device="cuda", autocast=True)
    model.fit(X, y)
    assert model.net_.autocast == "float16"
    assert isinstance(model.net_.grad_scaler_, torch.amp.GradScaler)
    assert np.isfinite(model.history_[:, "train_loss"]).all()
    out = outputs(model, X_test)
    assert out.dtype in (np.float32, np.float64) and np.isfinite(out).all()


def test_float16_autocast_on_cuda_learns():
    X, Y = _data()
    clf = SharedBottomClassifier(
        device="cuda", autocast="float16", max_epochs=20, verbose=0, random_state=0
    ).fit(X[:300], Y[:300])
    proba = clf.predict_proba(X[300:])
    assert proba.dtype == np.float64
    accuracy = np.mean((proba[:, 0] > 0.5) == (Y[300:, 0] == 1))
    assert accuracy > 0.8  # the majority class is about 0.5


def test_float16_autocast_on_cuda_refuses_a_gradient_level_weighter():
    from mtlestimators.plugins import available_loss_weighters

    if "pcgrad" not in available_loss_weighters():
        pytest.skip("the gradient_weighters plugin is not installed")
    X, Y = _data()
    clf = SharedBottomClassifier(
        device="cuda", autocast="float16", loss_weighter="pcgrad", verbose=0
    )
    with pytest.raises(ValueError, match="autocast='bfloat16'"):
        clf.fit(X, Y)
    assert not hasattr(clf, "net_")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_cuda_model_of_every_family_predicts_on_a_cpu_only_machine(name, monkeypatch):
    model, (X, y, X_test, _) = _family(name, device="cuda")
    model.fit(X, y)
    expected = outputs(model, X_test)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA"):
        loaded = joblib.load(buffer)
    assert not any(p.is_cuda for p in loaded.net_.module_.parameters())
    assert not any(t.is_cuda for t in loaded.net_.loss_weighter_.buffers())
    np.testing.assert_allclose(outputs(loaded, X_test), expected, atol=1e-4)
