"""Bad input, estimator by estimator.

Every refusal is a ValueError or TypeError whose message names the argument
and says how to fix it; a refused ``fit`` runs no training epoch and leaves a
fresh estimator unfitted; and a fitted estimator is exactly as it was after a
refused call (a ``fit`` continuing with ``warm_start``, a ``predict``):
same outputs, same weights, same history, same fitted attributes. Inputs that
have a documented fallback instead of an error (an unseen task id or
category, a missing label in one task, a missing categorical value, images of
mixed sizes and colours) are checked for that behaviour.
"""

import contextlib
import copy
import functools
import warnings

import numpy as np
import pandas as pd
import pytest
import skorch
import torch
from PIL import Image
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from mtlestimators import (
    AutoTaskClassifier,
    GalleryEmbedder,
    GalleryIndex,
    MultiTaskDNNClassifier,
    PerTaskCalibratedClassifier,
)
from mtlestimators._core.base import NetEstimatorBase
from mtlestimators.gallery._backbone import small_vgg
from mtlestimators.tabular._base import FieldClassifierBase
from mtlestimators.tabular._fields import MISSING, UNSEEN
from mtlestimators.utils import all_estimators
from tests._harness import fast_instance, make_data, outputs

ESTIMATORS = [cls for _, cls in all_estimators()]
CLASSIFIERS = [cls for cls in ESTIMATORS if is_classifier(cls())]
SCENARIO = [AutoTaskClassifier, MultiTaskDNNClassifier, PerTaskCalibratedClassifier]
TABULAR = [cls for cls in CLASSIFIERS if cls not in SCENARIO]
FIELD = [cls for cls in TABULAR if issubclass(cls, FieldClassifierBase)]
GATED = [cls for cls in TABULAR if "gate" in cls().get_params()]
WEIGHTED = [cls for cls in ESTIMATORS if "loss_weighter" in cls().get_params()]
MULTI_TASK = TABULAR + [GalleryEmbedder]  # y is a (n, K) table of tasks

ids = functools.partial(pytest.mark.parametrize, ids=lambda c: c.__name__)


def test_the_matrix_covers_every_public_estimator():
    """A new estimator must join these groups (and this test's list)."""
    assert {cls.__name__ for cls in ESTIMATORS} == {
        "AutoTaskClassifier",
        "CrossStitchClassifier",
        "GalleryEmbedder",
        "MMoEClassifier",
        "MSSMClassifier",
        "MultiTaskDNNClassifier",
        "PLEClassifier",
        "PerTaskCalibratedClassifier",
        "SNRClassifier",
        "SharedBottomClassifier",
        "SingleTaskMLPClassifier",
    }
    assert set(SCENARIO) | set(TABULAR) | {GalleryEmbedder} == set(ESTIMATORS)
    assert {c.__name__ for c in GATED} == {
        "MMoEClassifier",
        "MSSMClassifier",
        "PLEClassifier",
        "SNRClassifier",
    }
    assert set(WEIGHTED) == set(MULTI_TASK)


# ------------------------------------------------------------------ helpers
def _prefixed(cls, params: dict) -> dict:
    """Net parameters of a meta-estimator go to its estimator."""
    prefix = "estimator__" if cls is PerTaskCalibratedClassifier else ""
    return {prefix + k: v for k, v in params.items()}


def _instance(cls, **params):
    est = fast_instance(cls)
    est.set_params(**_prefixed(cls, {"max_epochs": 2, **params}))
    return est


_FITTED = {}


def _fitted(cls):
    """The estimator of ``cls`` fitted once for the module, and its data."""
    if cls not in _FITTED:
        est = _instance(cls)
        X, y, X_test, y_test = make_data(est, n_samples=48)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # rows without labels
            est.fit(X, y)
        _FITTED[cls] = est, (X, y, X_test, y_test)
    return _FITTED[cls]


