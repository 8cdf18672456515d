"""Failures that used to be silent now say what went wrong and how to fix it:
a diverging fit, a float task column, the calibrator's placeholder task id, new
categories in a warm-start continuation, several galleries in one ONNX run."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from skorch.callbacks import Callback

from mtlestimators import (
    AutoTaskClassifier,
    GalleryEmbedder,
    MMoEClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
    SharedBottomClassifier,
    TrainingDivergedError,
)

FAST = {"verbose": 0, "random_state": 0}


# ------------------------------------------------------------- divergence
def _tabular(n=200, seed=0, scale=1.0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5)) * scale
    y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(5)]), pd.DataFrame(
        y, columns=["click", "buy"]
    )


# SharedBottom z-scores its numeric fields, so the unscaled features alone no
# longer blow up plain SGD at lr 10 (the loss spikes and recovers); momentum
# makes it diverge again.
DIVERGING = {
    "lr": 10.0,
    "optimizer": "SGD",
    "optimizer__momentum": 0.9,
    "max_epochs": 5,
    "batch_size": 64,
}


def _weights(estimator):
    return {k: v.clone() for k, v in estimator.net_.module_.state_dict().items()}


def _assert_same_weights(before, after):
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)


def _check_divergence_message(message, tasks=("click", "buy")):
    assert message.startswith("Training diverged")
    assert any(f"'{t}'" in message for t in tasks), message
    assert re.search(r"at epoch \d+, batch \d+", message), message
    assert "lower lr (now 10.0)" in message
    assert "standardize or scale the features" in message
    assert "check the labels" in message


def test_diverging_fit_raises_naming_tasks_epoch_batch_and_fixes():
    X, y = _tabular(scale=1e4)
    model = SharedBottomClassifier(**DIVERGING, **FAST)
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(X, y)
    # Catchable as either family of errors (see TrainingDivergedError).
    assert isinstance(info.value, FloatingPointError)
    assert isinstance(info.value, ValueError)
    _check_divergence_message(str(info.value))
    assert not hasattr(model, "net_")  # no half-trained model is left


def test_divergent_refit_leaves_a_fitted_estimator_unchanged():
    X, y = _tabular()
    model = SharedBottomClassifier(
        optimizer="SGD",
        optimizer__momentum=0.9,
        lr=0.05,
        max_epochs=3,
        batch_size=64,
        **FAST,
    ).fit(X, y)
    proba, weights, net = model.predict_proba(X), _weights(model), model.net_
    X_big, _ = _tabular(scale=1e4)
    model.set_params(lr=10.0, max_epochs=5)
    with pytest.raises(FloatingPointError, match="Training diverged"):
        model.fit(X_big, y)
    assert model.net_ is net
    _assert_same_weights(weights, _weights(model))
    np.testing.assert_array_equal(model.predict_proba(X), proba)


def test_divergent_warm_start_continuation_restores_the_weights():
    X, y = _tabular()
    model = SharedBottomClassifier(
        optimizer="SGD",
        optimizer__momentum=0.9,
        lr=0.05,
        max_epochs=3,
        batch_size=64,
        warm_start=True,
        **FAST,
    ).fit(X, y)
    proba, weights = model.predict_proba(X), _weights(model)
    epochs = len(model.net_.history)
    X_big, _ = _tabular(scale=1e4)
    model.set_params(lr=10.0, max_epochs=5)
    with pytest.raises(ValueError, match="Training diverged") as info:
        model.fit(X_big, y)
    # The continuation's epochs are counted after the first fit's.
    epoch = int(re.search(r"at epoch (\d+)", str(info.value)).group(1))
    assert epoch > epochs
    assert len(model.net_.history) == epochs
    assert model.net_.lr == 0.05
    _assert_same_weights(weights, _weights(model))
    np.testing.assert_array_equal(model.predict_proba(X), proba)
    for value in weights.values():
        assert torch.isfinite(value).all()


def test_non_finite_loss_is_caught_before_the_optimizer_steps():
    X, y = _tabular()
    model = SharedBottomClassifier(max_epochs=1, **FAST).fit(X, y)
    net = model.net_
    with pytest.raises(TrainingDivergedError, match=r"the loss of 'buy' \(nan\)"):
        net.check_finite_loss(torch.tensor([0.5, float("nan")]), torch.tensor(0.7))
    # Every task loss finite, the total not: the weighter or regularization.
    with pytest.raises(TrainingDivergedError, match="the total loss .*UniformWeighter"):
        net.check_finite_loss(torch.tensor([0.5, 0.2]), torch.tensor(float("inf")))
    net.check_finite_loss(torch.tensor([0.5, 0.2]), torch.tensor(0.7))  # no error


class _NaNOnSecondBatch(torch.nn.Module):
    """A plain weighter whose total turns NaN at its second training call."""

    def __init__(self, n_tasks):
        super().__init__()
        self.calls = 0

    def forward(self, losses):
        self.calls += 1
        total = losses.sum()
        return total * float("nan") if self.calls == 2 else total


class _GrabNet(Callback):
    def __init__(self, seen):
        self.seen = seen

    def on_train_begin(self, net, **kwargs):
        self.seen.append(net)


def test_a_nan_batch_never_reaches_the_optimizer(monkeypatch):
    X, y = _tabular()
    steps, after_step = [], []
    original = torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        steps.append(1)
        after_step.append(
            [p.detach().clone() for g in self.param_groups for p in g["params"]]
        )
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    seen = []
    model = SharedBottomClassifier(
        loss_weighter=_NaNOnSecondBatch,
        batch_size=64,
        max_epochs=1,
        callbacks=[_GrabNet(seen)],
        **FAST,
    )
    with pytest.raises(TrainingDivergedError, match="at epoch 1, batch 2"):
        model.fit(X, y)
    assert len(steps) == 1  # batch 1 stepped; batch 2 stopped before its step
    params = [p for g in seen[0].optimizer_.param_groups for p in g["params"]]
    for now, then in zip(params, after_step[0]):
        torch.testing.assert_close(now.detach(), then, rtol=0, atol=0)
        assert torch.isfinite(now).all()


def test_gradient_level_weighter_divergence_is_loud():
    pytest.importorskip("mtl_gradient_weighters")
    X, y = _tabular(scale=1e8)
    params = dict(DIVERGING, lr=1e6)
    model = SharedBottomClassifier(loss_weighter="pcgrad", **params, **FAST)
    with pytest.raises(TrainingDivergedError, match="Training diverged") as info:
        model.fit(X, y)
    assert re.search(r"at epoch \d+, batch \d+", str(info.value))
    assert "lower lr (now 1000000.0)" in str(info.value)


def test_scenario_model_divergence_is_loud():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)) * 1e4, columns=["a", "b", "c"])
    X["scenario"] = rng.choice(["ads", "store"], size=200)
    y = (X["a"] > 0).astype(int).to_numpy()
    model = MultiTaskDNNClassifier(
        task_column="scenario", standardize=False, **DIVERGING, **FAST
    )
    with pytest.raises(TrainingDivergedError, match="Training diverged"):
        model.fit(X, y)


def _galleries(n=16, seed=0):
    rng = np.random.RandomState(seed)
    sizes = rng.randint(1, 4, size=n)
    label = rng.randint(2, size=n)
    galleries = [
        (rng.randint(0, 120, size=(k, 12, 12)) + 120 * b).astype(np.uint8)
        for k, b in zip(sizes, label)
    ]
    return galleries, np.column_stack([label, rng.randint(3, size=n)])


GALLERY = {"backbone": "small_vgg", "image_size": 8, **FAST}


def test_gallery_embedder_divergence_is_loud():
    galleries, y = _galleries()
    model = GalleryEmbedder(optimizer="SGD", lr=1e12, max_epochs=3, **GALLERY)
    with pytest.raises(TrainingDivergedError, match="Training diverged") as info:
        model.fit(galleries, y)
    assert re.search(r"at epoch \d+, batch \d+", str(info.value))


# --------------------------------------------------------------- task column
SCENARIO = [AutoTaskClassifier, MultiTaskDNNClassifier]


@pytest.mark.parametrize("cls", SCENARIO, ids=lambda c: c.__name__)
def test_float_task_column_warns(cls):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))  # the default task_column=-1 is a feature
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(UserWarning, match="task_column=-1") as record:
        model = cls(max_epochs=1, **FAST).fit(X, y)
    message = str(record[0].message)
    assert "not whole numbers" in message
    assert "120 tasks" in message
    assert "Set task_column to the column of X that holds the task ids" in message
    assert model.n_tasks_ == 120


@pytest.mark.parametrize("cls", SCENARIO, ids=lambda c: c.__name__)
def test_integral_float_task_ids_do_not_warn(cls):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))
    X[:, -1] = rng.randint(1, 4, size=120).astype(float)  # 1.0, 2.0, 3.0
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = cls(max_epochs=1, **FAST).fit(X, y)
    assert model.n_tasks_ == 3


def test_nearly_one_task_id_per_row_warns():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    X["user"] = [f"u{i}" for i in range(110)] + ["u0"] * 10
    y = (X["a"] > 0).astype(int).to_numpy()
    with pytest.warns(UserWarning, match="nearly one id per row") as record:
        MultiTaskDNNClassifier(task_column="user", max_epochs=1, **FAST).fit(X, y)
    message = str(record[0].message)
    assert "task_column='user'" in message
    assert "110 task ids for 120 rows" in message
    assert "not whole numbers" not in message


def test_a_few_tasks_with_many_rows_do_not_warn():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    X["scenario"] = rng.choice([f"s{i}" for i in range(60)], size=200)
    y = (X["a"] > 0).astype(int).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MultiTaskDNNClassifier(task_column="scenario", max_epochs=1, **FAST).fit(X, y)


# ---------------------------------------------------------- calibration
class RefusesUnknownTasks(ClassifierMixin, BaseEstimator):
    """Fitted on tasks 'a' and 'b'; predicting any other task id raises."""

    task_column = "task"

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.tasks_ = np.array(["a", "b"], dtype=object)
        return self

    def predict_proba(self, X):
        for task in X["task"]:
            if task not in ("a", "b"):
                raise KeyError(f"unknown task {task!r}")
        p = np.asarray(X["score"], dtype=float)
        return np.column_stack([1 - p, p])


def test_calibration_error_speaks_of_tasks_not_seen_in_fit():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(
        {"score": rng.uniform(0.1, 0.9, 200), "task": rng.choice(["a", "b"], 200)}
    )
    y = rng.randint(2, size=200)
    frozen = FrozenEstimator(RefusesUnknownTasks().fit(X, y))
    with pytest.raises(ValueError, match="tasks not seen in fit") as info:
        PerTaskCalibratedClassifier(frozen).fit(X, y)
    message = str(info.value)
    assert "__unseen_task__" not in message
    assert "RefusesUnknownTasks.predict_proba" in message
    assert "<a task id not seen in fit>" in message


# ------------------------------------------------ warm start, new categories
def _categorical(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = pd.DataFrame(
        {
            "city": rng.choice(["paris", "rome"], n),
            "device": rng.choice(["ios", "android"], n),
            "x": rng.normal(size=n),
        }
    )
    y = np.column_stack([rng.randint(2, size=n), rng.randint(2, size=n)])
    return X, y


def test_warm_start_with_new_categories_warns_once():
    X, y = _categorical()
    model = MMoEClassifier(
        categorical_features=["city", "device"], max_epochs=1, warm_start=True, **FAST
    ).fit(X, y)
    X_new = X.copy()
    X_new.loc[:9, "city"] = "oslo"
    X_new.loc[10:11, "city"] = "lima"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(X_new, y)
    messages = [str(w.message) for w in record if "warm_start" in str(w.message)]
    assert len(messages) == 1
    message = messages[0]
    assert "'city': 2 new" in message and "oslo" in message and "lima" in message
    assert "device" not in message
    assert "encoded as unseen" in message
    assert "warm_start=False" in message
    # The fitted vocabulary is kept: the new categories still code as unseen.
    assert list(model.field_encoder_.vocabularies[0]) == ["paris", "rome"]


def test_warm_start_without_new_categories_is_quiet():
    X, y = _categorical()
    model = MMoEClassifier(
        categorical_features=["city", "device"], max_epochs=1, warm_start=True, **FAST
    ).fit(X, y)
    X_missing = X.copy()
    X_missing.loc[:4, "city"] = None  # missing is its own category, not new
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X_missing, y)


# ------------------------------------------------- ONNX: several galleries
@pytest.fixture(scope="module", params=["mean", "max", "attention"])
def embedder(request):
    galleries, y = _galleries(n=24, seed=1)
    model = GalleryEmbedder(pooling=request.param, max_epochs=1, lr=1e-3, **GALLERY)
    return model.fit(galleries[:16], y[:16]), galleries[16:]


def test_gallery_graph_pools_each_gallery_of_a_run(embedder, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from mtlestimators import export_onnx
    from mtlestimators.export import prepare_inputs

    model, test = embedder
    path = export_onnx(model, tmp_path / "gallery.onnx", gallery_graph="gallery")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "lengths"]
    inputs = prepare_inputs(model, test)
    np.testing.assert_array_equal(inputs["lengths"], [len(g) for g in test])
    assert inputs["lengths"].dtype == np.int64
    (got,) = session.run(None, inputs)
    assert got.shape == (len(test), model.embedding_dim_)
    expected = model.transform(test)
    assert np.abs(got - expected).max() <= 1e-5
    # One gallery per run gives the same rows.
    one = np.vstack([session.run(None, prepare_inputs(model, [g]))[0] for g in test])
    assert np.abs(one - got).max() <= 1e-5


def test_gallery_graph_module_pools_each_gallery(embedder):
    """The module that export_onnx and export_torch trace, run in torch."""
    from mtlestimators.export import prepare_inputs

    model, test = embedder
    graph, example, names, _, axes = model._export_adapter().graph("gallery")
    assert names == ["images", "lengths"] and set(axes) == set(names)
    inputs = prepare_inputs(model, test)
    with torch.no_grad():
        got = graph(*(torch.as_tensor(v) for v in inputs.values())).numpy()
    assert got.shape == (len(test), model.embedding_dim_)
    assert np.abs(got - model.transform(test)).max() <= 1e-5
