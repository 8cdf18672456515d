"""y's columns are matched to the tasks by name; a multi-task scorer for
``scoring=``; cross-validation with NaN labels (docs/targets.md, "Scoring and
cross-validation")."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import get_scorer, log_loss, roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score

from mtlestimators import GalleryEmbedder, SharedBottomClassifier, per_task_scores
from mtlestimators.metrics import (
    make_multitask_scorer,
    multitask_roc_auc,
    neg_multitask_log_loss,
)
from mtlestimators.model_selection import MultiTaskStratifiedKFold

PARAMS = dict(max_epochs=2, batch_size=32, verbose=0, random_state=0)


def _data(n=120, missing=True):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    Y = pd.DataFrame(
        {
            "a": (X[:, 0] > 0).astype(float),
            "b": (X[:, 0] + X[:, 1] > 0.5).astype(float),
            "c": (X[:, 2] < 0.3).astype(float),
        }
    )
    if missing:
        Y.iloc[::5, 1] = np.nan
        Y.iloc[1::7, 2] = np.nan
    return X, Y


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def model(data):
    X, Y = data
    return SharedBottomClassifier(**PARAMS).fit(X, Y)


@pytest.fixture(scope="module")
def array_model(data):
    X, Y = data
    return SharedBottomClassifier(**PARAMS).fit(X, Y.to_numpy())


# ------------------------------------------------------------ by name
def test_fit_on_a_frame_records_that_the_names_are_real(model, array_model):
    assert list(model.task_names_) == ["a", "b", "c"]
    assert model._task_names_from_frame_ is True
    assert list(array_model.task_names_) == ["task_0", "task_1", "task_2"]
    assert array_model._task_names_from_frame_ is False


def test_score_matches_reordered_columns_by_name(model, data):
    X, Y = data
    expected = model.score(X, Y)
    assert model.score(X, Y[["c", "a", "b"]]) == expected
    assert model.score(X, Y[["b", "c", "a"]]) == expected
    # an array is read in the order of task_names_, as before
    assert model.score(X, Y.to_numpy()) == expected
    # and the reordered frame really differs position by position
    assert model.score(X, Y[["c", "a", "b"]].to_numpy()) != expected


@pytest.mark.parametrize(
    "columns, named",
    [
        ({"a": "x"}, ["'x'", "'a'"]),  # x is unknown, a is missing
        ({"b": "a_"}, ["'a_'", "'b'"]),
    ],
)
def test_score_with_unknown_or_missing_names_is_a_value_error(
    model, data, columns, named
):
    X, Y = data
    with pytest.raises(ValueError, match="do not match the tasks") as info:
        model.score(X, Y.rename(columns=columns))
    for name in named:
        assert name in str(info.value)
    with pytest.raises(ValueError, match=r"missing task\(s\) \['c'\]"):
        model.score(X, Y[["a", "b"]])
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['d'\]"):
        model.score(X, Y.assign(d=0.0))


def test_repeated_column_name_is_a_value_error(model, data):
    X, Y = data
    twice = pd.concat([Y[["a", "b"]], Y[["a"]]], axis=1)
    with pytest.raises(ValueError, match=r"\['a'\] more than once"):
        model.score(X, twice)


def test_model_fit_on_an_array_still_pairs_columns_by_position(array_model, data):
    X, Y = data
    renamed = Y.set_axis(["p", "q", "r"], axis=1)  # names it never saw
    assert array_model.score(X, renamed) == array_model.score(X, Y.to_numpy())


def test_per_task_scores_with_task_names_aligns_by_name(model, data):
    X, Y = data
    proba = model.predict_proba(X)
    expected = per_task_scores(Y, proba)
    names = model.task_names_
    reordered = per_task_scores(Y[["b", "c", "a"]], proba, task_names=names)
    assert list(reordered) == ["a", "b", "c"]
    assert reordered == expected
    # an array y_true is labelled with task_names
    on_array = per_task_scores(Y.to_numpy(), proba, task_names=names)
    assert on_array == expected
    # without task_names, columns pair by position (the documented pitfall)
    positional = per_task_scores(Y[["b", "c", "a"]], proba)
    assert positional["b"] != expected["b"]


def test_per_task_scores_task_names_errors_name_the_columns(model, data):
    X, Y = data
    proba = model.predict_proba(X)
    with pytest.raises(ValueError, match=r"y_true's columns .*\['z'\].*\['c'\]"):
        per_task_scores(
            Y.rename(columns={"c": "z"}), proba, task_names=model.task_names_
        )
    with pytest.raises(ValueError, match="task_names gives 2 names but y_true has 3"):
        per_task_scores(Y.to_numpy(), proba, task_names=["a", "b"])


def test_gallery_score_matches_columns_by_name():
    rng = np.random.RandomState(0)
    galleries = [rng.randint(0, 256, size=(2, 8, 8), dtype=np.uint8) for _ in range(24)]
    y = pd.DataFrame(
        {
            "flag": rng.randint(0, 2, 24),
            "kind": rng.randint(0, 3, 24),
            "size": rng.normal(size=24),
        }
    )
    model = GalleryEmbedder(
        backbone="small_vgg", image_size=8, max_epochs=1, random_state=0, verbose=0
    ).fit(galleries, y)
    expected = model.score(galleries, y)
    assert model.score(galleries, y[["size", "flag", "kind"]]) == expected
    with pytest.raises(ValueError, match=r"missing task\(s\) \['size'\]"):
        model.score(galleries, y[["flag", "kind"]])
    scorer = make_multitask_scorer("accuracy")
    pred = model.predict_tasks(galleries)
    by_hand = np.mean([np.mean(pred[t] == y[t]) for t in ("flag", "kind")])
    # a task with no label in the rows scored is left out
    value = scorer(model, galleries, y[["kind", "size", "flag"]].assign(size=np.nan))
    assert value == pytest.approx(by_hand)
    with pytest.raises(ValueError, match="Task 'size' has no 'accuracy' score"):
        scorer(model, galleries, y)


# ------------------------------------------------------------ the scorer
def _by_hand(Y, proba, metric):
    values = []
    for k, name in enumerate(Y.columns):
        rows = Y[name].notna().to_numpy()
        truth = Y[name].to_numpy()[rows]
        values.append(metric(truth, proba[rows, k]))
    return float(np.mean(values))


def test_scorer_is_the_mean_per_task_metric_on_labelled_rows(model, data):
    X, Y = data
    proba = model.predict_proba(X)
    auc = _by_hand(Y, proba, roc_auc_score)
    loss = _by_hand(Y, proba, lambda t, p: log_loss(t, p, labels=[0, 1]))
    assert multitask_roc_auc(model, X, Y) == pytest.approx(auc)
    assert neg_multitask_log_loss(model, X, Y) == pytest.approx(-loss)
    # by name, too
    assert multitask_roc_auc(model, X, Y[["c", "b", "a"]]) == pytest.approx(auc)
    assert make_multitask_scorer("accuracy")(model, X, Y) == pytest.approx(
        model.score(X, Y)
    )
    # a task with no label in the rows scored is left out of the mean
    two = _by_hand(Y[["a", "b"]], proba, roc_auc_score)
    assert multitask_roc_auc(model, X, Y.assign(c=np.nan)) == pytest.approx(two)


def test_scorer_differs_from_sklearn_neg_log_loss_on_n_by_k(data):
    X, Y = _data(missing=False)
    model = SharedBottomClassifier(**PARAMS).fit(X, Y)
    proba = model.predict_proba(X)
    ours = neg_multitask_log_loss(model, X, Y)
    loss = _by_hand(Y, proba, lambda t, p: log_loss(t, p, labels=[0, 1]))
    assert ours == pytest.approx(-loss)
    try:
        theirs = get_scorer("neg_log_loss")(model, X, Y)
    except ValueError:  # scikit-learn versions that refuse (n, K) outright
        return
    assert not np.isclose(theirs, ours)


def test_scorer_on_one_task():
    X, Y = _data(missing=False)
    y = Y["a"].to_numpy()
    model = SharedBottomClassifier(**PARAMS).fit(X, y)
    proba = model.predict_proba(X)
    assert multitask_roc_auc(model, X, y) == pytest.approx(
        roc_auc_score(y, proba[:, 1])
    )
    assert neg_multitask_log_loss(model, X, y) == pytest.approx(-log_loss(y, proba))


def test_scorer_metric_must_exist_for_the_task():
    X, _ = _data(missing=False)
    y = np.digitize(X[:, 0], [-0.5, 0.5])  # three classes
    model = SharedBottomClassifier(**PARAMS).fit(X, y)
    with pytest.raises(ValueError, match="has no 'roc_auc' score"):
        multitask_roc_auc(model, X, y)
    proba = model.predict_proba(X)
    assert neg_multitask_log_loss(model, X, y) == pytest.approx(-log_loss(y, proba))
    with pytest.raises(ValueError, match="metric must be one of"):
        make_multitask_scorer("auc")


def test_scorer_leaves_out_a_task_with_one_class_in_the_split(model, data):
    X, Y = data
    rows = Y["a"].to_numpy() == 1
    sub = Y[rows]
    proba = model.predict_proba(X[rows])
    # task a shows only class 1 here: its AUC is undefined and left out
    expected = np.mean(
        [
            roc_auc_score(sub[t][sub[t].notna()], proba[sub[t].notna().to_numpy(), k])
            for k, t in ((1, "b"), (2, "c"))
        ]
    )
    assert multitask_roc_auc(model, X[rows], sub) == pytest.approx(expected)


# ------------------------------------------------------ cross-validation
def test_integer_cv_with_nan_labels_fails_in_scikit_learn(model, data):
    # The failure MultiTaskStratifiedKFold exists for (docs/targets.md).
    X, Y = data
    with pytest.raises(ValueError, match="NaN"):
        GridSearchCV(model, {"lr": [1e-3]}, cv=3).fit(X, Y)


def test_grid_search_with_nan_labels_picks_by_the_multitask_scorer(model, data):
    X, Y = data
    grid = GridSearchCV(
        model,
        {"lr": [1e-4, 1e-2]},
        cv=MultiTaskStratifiedKFold(2),
        scoring={"auc": multitask_roc_auc, "loss": neg_multitask_log_loss},
        refit="auc",
        error_score="raise",
    ).fit(X, Y)
    scores = grid.cv_results_["mean_test_auc"]
    assert np.isfinite(scores).all()
    assert np.isfinite(grid.cv_results_["mean_test_loss"]).all()
    assert grid.best_params_ == grid.cv_results_["params"][int(np.argmax(scores))]
    # the split scores are the scorer on each held-out fold
    cv = MultiTaskStratifiedKFold(2)
    train, test = next(cv.split(X, Y))
    fold = SharedBottomClassifier(**{**PARAMS, "lr": 1e-4}).fit(X[train], Y.iloc[train])
    first = grid.cv_results_["split0_test_auc"][0]
    assert first == pytest.approx(multitask_roc_auc(fold, X[test], Y.iloc[test]))


def test_cross_val_score_with_nan_labels(model, data):
    X, Y = data
    cv = MultiTaskStratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(model, X, Y, cv=cv, scoring=neg_multitask_log_loss)
    assert scores.shape == (3,)
    assert np.isfinite(scores).all() and (scores < 0).all()


def test_stratified_folds_share_out_each_pattern_of_labels(data):
    _, Y = data
    cv = MultiTaskStratifiedKFold(3)
    tests = [test for _, test in cv.split(np.zeros(len(Y)), Y)]
    assert cv.get_n_splits() == 3
    assert sorted(np.concatenate(tests).tolist()) == list(range(len(Y)))
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    for name in Y.columns:
        column = Y[name]
        for value in (0.0, 1.0):
            counts = [int((column.iloc[t] == value).sum()) for t in tests]
            assert max(counts) - min(counts) <= 1, (name, value, counts)
        nan_counts = [int(column.iloc[t].isna().sum()) for t in tests]
        assert max(nan_counts) - min(nan_counts) <= 1, (name, nan_counts)


def test_stratify_on_one_task_by_name_or_position(data):
    _, Y = data
    X = np.zeros((len(Y), 1))
    by_name = [t.tolist() for _, t in MultiTaskStratifiedKFold(3, task="b").split(X, Y)]
    by_index = [t.tolist() for _, t in MultiTaskStratifiedKFold(3, task=1).split(X, Y)]
    assert by_name == by_index
    for test in by_name:
        assert Y["b"].iloc[test].isna().sum() in (7, 8)  # 24 missing over 3 folds
    one_task = [t.tolist() for _, t in MultiTaskStratifiedKFold(3).split(X, Y["b"])]
    assert one_task == by_name
    with pytest.raises(ValueError, match=r"task='z' is not a column of y"):
        next(MultiTaskStratifiedKFold(3, task="z").split(X, Y))
    with pytest.raises(ValueError, match="task=5 but y has 3 column"):
        next(MultiTaskStratifiedKFold(3, task=5).split(X, Y))


def test_shuffle_is_seeded_and_arguments_are_checked(data):
    _, Y = data
    X = np.zeros((len(Y), 1))

    def folds(**kw):
        return [t.tolist() for _, t in MultiTaskStratifiedKFold(3, **kw).split(X, Y)]

    assert folds(shuffle=True, random_state=0) == folds(shuffle=True, random_state=0)
    assert folds(shuffle=True, random_state=0) != folds()
    with pytest.raises(ValueError, match="at least 2"):
        MultiTaskStratifiedKFold(1)
    with pytest.raises(ValueError, match="greater than the number of samples"):
        next(MultiTaskStratifiedKFold(5).split(X[:3], Y[:3]))
