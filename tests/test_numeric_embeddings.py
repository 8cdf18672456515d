"""Numeric field encodings (linear, piecewise-linear, periodic; Gorishniy et
al. 2022) and missing numeric values in the tabular field models."""

import pickle
import warnings

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from mtlestimators import (
    MMoEClassifier,
    MSSMClassifier,
    SharedBottomClassifier,
    SingleTaskMLPClassifier,
)
from mtlestimators.export import export_onnx, prepare_inputs
from mtlestimators.tabular._fields import FieldEmbedding, FieldEncoder, quantile_bins

KINDS = ["linear", "piecewise_linear", "periodic"]
FAST = {"verbose": 0, "random_state": 0}


def _frame(n=600, seed=0):
    """A numeric field with a step the linear encoding cannot fit, a binary
    numeric field, a nullable-integer field and a categorical field; NaN and
    pd.NA in the numeric fields."""
    rng = np.random.RandomState(seed)
    a = rng.uniform(-3, 3, size=n)
    frame = pd.DataFrame(
        {
            "a": a,
            "flag": rng.randint(0, 2, size=n).astype(float),
            "count": pd.array(rng.randint(0, 6, size=n), dtype="Int64"),
            "city": rng.choice(["x", "y", "z"], size=n),
        }
    )
    # task 0: |a| > 1.5 (not monotone in a); task 1: the city
    Y = np.column_stack([np.abs(a) > 1.5, frame["city"] == "x"]).astype(float)
    frame.loc[frame.index[::9], "a"] = np.nan
    frame.loc[frame.index[::7], "count"] = pd.NA
    return frame, Y


@pytest.fixture(scope="module", params=KINDS)
def fitted(request):
    frame, Y = _frame()
    # 40 epochs: piecewise-linear fields start as linear ones (version "B"),
    # and MSSM learns task 0's bend more slowly than with bins alone.
    model = MSSMClassifier(numeric_embedding=request.param, max_epochs=40, **FAST)
    return model.fit(frame[:450], Y[:450]), frame, Y


def test_every_encoding_gives_one_vector_per_field():
    bins = ((-1.0, 0.0, 1.0), (0.0, 1.0))
    options = {
        "linear": {},
        "piecewise_linear": {"bins": bins},
        "periodic": {"n_frequencies": 4, "frequency_scale": 0.1},
    }
    numeric = torch.tensor([[0.5, 1.0], [float("nan"), 0.0]])
    for kind in KINDS:
        emb = FieldEmbedding([3], 2, 5, [1, 0, 2], kind, options[kind])
        out = emb(torch.tensor([[2], [1]]), numeric)
        assert out.shape == (2, 3, 5)
        assert torch.isfinite(out).all()
        # the missing value gets its field's missing vector (zero at init)
        assert torch.equal(out[1, 0], emb.numeric_missing[0])


def test_the_model_learns_with_each_encoding(fitted):
    model, frame, Y = fitted
    proba = model.predict_proba(frame[450:])
    assert np.isfinite(proba).all()
    # task 1 (the city) is learned by every encoding
    assert roc_auc_score(Y[450:, 1], proba[:, 1]) > 0.95
    # task 0, |a| > 1.5, is not monotone in a. At 15 epochs only the
    # piecewise-linear encoding of version "A" (bins alone) learned it; at 40
    # every encoding does (version "B", the default, starts linear: 0.82;
    # linear and periodic about 0.999).
    rows = frame["a"][450:].notna().to_numpy()
    assert roc_auc_score(Y[450:, 0][rows], proba[rows, 0]) > 0.8


def test_onnx_matches_predict_proba_with_missing_values(fitted, tmp_path):
    model, frame, _ = fitted
    path = export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    test = frame[450:]
    inputs = prepare_inputs(model, test)
    assert np.isnan(inputs["numeric"]).any()  # NaN reaches the graph
    got = session.run(None, inputs)[0]
    assert np.abs(got - model.predict_proba(test)).max() <= 1e-5
    one = session.run(None, prepare_inputs(model, test[:1]))[0]
    assert np.abs(one - model.predict_proba(test[:1])).max() <= 1e-5


def test_pickle_and_clone_keep_the_fitted_bins(fitted):
    model, frame, Y = fitted
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        again.predict_proba(frame[450:]), model.predict_proba(frame[450:])
    )
    refit = clone(model).fit(frame[:450], Y[:450])  # same data and seed
    np.testing.assert_allclose(
        refit.predict_proba(frame[450:]), model.predict_proba(frame[450:]), atol=1e-6
    )


def test_piecewise_linear_bins_are_quantiles_of_the_training_values():
    frame, Y = _frame()
    model = MMoEClassifier(
        numeric_embedding="piecewise_linear", numeric_bins=8, max_epochs=1, **FAST
    ).fit(frame, Y)
    bins = model.field_encoder_.bins
    assert len(bins) == 3  # a, flag, count
    assert len(bins[0]) == 9  # 8 bins for the continuous field
    assert len(bins[1]) == 2  # a binary field: one bin
    assert len(bins[2]) <= 7  # 6 distinct values: at most 6 bins (7 edges)
    assert all(np.all(np.diff(b) > 0) for b in bins)
    # the edges span the standardized non-missing values
    a = frame["a"].to_numpy()
    z = (a - np.nanmean(a)) / np.nanstd(a)
    assert bins[0][0] == pytest.approx(np.nanmin(z), abs=1e-5)
    assert bins[0][-1] == pytest.approx(np.nanmax(z), abs=1e-5)
    # they are module arguments, so skorch re-creates the same module
    assert model.net_.module_.fields.numeric_layer is not None