@contextlib.contextmanager
def fitted(cls):
    """The shared fitted estimator, for a check that it is left unchanged
    (cheaper than a deep copy): its settings are put back afterwards, and it
    is refit for the next test when the check fails."""
    model, data = _fitted(cls)
    settings = _settings(model)
    try:
        yield model, data
    except BaseException:
        del _FITTED[cls]
        raise
    finally:
        _restore(settings)


def _settings(model) -> list:
    """The parameters (routed ones too) of the estimator and of the estimator
    a meta-estimator holds: what set_params changes, not fitted attributes."""
    owners = [model, getattr(model, "estimator", None)]
    return [
        (owner, {k: v for k, v in vars(owner).items() if not k.endswith("_")})
        for owner in owners
        if isinstance(owner, BaseEstimator)
    ]


def _restore(settings: list) -> None:
    for owner, params in settings:
        for key in [k for k in vars(owner) if not k.endswith("_")]:
            if key not in params:
                delattr(owner, key)
        vars(owner).update(params)


def _net(model):
    inner = getattr(model, "estimator_", model)
    if isinstance(inner, FrozenEstimator):
        inner = inner.estimator
    return inner.net_


def snapshot(model, X) -> dict:
    net = _net(model)
    return {
        "net": net,
        "outputs": np.array(outputs(model, X), copy=True),
        "state": {k: v.clone() for k, v in net.module_.state_dict().items()},
        "epochs": len(net.history),
        "attributes": {k: v for k, v in vars(model).items() if k.endswith("_")},
    }


def assert_unchanged(model, X, before: dict) -> None:
    after = snapshot(model, X)
    assert after["net"] is before["net"]
    np.testing.assert_array_equal(after["outputs"], before["outputs"])
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    assert after["epochs"] == before["epochs"]
    assert after["attributes"].keys() == before["attributes"].keys()
    for key, value in before["attributes"].items():
        assert after["attributes"][key] is value, key


@pytest.fixture
def epochs(monkeypatch):
    """Records every training epoch any skorch net starts."""
    started = []
    run = skorch.NeuralNet.run_single_epoch

    def recording(self, iterator, training, *args, **kwargs):
        if training:  # skorch also calls it for the (possibly empty) validation
            started.append(type(self).__name__)
        return run(self, iterator, training, *args, **kwargs)

    monkeypatch.setattr(skorch.NeuralNet, "run_single_epoch", recording)
    return started


def assert_fit_refused(
    cls, X, y, exc, match, epochs, params=None, context=contextlib.nullcontext
):
    """(a, b) ``exc`` with a message matching ``match``; (c) raised before any
    epoch, and a fresh estimator stays unfitted; (d) a fitted estimator that
    continues with warm_start=True is left exactly as it was."""
    params = _prefixed(cls, params or {})
    _fitted(cls)  # fitted before counting epochs
    n_epochs = len(epochs)
    fresh = _instance(cls).set_params(**params)
    with context(), pytest.raises(exc, match=match):
        fresh.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)

    with fitted(cls) as (model, (*_, X_test, _)):
        before = snapshot(model, X_test)
        settings = _settings(model)
        model.set_params(**_prefixed(cls, {"warm_start": True}), **params)
        with context(), pytest.raises(exc, match=match):
            model.fit(X, y)
        assert len(epochs) == n_epochs, "training started before the error"
        _restore(settings)  # the bad settings would change predict
        assert_unchanged(model, X_test, before)


def assert_predict_refused(cls, X, exc, match):
    with fitted(cls) as (model, (*_, X_test, _)):
        before = snapshot(model, X_test)
        with pytest.raises(exc, match=match):
            outputs(model, X)
        assert_unchanged(model, X_test, before)


def _galleries(X):
    """The harness's gallery data as a list of galleries of one image."""
    return [[row[None, :]] for row in np.asarray(X)]


