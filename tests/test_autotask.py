"""AutoTaskClassifier: facet shapes, causal masks, single-row inference,
unseen tasks, task encodings, distillation, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from mtlestimators import AutoTaskClassifier
from mtlestimators.autotask._autotask import AutoTaskModule
from mtlestimators.datasets import load_adult_scenarios


def scenario_data(n=600, seed=0):
    """Three tasks whose label depends on the features and on the task."""
    rng = np.random.RandomState(seed)
    features = rng.normal(size=(n, 4))
    task = rng.choice(["ads", "hotel", "store"], size=n)
    offset = pd.Series(task).map({"ads": -0.7, "hotel": 0.0, "store": 0.7}).to_numpy()
    y = (features[:, 0] - 0.5 * features[:, 1] + offset > 0).astype(int)
    X = pd.DataFrame(features, columns=["f0", "f1", "f2", "f3"])
    X["scenario"] = task
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = scenario_data()
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=15, verbose=0, random_state=0
    )
    return model.fit(X, y), X, y


def module(**kwargs):
    params = dict(n_features=5, n_tasks=3, feature_embed_dim=4, block_embed_dim=12)
    params.update(kwargs)
    torch.manual_seed(0)
    return AutoTaskModule(**params)


@pytest.mark.parametrize("encoding, d", [("onehot", 6), ("number", 6), ("none", 5)])
@pytest.mark.parametrize("batch, block", [(16, 4), (10, 4), (3, 8)])
def test_facet_shapes_follow_d_e1_e2(encoding, d, batch, block):
    net = module(task_encoding=encoding, block_size=block).train()
    features = torch.randn(batch, 5)
    task = torch.randint(0, 4, (batch,))
    t1, t2 = net.facets(features, task)
    assert t1.shape == (batch, d * 4)  # T1: d tokens of e1
    assert t2.shape == (batch, 12)  # T2: e2
    assert net.feature_tokens(net.tokens(features, task), task).shape == (batch, d, 4)
    assert net.head.in_features == d * 4 + 12


def test_default_block_embed_dim_is_d_times_e1(fitted):
    model, _, _ = fitted
    net = model.net_.module_
    d = 4 + 1  # four features plus the task number
    assert net.facet_2.ln_f.normalized_shape == (d * 8,)


@pytest.mark.parametrize("j", range(5))
def test_facet_1_is_causal_over_feature_tokens(j):
    net = module(dropout=0.0).eval()
    features = torch.randn(8, 5)
    task = torch.tensor([1, 2, 3, 0, 1, 2, 3, 0])
    x = net.tokens(features, task)
    before = net.feature_tokens(x, task)
    changed = x.clone()
    changed[:, j + 1] += 3.0  # feature j + 1 (the last token is the task number)
    after = net.feature_tokens(changed, task)
    torch.testing.assert_close(after[:, : j + 1], before[:, : j + 1])
    assert not torch.allclose(after[:, j + 1], before[:, j + 1])


def test_facet_2_is_causal_within_a_block_and_blocks_are_independent():
    net = module(dropout=0.0, block_size=4).train()
    features = torch.randn(8, 5)
    task = torch.randint(1, 4, (8,))
    before = net.facets(features, task)[1]
    changed = features.clone()
    changed[2] += 3.0  # row 2 of block 0 (rows 0-3)
    after = net.facets(changed, task)[1]
    torch.testing.assert_close(after[:2], before[:2])  # earlier rows
    assert not torch.allclose(after[3], before[3])  # later row of the block
    torch.testing.assert_close(after[4:], before[4:])  # the other block


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_prediction_of_a_row_ignores_the_rest_of_the_batch(fitted, data):
    model, X, _ = fitted
    full = model.predict_proba(X)
    rows = data.draw(
        st.lists(st.integers(0, len(X) - 1), min_size=1, max_size=40, unique=True)
    )
    batch_size = data.draw(st.integers(1, 64))
    model.set_params(batch_size=batch_size)
    try:
        part = model.predict_proba(X.iloc[rows])
    finally:
        model.set_params(batch_size=256)
    np.testing.assert_allclose(part, full[rows], rtol=0, atol=1e-6)


def test_one_row_at_a_time_equals_the_batch(fitted):
    model, X, _ = fitted
    full = model.predict_proba(X.iloc[:20])
    alone = np.vstack([model.predict_proba(X.iloc[[i]]) for i in range(20)])
    np.testing.assert_allclose(alone, full, rtol=0, atol=1e-6)


def test_learns_the_scenarios_and_task_ids_matter(fitted):
    model, X, y = fitted
    X_test, y_test = scenario_data(n=400, seed=1)
    assert model.tasks_.tolist() == ["ads", "hotel", "store"]
    assert model.n_tasks_ == 3
    assert model.score(X_test, y_test) > 0.85
    # The same features under another task id move the probability the way
    # that task's offset does.
    as_ads = X_test.assign(scenario="ads")
    as_store = X_test.assign(scenario="store")
    gap = model.predict_proba(as_store)[:, 1] - model.predict_proba(as_ads)[:, 1]
    assert gap.mean() > 0.1


def test_unseen_task_id_predicts_with_the_general_path(fitted):
    model, _, _ = fitted
    X, y = scenario_data(n=400, seed=2)  # rows not seen in training
    X_new = X.assign(scenario="never-seen")
    proba = model.predict_proba(X_new)[:, 1]
    assert np.isfinite(proba).all()
    assert roc_auc_score(y, proba) > 0.85
    # Every unseen id is the same "task 0": the id itself does not matter.
    np.testing.assert_array_equal(
        proba, model.predict_proba(X.assign(scenario=42))[:, 1]
    )
    # The unseen slot of the one-hot stays all zero (padding row).
    net = model.net_.module_
    assert torch.count_nonzero(net.task_embed_1.weight[0]) == 0
    assert torch.count_nonzero(net.task_embed_2.weight[0]) == 0


@pytest.fixture(scope="module")
def adult():
    data = load_adult_scenarios()
    rng = np.random.RandomState(0)
    rows = rng.choice(len(data.X_train), 8000, replace=False)
    return data, data.X_train.iloc[rows], data.y_train.iloc[rows]


def test_generalizes_to_held_out_occupations(adult):
    data, X, y = adult
    model = AutoTaskClassifier(
        task_column="occupation", max_epochs=6, verbose=0, random_state=0
    ).fit(X, y)
    assert not set(data.unseen_tasks) & set(model.tasks_)
    proba = model.predict_proba(data.X_test)[:, 1]
    occupation = data.X_test["occupation"].to_numpy()
    for task in data.unseen_tasks:
        rows = occupation == task
        # chance is 0.5; a per-task logistic regression on all rows gets ~0.86
        assert roc_auc_score(data.y_test[rows], proba[rows]) > 0.75, task
    seen = ~np.isin(occupation, data.unseen_tasks)
    assert roc_auc_score(data.y_test[seen], proba[seen]) > 0.85


@pytest.mark.parametrize("encoding", ["onehot", "number", "none"])
def test_task_encodings(encoding):
    X, y = scenario_data()
    model = AutoTaskClassifier(
        task_column="scenario",
        task_encoding=encoding,
        max_epochs=3,
        verbose=0,
        random_state=0,
    ).fit(X, y)
    net = model.net_.module_
    assert (net.task_embed_1 is not None) == (encoding == "onehot")
    assert net.n_tokens == (4 if encoding == "none" else 5)
    a = model.predict_proba(X.assign(scenario="ads"))
    b = model.predict_proba(X.assign(scenario="store"))
    if encoding == "none":
        np.testing.assert_array_equal(a, b)  # the task column is ignored
    else:
        assert not np.allclose(a, b)


def test_soft_targets_are_the_loss_targets():
    X, y = scenario_data()
    kwargs = dict(task_column="scenario", max_epochs=10, verbose=0, random_state=0)
    hard = AutoTaskClassifier(**kwargs).fit(X, y)
    # A teacher that is unsure about everything: the student learns 0.5.
    soft = AutoTaskClassifier(**kwargs).fit(X, y, soft_target=np.full(len(y), 0.5))
    p_hard = hard.predict_proba(X)[:, 1]
    p_soft = soft.predict_proba(X)[:, 1]
    assert np.abs(p_soft - 0.5).max() < 0.1
    assert np.abs(p_hard - 0.5).mean() > 0.25
    # (n, 2) teacher probabilities and NaN (use the hard label) are accepted.
    teacher = np.column_stack([1 - y * 0.9, y * 0.9]).astype(float)
    teacher[:10] = np.nan
    AutoTaskClassifier(**kwargs).fit(X, y, soft_target=teacher)


def test_distillation_then_fine_tuning_through_a_pipeline():
    X, y = scenario_data()
    teacher = np.clip(y * 0.8 + 0.1, 0, 1)
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=3, verbose=0, random_state=0
    )
    pipe = make_pipeline(FunctionTransformer(), model)
    pipe.fit(X, y, autotaskclassifier__soft_target=teacher)
    first = model.net_.module_.head.weight.detach().clone()
    assert len(model.history_) == 3
    # The routed teacher reached the loss: same model and seed on hard labels
    # trains to a different net.
    hard = clone(model).fit(X, y)
    assert not torch.equal(hard.net_.module_.head.weight, first)
    pipe.set_params(autotaskclassifier__warm_start=True)
    pipe.fit(X, y)  # fine-tune on the hard labels
    assert len(model.history_) == 6
    assert not torch.equal(model.net_.module_.head.weight, first)
    assert model.score(X, y) > 0.8


def test_warm_start_keeps_task_codes_and_scaling():
    X, y = scenario_data()
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=2, verbose=0, random_state=0
    ).fit(X, y)
    mean = model.feature_mean_.copy()
    model.set_params(warm_start=True)
    sub = X["scenario"] != "ads"
    model.fit(X[sub] * 1, y[sub])  # other statistics, one task fewer
    assert model.tasks_.tolist() == ["ads", "hotel", "store"]
    np.testing.assert_array_equal(model.feature_mean_, mean)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"task_encoding": "text"}, "task_encoding='text' is unknown"),
        ({"n_heads": 3}, "n_heads=3 must divide feature_embed_dim=8"),
        ({"block_size": 0}, "block_size must be a positive integer"),
        ({"task_dropout": 1.0}, r"task_dropout must be a number in \[0, 1\)"),
        ({"task_column": "nope"}, "task_column='nope' is not a column of X"),
        ({"task_column": 9}, "task_column=9 is out of range"),
    ],
)
def test_bad_parameters_are_named(params, match):
    X, y = scenario_data(n=50)
    with pytest.raises(ValueError, match=match):
        AutoTaskClassifier(verbose=0, **params).fit(X, y)


def test_bad_inputs_are_named_and_leave_the_fit_untouched(fitted):
    model, X, y = fitted
    before = model.predict_proba(X)
    with pytest.raises(ValueError, match="has missing task ids"):
        clone(model).fit(X.assign(scenario=None), y)
    with pytest.raises(ValueError, match="pass a 1-D y"):
        clone(model).fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict_proba(X.assign(f0=np.nan))
    with pytest.raises(ValueError, match="X has 4 features, but AutoTaskClassifier"):
        model.predict_proba(X.iloc[:, 1:].to_numpy())
    with pytest.raises(ValueError, match="is a column name, but X has no column"):
        clone(model).fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="soft_target must have shape"):
        model.fit(X, y, soft_target=np.ones(3))
    with pytest.raises(ValueError, match="probabilities in"):
        model.fit(X, y, soft_target=np.full(len(y), 2.0))
    np.testing.assert_array_equal(model.predict_proba(X), before)


def test_multiclass_labels_and_soft_targets():
    X, y = scenario_data()
    y3 = np.where(X["f2"] > 0.5, 2, y)
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=2, verbose=0, random_state=0
    ).fit(X, y3)
    assert model.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="y must be binary"):
        clone(model).fit(X, y3, soft_target=np.full(len(y), 0.5))


def test_task_ids_keep_their_type():
    X, y = scenario_data(n=200)
    big = {"ads": 10**17 + 1, "hotel": 10**17 + 2, "store": 10**17 + 3}
    X_int = X.assign(scenario=X["scenario"].map(big).astype("int64"))
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=1, verbose=0, random_state=0
    ).fit(X_int, y)
    assert model.tasks_.tolist() == sorted(big.values())
    codes = model._predict_inputs(X_int)["task"]
    assert set(codes) == {1, 2, 3}  # no row is mistaken for an unseen task
    pairs = X.assign(scenario=[(s, 1) for s in X["scenario"]])
    model.fit(pairs, y)
    assert model.tasks_.shape == (3,)
    assert model.tasks_[0] == ("ads", 1)
    assert model.predict_proba(pairs.iloc[:5]).shape == (5, 2)


def test_warm_start_refuses_reordered_columns():
    X, y = scenario_data(n=200)
    model = AutoTaskClassifier(
        task_column="scenario", max_epochs=1, verbose=0, random_state=0
    ).fit(X, y)
    model.set_params(warm_start=True)
    with pytest.raises(ValueError, match="columns differ from the first fit"):
        model.fit(X[["f1", "f0", "f2", "f3", "scenario"]], y)
    model.fit(X, y)  # same columns: continues
    assert len(model.history_) == 2


def test_messages_for_missing_values_and_odd_ids():
    X, y = scenario_data(n=100)
    model = AutoTaskClassifier(task_column="scenario", max_epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.fit(X.astype({"f0": "Float64"}).assign(f0=pd.NA), y)
    with pytest.raises(TypeError, match="Task ids must be hashable"):
        model.fit(X.assign(scenario=[[1]] * len(X)), y)
    with pytest.raises(ValueError, match="soft_target must hold probabilities"):
        model.fit(X, y, soft_target=np.array(["high"] * len(y)))
    with pytest.raises(ValueError, match="missing label"):
        model.fit(X, np.where(np.arange(len(y)) < 3, np.nan, y))