def test_degenerate_columns_get_one_bin():
    assert quantile_bins(np.full(5, np.nan, dtype=np.float32), 48) == (0.0, 1.0)
    assert quantile_bins(np.array([2.0, 2.0, np.nan], dtype=np.float32), 48) == (
        2.0,
        3.0,
    )
    assert quantile_bins(np.array([1.0, 3.0], dtype=np.float32), 48) == (1.0, 3.0)


def test_warm_start_reuses_the_bins_and_refuses_another_encoding():
    frame, Y = _frame()
    model = MSSMClassifier(
        numeric_embedding="piecewise_linear", max_epochs=1, warm_start=True, **FAST
    ).fit(frame, Y)
    encoder = model.field_encoder_
    shifted = frame.copy()
    shifted["a"] = shifted["a"] * 3 + 1  # other quantiles: must not refit them
    model.fit(shifted, Y)
    assert model.field_encoder_ is encoder and len(model.history_) == 2
    model.set_params(numeric_embedding="periodic")
    with pytest.raises(ValueError, match="module__numeric_embedding"):
        model.fit(frame, Y)


def test_a_checkpointed_fit_loads_the_same_model(tmp_path):
    frame, Y = _frame(n=300)
    params = dict(numeric_embedding="piecewise_linear", max_epochs=2, **FAST)
    first = MSSMClassifier(checkpoint_dir=tmp_path, **params).fit(frame, Y)
    loaded = MSSMClassifier(checkpoint_dir=tmp_path, **params).fit(frame, Y)
    np.testing.assert_array_equal(
        loaded.predict_proba(frame), first.predict_proba(frame)
    )


# ----------------------------------------------------------- missing values
def test_informative_missingness_is_learned():
    """The label is 'the value is missing': only a learned missing embedding
    (not an imputed value) can tell such rows apart."""
    rng = np.random.RandomState(1)
    n = 800
    x = rng.normal(size=n)
    missing = rng.rand(n) < 0.3
    y = (missing ^ (rng.rand(n) < 0.05)).astype(int)  # 5% label noise
    x[missing] = np.nan
    X = np.column_stack([x, rng.normal(size=n)])
    for kind in KINDS:
        model = SharedBottomClassifier(numeric_embedding=kind, max_epochs=10, **FAST)
        model.fit(X[:600], y[:600])
        proba = model.predict_proba(X[600:])[:, 1]
        assert np.isfinite(proba).all()
        # a constant prediction has AUC 0.5; the missing flag gives ~0.95
        assert roc_auc_score(y[600:], proba) > 0.85, kind


def test_nullable_dtypes_reach_the_model_as_missing():
    frame, Y = _frame(n=200)
    frame["count"] = frame["count"].astype("Float64")
    model = MMoEClassifier(max_epochs=1, **FAST).fit(frame, Y)
    assert model.is_categorical_.tolist() == [False, False, False, True]
    numeric = model._predict_inputs(frame)["numeric"]
    assert np.isnan(numeric[:, 2]).sum() == frame["count"].isna().sum()
    assert np.isfinite(model.predict_proba(frame)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_a_column_missing_everywhere_in_fit_still_works(kind):
    frame, Y = _frame(n=200)
    frame["a"] = np.nan
    model = MMoEClassifier(numeric_embedding=kind, max_epochs=1, **FAST).fit(frame, Y)
    encoder = model.field_encoder_
    assert encoder.means[0] == 0.0 and encoder.scales[0] == 1.0
    test = frame.copy()
    test["a"] = np.linspace(-1, 1, len(test))  # values at predict time
    assert np.isfinite(model.predict_proba(test)).all()


def test_infinity_is_still_refused():
    frame, Y = _frame(n=100)
    frame.loc[3, "a"] = np.inf
    with pytest.raises(ValueError, match="infinity in numeric field 'a'"):
        MMoEClassifier(max_epochs=1, **FAST).fit(frame, Y)


def test_standardization_ignores_the_missing_values():
    X = np.array([[1.0], [np.nan], [3.0], [np.nan]])
    encoder = FieldEncoder.fit(X, np.array([False]), ["a"])
    assert encoder.means[0] == 2.0 and encoder.scales[0] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        FieldEncoder.fit(np.full((3, 1), np.nan), np.array([False]), ["a"], 4)


# -------------------------------------------------- SharedBottom and single-task
@pytest.mark.parametrize("cls", [SharedBottomClassifier, SingleTaskMLPClassifier])
def test_raw_field_frames_and_their_export(cls, tmp_path):
    frame, Y = _frame()
    model = cls(numeric_embedding="periodic", max_epochs=10, **FAST)
    model.fit(frame[:450], Y[:450])
    assert model.is_categorical_.tolist() == [False, False, False, True]
    proba = model.predict_proba(frame[450:])
    assert roc_auc_score(Y[450:, 1], proba[:, 1]) > 0.95
    path = export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, prepare_inputs(model, frame[450:]))[0]
    assert np.abs(got - proba).max() <= 1e-5