# ----------------------------------------------- columns of X at predict
@ids("cls", CLASSIFIERS)
def test_wrong_number_of_features_at_predict(cls):
    _, (X, *_) = _fitted(cls)
    assert_predict_refused(
        cls,
        X[:, :-1],
        ValueError,
        r"X has 5 features, but \w+ is expecting 6 features as input\.\n"
        r"Pass X with the 6 columns the model was fit on",
    )


def test_gallery_inputs_have_no_fixed_width():
    """Documented: every image is resized to image_size, so a 2-D array of
    another width is read and embedded (there is no n_features_in_)."""
    model, (X, *_) = _fitted(GalleryEmbedder)
    Z = model.transform(np.asarray(X)[:4, :40])
    assert Z.shape == (4, model.embedding_dim_) and np.isfinite(Z).all()
    assert not hasattr(model, "n_features_in_")


def _frame(X):
    X = np.asarray(X)
    columns = [f"f{j}" for j in range(X.shape[1])]
    return pd.DataFrame(X, columns=columns)


@ids("cls", CLASSIFIERS)
def test_wrong_column_names_at_predict(cls):
    _, (X, y, X_test, _) = _fitted(cls)
    model = _instance(cls, max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(_frame(X), y)
    frame = _frame(X_test)
    before = snapshot(model, frame)
    fix = r"\nPass X with the columns the model was fit on \(same names, same order\)"
    renamed = frame.rename(columns={"f0": "zz"})
    with pytest.raises(
        ValueError, match=r"feature names should match(?s:.*)- zz(?s:.*)" + fix
    ):
        outputs(model, renamed)
    with pytest.raises(ValueError, match=r"must be in the same order(?s:.*)" + fix):
        outputs(model, frame[frame.columns[::-1]])
    assert_unchanged(model, frame, before)


# ------------------------------------------------------- NaN / inf in X
def _non_finite_match(cls, value) -> str:
    if cls in SCENARIO:  # the features beside the task column
        return (
            r"Input X contains NaN or infinity in column\(s\) \[0\]; the "
            r"features must be finite numbers: impute the missing values"
        )
    # The tabular field models: NaN is a missing value, infinity an error.
    return (
        r"Input X contains infinity in numeric field 'x0' \(column 0\)\. "
        r"Replace it with a finite value, or with NaN to mark it missing"
    )


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@ids("cls", CLASSIFIERS)
def test_non_finite_features_are_refused(cls, value, epochs):
    if np.isnan(value) and issubclass(cls, FieldClassifierBase):
        pytest.skip("NaN in a numeric field is a missing value (test_fields)")
    _, (X, y, X_test, _) = _fitted(cls)
    match = _non_finite_match(cls, value)
    bad = np.array(X, copy=True)
    bad[0, 0] = value
    assert_fit_refused(cls, bad, y, ValueError, match, epochs)
    bad_test = np.array(X_test, copy=True)
    bad_test[1, 0] = value
    assert_predict_refused(cls, bad_test, ValueError, match)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_pixels_are_refused(value, epochs):
    _, (X, y, *_) = _fitted(GalleryEmbedder)
    bad = _galleries(X)
    bad[2] = [np.full((4, 4), value)]
    match = r"X\[2\]\[0\] contains NaN or infinity; images must be finite\. Replace"
    assert_fit_refused(GalleryEmbedder, bad, y, ValueError, match, epochs)
    assert_predict_refused(GalleryEmbedder, bad, ValueError, match)


def _categorical_data(n=48, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3)).astype(object)
    X[:, 0] = np.array(["u", "v", "w", None])[np.arange(n) % 4]
    y = np.column_stack([X[:, 1] > 0, X[:, 2] > 0]).astype(float)
    return X, y


