"""export_onnx / export_torch: the exported graphs reproduce predict_proba
(transform for galleries) on held-out rows, for every supported estimator."""

import sys

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

import mtlestimators
from mtlestimators import (
    AutoTaskClassifier,
    CrossStitchClassifier,
    GalleryEmbedder,
    MMoEClassifier,
    MSSMClassifier,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
    PLEClassifier,
    SharedBottomClassifier,
    SNRClassifier,
)
from mtlestimators.export import (
    export_onnx,
    export_torch,
    pool_image_features,
    prepare_inputs,
)

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOL = 1e-5
FAST = {"verbose": 0, "random_state": 0}


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, estimator, X):
    return session.run(None, prepare_inputs(estimator, X))[0]


# ---------------------------------------------------------------------- data
def _scenario_data(n=400, seed=0):
    """Three tasks 0, 1, 2 in training; the test split adds task 7 (unseen)."""
    rng = np.random.RandomState(seed)
    features = rng.normal(size=(n, 3))
    task = rng.randint(3, size=n).astype(float)
    y = (features[:, 0] + 0.5 * features[:, 1] + 0.4 * (task - 1) > 0).astype(int)
    X = np.column_stack([features, task])
    cut = 300
    X_test = X[cut:].copy()
    X_test[:20, -1] = 7.0  # a task id not seen in fit
    return X[:cut], y[:cut], X_test, y[cut:]


def _field_data(n=400, seed=0):
    """Columns: city (str, categorical), x1, x2 (numeric), level (int,
    categorical). Two binary tasks, 15% of task 2's labels missing. The test
    split holds a city never seen in fit and a missing city."""
    rng = np.random.RandomState(seed)
    city = np.array(["ams", "ber", "cph", "dub"], dtype=object)[rng.randint(4, size=n)]
    x = rng.normal(size=(n, 2))
    level = rng.randint(3, size=n)
    X = np.empty((n, 4), dtype=object)
    X[:, 0], X[:, 1], X[:, 2], X[:, 3] = city, x[:, 0], x[:, 1], level
    y = np.column_stack(
        [x[:, 0] - 0.5 * x[:, 1] > 0, np.isin(city, ["ams", "ber"]) ^ (level == 2)]
    ).astype(float)
    y[rng.rand(n) < 0.15, 1] = np.nan
    cut = 300
    X_test = X[cut:].copy()
    X_test[:10, 0] = "oslo"  # unseen category
    X_test[10, 0] = None  # missing category
    return X[:cut], y[:cut], X_test, y[cut:]


def _check_parity(session, estimator, X_test):
    """Batch of all rows, and single rows (the dynamic batch axis)."""
    expected = estimator.predict_proba(X_test)
    got = _run(session, estimator, X_test)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOL
    for i in (0, 5, len(X_test) - 1):
        one = _run(session, estimator, X_test[i : i + 1])
        assert one.shape == (1, expected.shape[1])
        assert np.abs(one - expected[i : i + 1]).max() <= TOL
    return got


def _accuracy(proba, y):
    """Accuracy of (n, n_classes) class probabilities of one task."""
    return float(np.mean(proba.argmax(axis=1) == y))


# ------------------------------------------------------------ scenario models
_EXPORTED = {}


def _exported_scenario(cls, tmp_path_factory):
    """One fit and export per scenario class, shared by the tests."""
    if cls not in _EXPORTED:
        X, y, X_test, y_test = _scenario_data()
        estimator = cls(max_epochs=15, **FAST).fit(X, y)
        path = tmp_path_factory.mktemp("scenario") / "model.onnx"
        assert export_onnx(estimator, path) == path
        _EXPORTED[cls] = estimator, _session(path), X_test, y_test, path
    return _EXPORTED[cls]


@pytest.fixture(scope="module", params=[AutoTaskClassifier, MultiTaskDNNClassifier])
def scenario(request, tmp_path_factory):
    return _exported_scenario(request.param, tmp_path_factory)


def test_scenario_onnx_matches_predict_proba(scenario):
    estimator, session, X_test, y_test, _ = scenario
    got = _check_parity(session, estimator, X_test)
    # rows of the unseen task 7 go through the graph with code 0
    assert (prepare_inputs(estimator, X_test[:20])["task"] == 0).all()
    assert _accuracy(got, y_test) > 0.8  # a trained model, not a constant
    assert [i.shape[0] for i in session.get_inputs()] == ["batch", "batch"]
    assert [i.name for i in session.get_inputs()] == ["features", "task"]


