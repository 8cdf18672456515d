import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mtlestimators import SharedBottomClassifier, per_task_scores
from mtlestimators._core.net import MultiTaskLoss
from mtlestimators.datasets import load_adult_multitask
from mtlestimators.demo import adult_preprocessor


def _two_tasks(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0]).astype(float)
    return X, Y


@pytest.fixture(scope="module")
def adult():
    bunch = load_adult_multitask()
    X_train, X_test, Y_train, Y_test = train_test_split(
        bunch.data, bunch.target, test_size=0.25, random_state=0
    )
    prep = adult_preprocessor(bunch.categorical_features, bunch.numeric_features)
    Xtr = prep.fit_transform(X_train).astype(np.float32)
    Xte = prep.transform(X_test).astype(np.float32)
    return Xtr, Xte, Y_train, Y_test


def test_learns_both_adult_tasks(adult):
    Xtr, Xte, Ytr, Yte = adult
    clf = SharedBottomClassifier(max_epochs=10, verbose=0, random_state=0)
    scores = per_task_scores(Yte, clf.fit(Xtr, Ytr).predict_proba(Xte))
    assert scores["income"]["roc_auc"] >= 0.88
    assert scores["never_married"]["roc_auc"] >= 0.93
    assert list(clf.task_names_) == ["income", "never_married"]


def test_rows_missing_one_label_still_train_the_other_task(adult):
    """Each row has exactly one of the two labels: if a row with a missing
    label were dropped, nothing would be left to train on."""
    Xtr, Xte, Ytr, Yte = adult
    Y = Ytr.to_numpy(dtype=float, copy=True)
    half = len(Y) // 2
    Y[:half, 1] = np.nan  # first half: income only
    Y[half:, 0] = np.nan  # second half: never_married only
    clf = SharedBottomClassifier(max_epochs=10, verbose=0, random_state=0).fit(Xtr, Y)
    scores = per_task_scores(Yte, clf.predict_proba(Xte))
    baseline = {
        col: per_task_scores(
            Yte[col].to_numpy(),
            LogisticRegression(max_iter=1000).fit(Xtr, Ytr[col]).predict_proba(Xte),
        )["task_0"]["roc_auc"]
        for col in Ytr
    }
    assert scores["income"]["roc_auc"] >= baseline["income"] - 0.02
    assert scores["never_married"]["roc_auc"] >= baseline["never_married"] - 0.02


def test_a_missing_label_gives_exactly_zero_gradient_to_its_task():
    outputs = (torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True))
    y = torch.tensor([[1.0, np.nan], [0.0, 1.0], [1.0, 0.0], [np.nan, 1.0]])
    losses = MultiTaskLoss(["binary", "binary"])(outputs, y)
    losses.sum().backward()
    assert outputs[1].grad[0].item() == 0.0 and outputs[0].grad[3].item() == 0.0
    assert torch.all(outputs[1].grad[1:] != 0) and torch.all(outputs[0].grad[:3] != 0)


def test_single_multiclass_task_with_string_labels():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    X_train, X_test, y_train, y_test = train_test_split(
        X, names, test_size=0.3, random_state=0, stratify=names
    )
    clf = make_pipeline(
        StandardScaler(),
        SharedBottomClassifier(max_epochs=60, batch_size=32, verbose=0, random_state=0),
    ).fit(X_train, y_train)
    assert list(clf[-1].classes_) == ["setosa", "versicolor", "virginica"]
    assert clf.predict_proba(X_test).shape == (len(X_test), 3)
    assert clf.score(X_test, y_test) > 0.85  # majority class: 0.33


def test_pandas_input_sets_feature_and_task_names():
    X, Y = _two_tasks()
    Xdf = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    Ydf = pd.DataFrame(Y, columns=["click", "buy"])
    clf = SharedBottomClassifier(max_epochs=2, verbose=0).fit(Xdf, Ydf)
    assert list(clf.feature_names_in_) == list(Xdf.columns)
    assert list(clf.task_names_) == ["click", "buy"]
    assert clf.predict_proba(Xdf).shape == (300, 2)


def test_verbose_prints_the_epoch_table_and_zero_is_silent(capsys):
    X, Y = _two_tasks()
    SharedBottomClassifier(max_epochs=2, verbose=1).fit(X, Y)
    assert "train_loss" in capsys.readouterr().out
    SharedBottomClassifier(max_epochs=2, verbose=0).fit(X, Y)
    assert capsys.readouterr().out == ""