@ids("cls", FIELD)
def test_missing_and_unseen_categories_are_categories_of_their_own(cls):
    """Documented: NaN/None in a categorical field is the "missing" category
    (trained when fit saw it); a category not seen in fit gets the "unseen"
    code. Neither warns."""
    X, y = _categorical_data()
    model = _instance(cls, categorical_features=[0], max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, y)
        rows = np.repeat(X[:1], 4, axis=0)
        rows[:, 0] = [None, np.nan, "never seen", "also new"]
        proba = model.predict_proba(rows)
    codes = model.field_encoder_.transform(rows)["categorical"][:, 0]
    np.testing.assert_array_equal(codes, [MISSING, MISSING, UNSEEN, UNSEEN])
    np.testing.assert_array_equal(proba[0], proba[1])
    np.testing.assert_array_equal(proba[2], proba[3])
    assert np.isfinite(proba).all()


# ----------------------------------------------------------- labels in y
@ids("cls", MULTI_TASK)
def test_a_missing_label_trains_the_other_tasks(cls, monkeypatch, epochs):
    _, (X, y, *_) = _fitted(cls)
    y = np.array(y, dtype=float, copy=True)
    y[:, 1] = np.where(np.isnan(y[:, 1]), 1.0, y[:, 1])
    y[:6, 0] = np.nan  # rows 0-5 have task 0 missing, task 1 labelled
    trained = []
    train = NetEstimatorBase._train

    def spy(self, X, Y, *args, **kwargs):
        trained.append(np.array(Y, copy=True))
        return train(self, X, Y, *args, **kwargs)

    monkeypatch.setattr(NetEstimatorBase, "_train", spy)
    n_epochs = len(epochs)
    model = _instance(cls, max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no row is dropped
        model.fit(X, y)
    (Y,) = trained
    assert len(epochs) == n_epochs + 1  # the epoch recorder sees training
    assert Y.shape == y.shape  # every row kept: each has some label
    assert np.isnan(Y[:6, 0]).all() and not np.isnan(Y[:6, 1]).any()
    assert np.isfinite(model.history_[:, "train_loss"]).all()

    y[0, :] = np.nan  # a row with no label at all cannot train anything
    with pytest.warns(UserWarning, match=r"Dropped 1 of 36 rows whose labels"):
        clone(model).fit(X, y)
    assert len(trained[-1]) == len(y) - 1


@ids("cls", SCENARIO)
def test_scenario_models_need_every_label(cls, epochs):
    """One label per row: a missing one is refused (documented), with the
    fix of dropping the row."""
    _, (X, y, *_) = _fitted(cls)
    bad = np.array(y, dtype=float, copy=True)
    bad[3] = np.nan
    match = r"y has 1 missing label\(s\) \(NaN/None\);(?s:.*)Drop the unlabelled rows"
    assert_fit_refused(cls, X, bad, ValueError, match, epochs)


@ids("cls", MULTI_TASK)
def test_a_task_column_without_labels_is_named(cls, epochs):
    _, (X, y, *_) = _fitted(cls)
    names = ["click", "buy", "stay"][: np.shape(y)[1]]
    bad = pd.DataFrame(np.array(y, dtype=float, copy=True), columns=names)
    bad["buy"] = np.nan
    match = (
        r"Task 'buy' \(column 1 of y\) has no label at all; give it at least "
        r"one labelled row or drop the column"
    )
    assert_fit_refused(cls, X, bad, ValueError, match, epochs)


@ids("cls", CLASSIFIERS + [GalleryEmbedder])
def test_a_one_class_task_is_refused(cls, epochs):
    _, (X, y, *_) = _fitted(cls)
    bad = np.array(y, dtype=float, copy=True)
    if bad.ndim == 1:
        bad[:] = 1
        task = r"Task 'task_0' \(column 0 of y\)"
    else:
        bad[:, 1] = np.where(np.isnan(bad[:, 1]), np.nan, 1)
        task = r"Task 'task_1' \(column 1 of y\)"
    match = (
        task + r" has only one class \(1\.0\); a classification task needs at "
        r"least 2 classes\. Add labelled rows of another class, or drop the task"
    )
    assert_fit_refused(cls, X, bad, ValueError, match, epochs)


def _as_strings(y):
    """Binary labels 0/1 as "no"/"yes" (None where missing): the first task
    only for the gallery data, whose other tasks are not binary."""
    y = np.array(y, dtype=float)
    words = np.where(y == 1, "yes", "no").astype(object)
    words[np.isnan(y)] = None
    if y.ndim == 2 and y.shape[1] == 3:
        out = y.astype(object)
        out[:, 0] = words[:, 0]
        return out
    return words


@ids("cls", CLASSIFIERS + [GalleryEmbedder])
def test_string_labels_are_classes(cls):
    _, (X, y, X_test, _) = _fitted(cls)
    labels = _as_strings(y)
    model = _instance(cls, max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(X, labels)
    if cls is GalleryEmbedder:
        predicted = model.predict_tasks(X_test).iloc[:, 0].to_numpy()
        np.testing.assert_array_equal(model.task_specs_[0].classes, ["no", "yes"])
    else:
        predicted = model.predict(X_test)
        classes = model.classes_ if labels.ndim == 1 else model.classes_[0]
        np.testing.assert_array_equal(classes, ["no", "yes"])
    assert set(np.ravel(predicted)) <= {"no", "yes"}


@ids("cls", CLASSIFIERS + [GalleryEmbedder])
def test_mixed_string_and_number_labels_are_refused(cls, epochs):
    _, (X, y, *_) = _fitted(cls)
    bad = _as_strings(y)
    column = bad if bad.ndim == 1 else bad[:, 0]
    column[column == "no"] = 0
    match = r"mixes label types \(strings and numbers\); use one type"
    assert_fit_refused(cls, X, bad, ValueError, match, epochs)


@ids("cls", CLASSIFIERS)
def test_continuous_targets_are_refused_by_classifiers(cls, epochs):
    _, (X, y, *_) = _fitted(cls)
    bad = np.random.RandomState(0).normal(size=np.shape(y))
    match = r"(?s)(?=.*continuous)(?=.*\by\b).*binarize the values \(e\.g\. y > thre"
    assert_fit_refused(cls, X, bad, ValueError, match, epochs)


def test_continuous_targets_are_regression_tasks_for_the_embedder():
    """Documented: GalleryEmbedder infers a regression task from them."""
    _, (X, y, *_) = _fitted(GalleryEmbedder)
    values = np.random.RandomState(0).normal(size=len(y))
    model = _instance(GalleryEmbedder, max_epochs=1).fit(X, values)
    assert [s.kind for s in model.task_specs_] == ["regression"]


# --------------------------------------------------------- task-id column
def _with_ids(X, ids):
    X = np.array(X, dtype=object, copy=True)
    X[:, -1] = ids
    return X


@ids("cls", SCENARIO)
@pytest.mark.parametrize(
    "case", ["out_of_range", "missing_name", "name_without_names", "ids_elsewhere"]
)
def test_task_column_errors(cls, case, epochs):
    _, (X, y, *_) = _fitted(cls)
    if case == "out_of_range":
        params = {"task_column": 9}
        match = (
            r"task_column=9 is out of range for X with 6 column\(s\); give the "
            r"index \(or DataFrame column name\) of the column that holds the task"
        )
    elif case == "missing_name":
        X, params = _frame(X), {"task_column": "scenario"}
        match = r"task_column='scenario' is not a column of X; its columns are \["
    elif case == "name_without_names":
        params = {"task_column": "scenario"}
        match = r"task_column='scenario' is a column name, but X has no column names"
    else:  # the ids are in the last column, task_column points at a feature
        params = {"task_column": 0}
        match = (
            r"Column 5 of X holds a value that is not a number \('[ab]'\); every "
            r"column but task_column=0 is a numeric feature(?s:.*)set task_column "
            r"to the column of task ids"
        )
    assert_fit_refused(cls, X, y, ValueError, match, epochs, params)


@ids("cls", SCENARIO)
@pytest.mark.parametrize("missing", [None, np.nan], ids=["None", "nan"])
def test_missing_task_ids_are_refused(cls, missing, epochs):
    _, (X, y, X_test, _) = _fitted(cls)
    match = (
        r"The task column \(5\) of X has missing task ids \(NaN/None\);(?s:.*)"
        r"Use a label of its own \(e\.g\. 'unknown'\)"
    )
    ids_ = np.array(X[:, -1], dtype=object)
    ids_[4] = missing
    assert_fit_refused(cls, _with_ids(X, ids_), y, ValueError, match, epochs)
    test_ids = np.array(X_test[:, -1], dtype=object)
    test_ids[0] = missing
    assert_predict_refused(cls, _with_ids(X_test, test_ids), ValueError, match)


@ids("cls", SCENARIO)
def test_unseen_task_ids_take_the_unseen_task_path(cls):
    """Documented fallback, no warning: an id not seen in fit has code 0, so
    any two unseen ids get the same predictions."""
    model, (X, _, X_test, _) = _fitted(cls)
    assert "zz" not in set(X[:, -1]) and "c" not in set(X[:, -1])
    rows = X_test[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = model.predict_proba(_with_ids(rows, "c"))
        other = model.predict_proba(_with_ids(rows, "zz"))
    np.testing.assert_array_equal(one, other)
    assert np.isfinite(one).all()


# --------------------------------------------------------------- galleries
def _truncated_png(tmp_path):
    good = tmp_path / "good.png"
    pixels = np.random.RandomState(0).randint(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(pixels).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    return str(truncated)


@pytest.mark.parametrize(
    "case",
    ["empty_gallery", "no_galleries", "missing_file", "unreadable_file", "bare_image"],
)
def test_bad_galleries_are_refused(case, tmp_path, epochs):
    _, (X, y, *_) = _fitted(GalleryEmbedder)
    galleries = _galleries(X)
    exc = ValueError
    if case == "empty_gallery":
        galleries[1] = []
        match = r"X\[1\] is an empty gallery; every gallery needs at least one image"
    elif case == "no_galleries":
        galleries = []
        match = r"X holds 0 galleries; a minimum of 1 is required"
    elif case == "missing_file":
        galleries[1] = [str(tmp_path / "gone.png")]
        match = r"X\[1\]\[0\]: image file '.*gone\.png' does not exist; check the path"
    elif case == "unreadable_file":
        (tmp_path / "notes.png").write_text("not an image")
        galleries[1] = [str(tmp_path / "notes.png")]
        match = r"notes\.png' is not a readable image file(?s:.*)Remove it"
    else:
        galleries[1] = str(tmp_path / "photo.png")
        exc, match = TypeError, r"X\[1\] is a single image(?s:.*)Wrap it in a list"
    assert_fit_refused(GalleryEmbedder, galleries, y, exc, match, epochs)
    assert_predict_refused(GalleryEmbedder, galleries, exc, match)


def test_a_truncated_image_is_named_and_the_fit_restored(tmp_path):
    """Only the header of a file is read up front; the rest is decoded lazily
    (in DataLoader workers), so a file truncated after its header fails when
    its batch is decoded, possibly after some batches trained. The failed fit
    restores the fitted model, and a fresh estimator stays unfitted."""
    _, (X, y, *_) = _fitted(GalleryEmbedder)
    galleries = _galleries(X)
    galleries[5] = [_truncated_png(tmp_path)]
    match = r"X\[5\]\[0\]: could not decode image file '.*truncated\.png'(?s:.*)Replace"
    fresh = _instance(GalleryEmbedder)
    with pytest.raises(ValueError, match=match):
        fresh.fit(galleries, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    with fitted(GalleryEmbedder) as (model, (*_, X_test, _)):
        before = snapshot(model, X_test)
        with pytest.raises(ValueError, match=match):
            model.set_params(warm_start=True).fit(galleries, y)
        assert_unchanged(model, X_test, before)
    assert_predict_refused(GalleryEmbedder, galleries, ValueError, match)


def test_grayscale_rgb_and_sizes_mix_in_a_gallery():
    """Documented: grayscale is repeated to 3 channels, alpha dropped, and
    every image resized to image_size, so any mix is one gallery."""
    model, _ = _fitted(GalleryEmbedder)
    rng = np.random.RandomState(0)
    gray = rng.randint(0, 256, (8, 8), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((8, 8, 1), 255, np.uint8)], axis=2)
    big = rng.randint(0, 256, (20, 13, 3), dtype=np.uint8)
    Z = model.transform([[gray], [rgb], [rgba], [gray, big]])
    np.testing.assert_array_equal(Z[0], Z[1])
    np.testing.assert_array_equal(Z[0], Z[2])
    assert np.isfinite(Z).all() and not np.array_equal(Z[3], Z[0])


def test_a_state_dict_for_another_backbone_is_refused(tmp_path, epochs):
    _, (X, y, *_) = _fitted(GalleryEmbedder)
    path = tmp_path / "other.pt"
    torch.save(small_vgg((8, 16)).state_dict(), path)
    match = (
        r"weights='.*other\.pt' does not fit backbone='small_vgg'(?s:.*)give a "
        r"state_dict saved from the same architecture"
    )
    assert_fit_refused(
        GalleryEmbedder, X, y, ValueError, match, epochs, {"weights": str(path)}
    )


# ------------------------------------------------------------ GalleryIndex
def _index_state(index):
    return {
        "embeddings": index.embeddings_.copy(),
        "projections": index.projections_.copy(),
        "tables": copy.deepcopy(index.tables_),
        "n_exhaustive": index.n_exhaustive_,
    }


INDEX_CASES = {
    "empty": (("fit", np.zeros((0, 4))), r"0 sample\(s\).*minimum of 1"),
    "nan": (
        ("fit", np.full((3, 4), np.nan)),
        r"Input X contains NaN(?s:.*)GalleryIndex(?s:.*)imputer",
    ),
    "1d": (("fit", np.ones(4)), r"Expected 2D array(?s:.*)Reshape your data"),
    "dimensions": (
        ("kneighbors", np.ones((2, 3))),
        r"X has 3 dimensions but the index holds 4-dimensional embeddings; "
        r"query with embeddings of the model",
    ),
    "too_many_neighbors": (
        ("kneighbors", np.ones((2, 4)), 11),
        r"n_neighbors must be an integer from 1 to the 10 indexed galleries",
    ),
    "no_embedder": (
        ("query_images", [np.zeros((4, 4))]),
        r"query_images needs an embedder; build the index with "
        r"GalleryIndex\(embedder=",
    ),
    "zero_tables": (
        ("params", {"n_tables": 0}),
        r"n_tables must be a positive integer, got 0",
    ),
    "bool_tables": (
        ("params", {"n_tables": True}),
        r"n_tables must be a positive integer, got True",
    ),
    "bucket_length": (
        ("params", {"bucket_length": -1.0}),
        r"bucket_length must be a positive number, got -1\.0",
    ),
}


@pytest.mark.parametrize("case", INDEX_CASES)
def test_gallery_index_bad_input_leaves_the_index_unchanged(case):
    (method, *args), match = INDEX_CASES[case]
    E = np.random.RandomState(0).normal(size=(10, 4))
    index = GalleryIndex(n_neighbors=3, random_state=0).fit(E)
    index.kneighbors(E[:2])
    before = _index_state(index)
    with pytest.raises(ValueError, match=match):
        if method == "params":  # a plain class: parameters are attributes
            vars(index).update(args[0])
            index.fit(E[:5])
        else:
            getattr(index, method)(*args)
    after = _index_state(index)
    np.testing.assert_array_equal(after["embeddings"], before["embeddings"])
    np.testing.assert_array_equal(after["projections"], before["projections"])
    assert after["tables"] == before["tables"]
    assert after["n_exhaustive"] == before["n_exhaustive"]


# ------------------------------------------------------------------ plugins
@ids("cls", WEIGHTED)
def test_an_unknown_loss_weighter_is_named(cls, epochs):
    _, (X, y, *_) = _fitted(cls)
    match = (
        r"Unknown loss weighter 'nope'\. Available loss weighters: .*'uniform'"
        r".*Install a plugin that registers it.*or pass a class or an instance"
    )
    assert_fit_refused(cls, X, y, ValueError, match, epochs, {"loss_weighter": "nope"})


@ids("cls", SCENARIO)
def test_scenario_models_have_no_loss_weighter(cls, epochs):
    """One label per row: nothing to weigh, so the parameter is unknown."""
    _, (X, y, *_) = _fitted(cls)
    match = r"got an unknown parameter 'loss_weighter'\.(?s:.*)Parameters are \["
    assert_fit_refused(cls, X, y, ValueError, match, epochs, {"loss_weighter": "nope"})


@ids("cls", GATED)
def test_an_unknown_gate_is_named(cls, epochs):
    _, (X, y, *_) = _fitted(cls)
    match = (
        r"Unknown gate 'nope'\. Available gates: .*'softmax'.*Install a plugin "
        r"that registers it.*or pass a class or an instance"
    )
    assert_fit_refused(cls, X, y, ValueError, match, epochs, {"gate": "nope"})


# ------------------------------------------------------------------- device
def _cuda(monkeypatch, available: bool, count: int = 0):
    @contextlib.contextmanager
    def context():
        with monkeypatch.context() as patch:
            patch.setattr(torch.cuda, "is_available", lambda: available)
            patch.setattr(torch.cuda, "device_count", lambda: count)
            yield

    return context


@ids("cls", ESTIMATORS)
@pytest.mark.parametrize("case", ["gpu", "cuda:99", "int", "cuda_without_cuda"])
def test_bad_devices_are_refused(cls, case, epochs, monkeypatch):
    _, (X, y, *_) = _fitted(cls)
    context = _cuda(monkeypatch, available=True, count=1)
    if case == "gpu":
        device = "gpu"
        match = r"device='gpu' is not a device; use 'cpu', 'cuda', 'cuda:1' or 'auto'"
    elif case == "cuda:99":
        device = "cuda:99"
        match = (
            r"device='cuda:99' but this machine has 1 CUDA device\(s\); use an "
            r"index below 1 \(e\.g\. device='cuda:0'\), or device='auto'"
        )
    elif case == "int":  # torch reads an int as a CUDA index
        device = 3
        match = r"device=3 but this machine has 1 CUDA device\(s\); use an index"
    else:
        device = "cuda"
        context = _cuda(monkeypatch, available=False)
        match = (
            r"device='cuda' but CUDA is not available on this machine; use "
            r"device='cpu' or device='auto'"
        )
    assert_fit_refused(
        cls, X, y, ValueError, match, epochs, {"device": device}, context
    )


# --------------------------------------------------------- training settings
@ids("cls", ESTIMATORS)
@pytest.mark.parametrize(
    "param, value, match",
    [
        ("lr", -0.1, r"lr must be a positive number, got -0\.1"),
        ("lr", float("nan"), r"lr must be a positive number, got nan"),
        ("max_epochs", 0, r"max_epochs must be a positive integer, got 0"),
        ("batch_size", 0, r"batch_size must be a positive integer, got 0"),
        ("batch_size", 2.5, r"batch_size must be a positive integer, got 2\.5"),
        (
            "optimizer",
            "nope",
            r"optimizer='nope' is unknown; use one of \['adagrad', 'adam', "
            r"'adamw', 'rmsprop', 'sgd'\] or a torch\.optim\.Optimizer subclass",
        ),
    ],
)
def test_bad_training_settings_are_refused(cls, param, value, match, epochs):
    _, (X, y, *_) = _fitted(cls)
    assert_fit_refused(cls, X, y, ValueError, match, epochs, {param: value})