def test_scenario_onnx_metadata_holds_the_task_codes(scenario):
    estimator, _, _, _, path = scenario
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["mtlestimators.estimator"] == type(estimator).__name__
    assert meta["mtlestimators.tasks"] == "[0.0, 1.0, 2.0]"
    assert meta["mtlestimators.classes"] == "[0, 1]"


def test_export_torch_matches_predict_proba(tmp_path, tmp_path_factory):
    estimator, _, X_test, _, _ = _exported_scenario(
        AutoTaskClassifier, tmp_path_factory
    )
    path = export_torch(estimator, tmp_path / "model.pt2")
    program = torch.export.load(str(path)).module()
    for rows in (slice(None), slice(3, 4)):
        inputs = [
            torch.as_tensor(v) for v in prepare_inputs(estimator, X_test[rows]).values()
        ]
        got = program(*inputs).numpy()
        assert np.abs(got - estimator.predict_proba(X_test[rows])).max() <= TOL


# ------------------------------------------------------------ tabular family
FIELD_CASES = {
    # (class, columns of the field data, categorical_features, parameters)
    "mssm": (MSSMClassifier, [0, 1, 2, 3], [0, 3], {}),
    "snr": (SNRClassifier, [0, 1, 2, 3], [0, 3], {}),
    "mmoe": (MMoEClassifier, [0, 1, 2, 3], [0, 3], {}),
    "ple_categorical_only": (PLEClassifier, [0, 3], [0, 1], {"n_levels": 1}),
    "cross_stitch_numeric_only": (CrossStitchClassifier, [1, 2], None, {}),
}


def _exported_field(case, tmp_path_factory):
    if case not in _EXPORTED:
        cls, columns, categorical, params = FIELD_CASES[case]
        X, y, X_test, y_test = _field_data()
        X, X_test = X[:, columns], X_test[:, columns]
        if categorical is None:
            X, X_test = X.astype(float), X_test.astype(float)
        estimator = cls(
            max_epochs=20, categorical_features=categorical, **params, **FAST
        )
        estimator.fit(X, y)
        path = tmp_path_factory.mktemp("field") / "model.onnx"
        export_onnx(estimator, path)
        _EXPORTED[case] = estimator, _session(path), X_test, y_test, path
    return _EXPORTED[case]


@pytest.fixture(scope="module", params=sorted(FIELD_CASES))
def field_model(request, tmp_path_factory):
    return _exported_field(request.param, tmp_path_factory)


def test_field_onnx_matches_predict_proba(field_model):
    estimator, session, X_test, y_test, _ = field_model
    got = _check_parity(session, estimator, X_test)
    assert got.shape == (len(X_test), 2)  # K = 2 binary tasks
    names = [i.name for i in session.get_inputs()]
    encoder = estimator.field_encoder_
    assert ("categorical" in names) == bool(encoder.vocabularies)
    assert ("numeric" in names) == bool((~encoder.categorical).any())
    if encoder.vocabularies and encoder.categorical[0]:
        codes = prepare_inputs(estimator, X_test[:11])["categorical"][:, 0]
        assert (codes[:10] == 0).all() and codes[10] == 1  # unseen, missing
    # the task the features determine is learned (task 2 needs the
    # categorical fields and their interaction, so only task 1 is checked)
    if "numeric" in names:
        assert np.mean((got[:, 0] > 0.5) == (y_test[:, 0] == 1)) > 0.8


def test_mssm_gates_are_deterministic_in_the_graph(tmp_path_factory):
    estimator, session, X_test, _, _ = _exported_field("mssm", tmp_path_factory)
    first = _run(session, estimator, X_test)
    assert np.array_equal(first, _run(session, estimator, X_test))
    assert np.abs(first - estimator.predict_proba(X_test)).max() <= TOL
    # the graph holds the test-time gate values; in training mode the gates
    # are random samples, and the module's outputs change from call to call
    module = estimator.net_.module_
    inputs = {
        k: torch.as_tensor(v) for k, v in estimator._predict_inputs(X_test[:5]).items()
    }
    module.train()
    try:
        with torch.no_grad():
            a, b = module(**inputs)[0], module(**inputs)[0]
    finally:
        module.eval()
    assert not torch.equal(a, b)


def test_shared_bottom_multiclass_onnx(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 4))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])  # 3 classes, 1-D y
    estimator = SharedBottomClassifier(max_epochs=30, **FAST).fit(X[:300], y[:300])
    session = _session(export_onnx(estimator, tmp_path / "sb.onnx"))
    got = _check_parity(session, estimator, X[300:])
    assert got.shape == (100, 3)
    assert _accuracy(got, y[300:]) > 0.8