def test_history_has_one_row_per_epoch_and_warm_start_continues():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(
        max_epochs=3, verbose=0, warm_start=True, random_state=0
    )
    clf.fit(X, Y)
    first = clf.history_[:, "train_loss"]
    clf.fit(X, Y)
    losses = clf.history_[:, "train_loss"]
    assert len(first) == 3 and len(losses) == 6
    assert losses[-1] < first[-1]


def test_routed_optimizer_params_reach_the_optimizer():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(
        optimizer="sgd",
        optimizer__momentum=0.9,
        optimizer__weight_decay=1e-3,
        max_epochs=1,
        verbose=0,
    ).fit(X, Y)
    group = clf.net_.optimizer_.param_groups[0]
    assert isinstance(clf.net_.optimizer_, torch.optim.SGD)
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-3


@pytest.mark.parametrize(
    "params, message",
    [
        ({"optimzer__weight_decay": 0.1}, "Did you mean 'optimizer__'"),
        ({"lrr": 0.1}, "Did you mean 'lr'"),
        ({"device": "gpu7"}, "device='gpu7' is not a device"),
        ({"optimizer": "adamax2"}, "optimizer='adamax2' is unknown"),
        ({"max_epochs": 0}, "max_epochs must be a positive integer"),
    ],
)
def test_bad_parameters_are_named_before_training(params, message):
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(verbose=0, **params)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, Y)
    assert not hasattr(clf, "net_")


def test_cuda_on_a_machine_without_it_says_how_to_fix():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    X, Y = _two_tasks()
    with pytest.raises(ValueError, match="use device='cpu' or device='auto'"):
        SharedBottomClassifier(device="cuda", verbose=0).fit(X, Y)
    clf = SharedBottomClassifier(device="auto", max_epochs=1, verbose=0).fit(X, Y)
    assert clf.net_.device == "cpu"


def test_multiclass_column_among_several_tasks_is_refused():
    X, _ = _two_tasks()
    Y = np.column_stack([np.arange(300) % 3, np.arange(300) % 2])
    with pytest.raises(ValueError, match="every task must be binary"):
        SharedBottomClassifier(verbose=0).fit(X, Y)


def test_a_failed_fit_leaves_the_fitted_model_unchanged():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(max_epochs=2, verbose=0, random_state=0).fit(X, Y)
    before = clf.predict_proba(X)
    bad_y = Y.copy()
    bad_y[:, 1] = np.nan
    with pytest.raises(ValueError, match="Task 'task_1' .* has no label at all"):
        clf.fit(X[:, :3], bad_y)
    assert clf.n_features_in_ == 5
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_predict_with_the_wrong_number_of_features_is_clear():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, Y)
    with pytest.raises(
        ValueError, match="X has 4 features, but SharedBottomClassifier"
    ):
        clf.predict_proba(X[:, :4])


def test_score_skips_missing_labels():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(max_epochs=20, verbose=0, random_state=0).fit(X, Y)
    Y_missing = Y.copy()
    Y_missing[::2, 1] = np.nan
    assert 0.5 < clf.score(X, Y_missing) <= 1.0


@pytest.fixture(scope="module")
def fitted_two_task():
    X, Y = _two_tasks(200)
    clf = SharedBottomClassifier(max_epochs=3, verbose=0, random_state=0).fit(X, Y)
    return clf, X


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_predictions_do_not_depend_on_the_rest_of_the_batch(fitted_two_task, data):
    clf, X = fitted_two_task
    full = clf.predict_proba(X)
    rows = data.draw(st.lists(st.integers(0, len(X) - 1), min_size=1, max_size=40))
    batch_size = data.draw(st.integers(1, 64))
    clf.net_.batch_size = batch_size
    try:
        part = clf.predict_proba(X[rows])
    finally:
        clf.net_.batch_size = clf.batch_size
    np.testing.assert_allclose(part, full[rows], rtol=1e-5, atol=1e-6)


def test_none_marks_missing_labels_of_integer_and_bool_columns():
    X, Y = _two_tasks()
    Yobj = Y.astype(int).astype(object)
    Yobj[:5, 1] = None
    clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, Yobj)
    assert [c.dtype.kind for c in clf.classes_] == ["i", "i"]
    frame = pd.DataFrame(
        {
            "a": pd.array(Y[:, 0].astype(bool), dtype="boolean"),
            "b": pd.array(Y[:, 1].astype(int), dtype="Int64"),
        }
    )
    frame.loc[:4, "b"] = pd.NA
    clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, frame)
    assert clf.classes_[0].tolist() == [False, True]
    assert clf.classes_[1].tolist() == [0, 1]
    assert clf.predict(X).shape == (300, 2)