# ------------------------------------------------------------------ galleries
def _galleries(n=40, seed=0):
    rng = np.random.RandomState(seed)
    sizes = rng.randint(1, 6, size=n)
    label = rng.randint(2, size=n)
    galleries = [
        (rng.randint(0, 120, size=(k, 12, 12)) + 120 * b).astype(np.uint8)
        for k, b in zip(sizes, label)
    ]
    return galleries, np.column_stack([label, rng.randint(3, size=n)])


GALLERY = {"backbone": "small_vgg", "image_size": 8, "lr": 1e-3, "max_epochs": 3}


def test_gallery_image_graph_pooled_in_numpy_matches_transform(tmp_path):
    galleries, y = _galleries()
    estimator = GalleryEmbedder(trainable_layers=1, **GALLERY, **FAST)
    estimator.fit(galleries[:30], y[:30])
    session = _session(export_onnx(estimator, tmp_path / "encoder.onnx"))
    assert session.get_inputs()[0].shape[0] == "images"
    test = galleries[30:]
    features = _run(session, estimator, test)
    assert features.shape == (sum(len(g) for g in test), estimator.embedding_dim_)
    pooled = pool_image_features(features, [len(g) for g in test], "mean")
    expected = estimator.transform(test)
    assert np.abs(pooled - expected).max() <= TOL
    # one image at a time through the dynamic axis
    one = _run(session, estimator, [test[0][:1]])
    assert np.abs(one - features[:1]).max() <= TOL


def test_gallery_graph_with_attention_pooling_matches_transform(tmp_path):
    galleries, y = _galleries(seed=1)
    estimator = GalleryEmbedder(pooling="attention", **GALLERY, **FAST)
    estimator.fit(galleries[:30], y[:30])
    path = export_onnx(estimator, tmp_path / "gallery.onnx", gallery_graph="gallery")
    session = _session(path)
    test = galleries[30:]
    got = np.vstack([_run(session, estimator, [g]) for g in test])
    expected = estimator.transform(test)
    assert np.abs(got - expected).max() <= TOL
    # attention weights are learned: numpy pooling refuses it
    with pytest.raises(ValueError, match="gallery_graph='gallery'"):
        pool_image_features(np.ones((3, 2)), [3], "attention")


def test_pool_image_features_checks_lengths():
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(
        pool_image_features(features, [1, 3], "max"), [[0, 1, 2], [9, 10, 11]]
    )
    np.testing.assert_allclose(
        pool_image_features(features, [3, 1], "mean"), [[3, 4, 5], [9, 10, 11]]
    )
    with pytest.raises(ValueError, match="lengths"):
        pool_image_features(features, [2, 3])


# --------------------------------------------------------------------- errors
def test_unfitted_estimator_raises_not_fitted(tmp_path):
    for export in (export_onnx, export_torch):
        with pytest.raises(NotFittedError):
            export(MSSMClassifier(), tmp_path / "model")
    with pytest.raises(NotFittedError):
        prepare_inputs(AutoTaskClassifier(), np.zeros((2, 3)))


def test_unsupported_estimator_raises_type_error_naming_supported_types(tmp_path):
    for estimator in (
        LogisticRegression(),
        PerTaskCalibratedClassifier(AutoTaskClassifier()),
    ):
        with pytest.raises(TypeError, match="AutoTaskClassifier.*GalleryEmbedder"):
            export_onnx(estimator, tmp_path / "model.onnx")


@pytest.fixture(scope="module")
def small_fitted():
    X, y, _, _ = _scenario_data(n=320)
    return MultiTaskDNNClassifier(max_epochs=1, **FAST).fit(X, y)


def test_bad_path_raises_clear_errors(small_fitted, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        export_onnx(small_fitted, tmp_path / "missing" / "model.onnx")
    with pytest.raises(ValueError, match="is a directory"):
        export_onnx(small_fitted, tmp_path)
    with pytest.raises(TypeError, match="path must be a file path"):
        export_torch(small_fitted, 3)
    with pytest.raises(ValueError, match="gallery_graph"):
        export_onnx(small_fitted, tmp_path / "m.onnx", gallery_graph="pooled")


def test_missing_onnx_raises_import_error_with_install_hint(
    small_fitted, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "mtlestimators\[export\]"'):
        export_onnx(small_fitted, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_export_onnx_is_exported_at_package_level():
    assert mtlestimators.export_onnx is export_onnx
    assert mtlestimators.export_torch is export_torch