def test_rows_without_any_label_are_dropped_with_a_warning_at_the_caller():
    X, Y = _two_tasks()
    Y[:7] = np.nan
    with pytest.warns(UserWarning, match="Dropped 7 of 300 rows") as record:
        SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, Y)
    assert record[0].filename == __file__


def test_single_task_name_comes_from_the_series_or_column():
    X, Y = _two_tasks()
    series = pd.Series(Y[:, 0].astype(int), name="clicked")
    clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, series)
    assert list(clf.task_names_) == ["clicked"]
    frame = pd.DataFrame({"bought": Y[:, 1].astype(int)})
    clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, frame)
    assert list(clf.task_names_) == ["bought"]


def test_train_split_adds_a_validation_loss_for_early_stopping():
    from skorch.callbacks import EarlyStopping
    from skorch.dataset import ValidSplit

    X, Y = _two_tasks()
    clf = SharedBottomClassifier(
        max_epochs=200,
        lr=0.05,
        train_split=ValidSplit(0.25),
        callbacks=[EarlyStopping(patience=3)],
        verbose=0,
        random_state=0,
    ).fit(X, Y)
    assert "valid_loss" in clf.history_[-1]
    assert len(clf.history_) < 200


def test_score_refuses_a_target_of_the_wrong_width():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(max_epochs=1, verbose=0).fit(X, Y)
    with pytest.raises(ValueError, match="y has 1 column.* fit on 2 tasks"):
        clf.score(X, Y[:, 0])


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"optimizer__weight_decy": 0.1},
            "not a parameter of Adam. Did you mean 'optimizer__weight_decay'",
        ),
        ({"module__foo": 1}, "'module__foo' is not a parameter of SharedBottomModule"),
        ({"iterator_train__num_workers": 2}, "not a parameter of TensorBatchIterator"),
        ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\)"),
        ({"bottom_units": (-1,)}, "bottom_units must be a tuple of positive integers"),
    ],
)
def test_bad_component_parameters_are_named_before_training(params, message):
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(verbose=0, **params)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, Y)


def test_warm_start_refuses_a_changed_architecture_or_width():
    X, Y = _two_tasks()
    clf = SharedBottomClassifier(max_epochs=1, verbose=0, warm_start=True).fit(X, Y)
    with pytest.raises(ValueError, match="module__n_features"):
        clf.fit(X[:, :4], Y)
    clf.set_params(bottom_units=(8,), optimizer__weight_decay=0.5)
    with pytest.raises(
        ValueError, match="module__bottom_units.*optimizer__weight_decay"
    ):
        clf.fit(X, Y)
    assert len(clf.history_) == 1


def test_warm_start_continuations_do_not_replay_the_same_shuffle():
    from skorch.callbacks import Callback

    class FirstBatch(Callback):
        def initialize(self):
            self.seen = []
            return self

        def on_batch_begin(self, net, batch=None, training=None, **kwargs):
            if training and len(self.seen) < len(net.history):
                X = batch[0]  # the field inputs: a dict of tensors
                self.seen.append(X["numeric"][0].clone())

    X, Y = _two_tasks()
    recorder = FirstBatch()
    clf = SharedBottomClassifier(
        max_epochs=1, verbose=0, warm_start=True, random_state=0, callbacks=[recorder]
    )
    for _ in range(3):
        clf.fit(X, Y)
    (seen,) = [cb.seen for _, cb in clf.net_.callbacks_ if isinstance(cb, FirstBatch)]
    assert len(seen) == 3
    assert not torch.equal(seen[1], seen[2])


def test_a_failed_warm_start_continuation_leaves_the_model_as_it_was():
    from skorch.callbacks import Callback

    class FailAfterTwoBatches(Callback):
        def __init__(self):
            self.batches = 0

        def on_batch_end(self, net, **kwargs):
            self.batches += 1
            if self.batches == 2:
                raise RuntimeError("interrupted")

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4)).astype("float32")
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    clf = SharedBottomClassifier(
        max_epochs=2,
        batch_size=32,
        lr=1e-3,
        verbose=0,
        random_state=0,
        warm_start=True,
    ).fit(X, Y)
    before = clf.predict_proba(X)
    state = {
        k: v.clone() for k, v in clf.net_.optimizer_.state_dict()["state"][0].items()
    }
    clf.net_.callbacks_.append(("fail", FailAfterTwoBatches()))
    with pytest.raises(RuntimeError, match="interrupted"):
        clf.set_params(max_epochs=3, lr=0.01).fit(X, Y)  # two batches ran
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    after = clf.net_.optimizer_.state_dict()["state"][0]
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert len(clf.history_) == 2
    assert clf.net_.lr == 1e-3 and clf.net_.max_epochs == 2
