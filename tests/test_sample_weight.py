"""Sample weights (``fit(X, y, sample_weight=...)``) and per-task class
weights (``class_weight``) on every net estimator: the loss they give, how
they are checked and resolved, that they follow the rows through every
training path, routing through scikit-learn, and what they learn."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
import torch
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mtlestimators import (
    AutoTaskClassifier,
    CrossStitchClassifier,
    GalleryEmbedder,
    MMoEClassifier,
    MultiTaskDNNClassifier,
    PLEClassifier,
    SharedBottomClassifier,
)
from mtlestimators._core.checkpoint import fingerprint
from mtlestimators._core.net import MultiTaskLoss, _labelled_tasks
from mtlestimators._core.targets import encode_targets, resolve_tasks
from mtlestimators._core.weights import (
    counted_targets,
    resolve_class_weight,
    row_weights,
    targets_only,
    with_weights,
)
from mtlestimators.loss_weighters import GradientWeighter
from tests._harness import fast_instance, make_data

FAST = {"verbose": 0, "random_state": 0}


def _two_task_data(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = np.column_stack([X[:, 0] + 0.5 * X[:, 1] > 0, X[:, 0] - X[:, 2] > 0])
    y = y.astype(float)
    y[rng.rand(n) < 0.2, 1] = np.nan
    return X, y


# ------------------------------------------------------------------ the loss
def _outputs(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, generator=g, dtype=torch.float64),  # binary logit
        torch.randn(n, 4, generator=g, dtype=torch.float64),  # multiclass
        torch.randn(n, generator=g, dtype=torch.float64),  # regression
    )


KINDS = ["binary", "multiclass", "regression"]
TARGETS = torch.tensor(
    [[1.0, 2.0, 0.5], [0.0, 0.0, -1.0], [1.0, 3.0, 2.0]], dtype=torch.float64
)


def test_zero_weight_rows_contribute_nothing_to_the_loss():
    loss = MultiTaskLoss(KINDS)
    out = _outputs()
    weights = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    y_true = torch.cat([TARGETS, weights[:, None].expand(3, 3)], dim=1)
    first_two = tuple(o[:2] for o in out)
    torch.testing.assert_close(loss(out, y_true), loss(first_two, TARGETS[:2]))
    # and no gradient reaches the zero-weight row's outputs
    leaves = tuple(o.clone().requires_grad_(True) for o in out)
    loss(leaves, y_true).sum().backward()
    for leaf in leaves:
        assert torch.all(leaf.grad[2] == 0)
        assert torch.any(leaf.grad[:2] != 0)


def test_integer_weights_count_like_repeated_rows_in_the_loss():
    loss = MultiTaskLoss(KINDS)
    out = _outputs(seed=1)
    repeats = torch.tensor([2, 1, 3])
    weights = repeats.to(torch.float64)[:, None].expand(3, 3)
    weighted = loss(out, torch.cat([TARGETS, weights], dim=1))
    repeated = loss(
        tuple(o.repeat_interleave(repeats, dim=0) for o in out),
        TARGETS.repeat_interleave(repeats, dim=0),
    )
    torch.testing.assert_close(weighted, repeated)


def test_missing_labels_and_zero_weights_mask_a_task_in_the_batch():
    y = torch.tensor([[1.0, np.nan], [0.0, 1.0]])
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert _labelled_tasks(torch.cat([y, w], dim=1), 2).tolist() == [True, False]


# --------------------------------------------------------- resolved weights
def _specs_and_Y(y):
    y2 = np.asarray(y, dtype=object).reshape(len(y), -1)
    specs = resolve_tasks(y2, [f"task_{k}" for k in range(y2.shape[1])])
    return specs, encode_targets(y2, specs)


def test_balanced_is_n_over_classes_times_count_per_task():
    y = np.array([[0, 1], [0, 0], [0, np.nan], [1, 1]], dtype=float)
    specs, Y = _specs_and_Y(y)
    table = resolve_class_weight("balanced", specs, Y)
    assert table[0] == pytest.approx({0.0: 4 / (2 * 3), 1.0: 4 / (2 * 1)})
    # task 1 over its 3 labelled rows only
    assert table[1] == pytest.approx({0.0: 3 / (2 * 1), 1.0: 3 / (2 * 2)})


def test_row_weights_are_sample_times_class_weight_and_zero_where_missing():
    y = np.array([[0, 1], [1, np.nan], [0, 0], [1, 1]], dtype=float)
    specs, Y = _specs_and_Y(y)
    table = resolve_class_weight([{1.0: 3.0}, None], specs, Y)
    W = row_weights(Y, specs, table, np.array([1.0, 2.0, 0.5, 1.0]))
    np.testing.assert_allclose(W, [[1, 1], [6, 0], [0.5, 0.5], [3, 1]])
    both = with_weights(Y, W)
    assert both.shape == (4, 4) and both.dtype == np.float32
    np.testing.assert_array_equal(targets_only(both, 2), Y)
    # labels of weight 0 are missing for the loss weighters' prepare
    counted = counted_targets(both, 2)
    assert np.isnan(counted[1, 1]) and counted[2, 0] == 0.0
    W[2, 0] = 0.0
    assert np.isnan(counted_targets(with_weights(Y, W), 2)[2, 0])
    assert with_weights(Y, None) is Y


def test_class_weight_dict_maps_the_classes_of_a_multiclass_task():
    X = np.random.RandomState(0).normal(size=(90, 3)).astype(np.float32)
    y = np.array(["a", "b", "c"])[np.arange(90) % 3]
    clf = SharedBottomClassifier(class_weight={"b": 2.0}, max_epochs=1, **FAST)
    clf.fit(X, y)
    assert clf.class_weight_ == [{"a": 1.0, "b": 2.0, "c": 1.0}]
    clf.set_params(class_weight=None).fit(X, y)
    assert clf.class_weight_ == [{"a": 1.0, "b": 1.0, "c": 1.0}]


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ({0.0: 1.0, 5: 2.0}, "names the class 5"),
        ([None], "has 1 entries but y has 2 task"),
        ({0: 2.0}, "gives the class weights of one task, but y has 2 tasks"),
        (["balanced", "heavy"], "use None, 'balanced' or a dict"),
        ([None, {1: -1.0}], "must be a finite number >= 0"),
        ([None, {1: "x"}], "must be a non-negative number"),
        ([{0: 0.0}, None], "only one class"),
    ],
)
def test_bad_class_weight_is_refused_with_the_fix(class_weight, message):
    X, y = _two_task_data(n=60)
    if isinstance(class_weight, dict):
        # a dict is for single-task y; with two tasks it is refused, and for
        # the unknown-label case y is the first task alone
        y = y if message.startswith("gives") else y[:, 0]
    clf = SharedBottomClassifier(class_weight=class_weight, max_epochs=1, **FAST)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)


@pytest.mark.parametrize(
    "weights, message",
    [
        (np.ones(59), "has 59 entries but X has 60 rows"),
        (np.ones((60, 2)), "must be 1-D"),
        (np.r_[np.nan, np.ones(59)], "NaN or infinity"),
        (np.r_[-1.0, np.ones(59)], "negative"),
        (np.zeros(60), "zero for every row"),
        (["a"] * 60, "must hold numbers"),
    ],
)
def test_bad_sample_weight_is_refused_with_the_fix(weights, message):
    X, y = _two_task_data(n=60)
    with pytest.raises(ValueError, match=message):
        SharedBottomClassifier(max_epochs=1, **FAST).fit(X, y, sample_weight=weights)


def test_a_task_left_without_weight_is_refused():
    X, y = _two_task_data(n=60)
    w = np.where(np.isnan(y[:, 1]), 1.0, 0.0)
    with pytest.raises(ValueError, match="Task 'task_1' has no labelled row"):
        SharedBottomClassifier(max_epochs=1, **FAST).fit(X, y, sample_weight=w)


# -------------------------------------------------------- training behaviour
def _flipped_copies(X, y, seed=1):
    """X and y followed by a copy of every row with flipped labels."""
    rng = np.random.RandomState(seed)
    noise = rng.normal(scale=0.05, size=X.shape).astype(np.float32)
    return np.vstack([X, X + noise]), np.vstack([y, 1.0 - y])


@pytest.mark.parametrize("cls", [SharedBottomClassifier, MMoEClassifier])
def test_zero_weight_rows_with_flipped_labels_are_ignored(cls):
    X, y = _two_task_data(n=400)
    X_test, y_test = _two_task_data(n=400, seed=9)
    X_all, y_all = _flipped_copies(X, y)
    n = len(X)
    zero = np.r_[np.ones(n), np.zeros(n)]
    # Trained to convergence: the two fits take different numbers of steps
    # per epoch (the zero-weight rows fill batches), which must not matter.
    # The linear numeric encoding: the property is the weights', and the
    # piecewise-linear default's 48 bins a field leave more training noise
    # between two fits than this test's margin.
    params = dict(max_epochs=40, batch_size=128, lr=1e-2, **FAST)
    params.update(numeric_embedding="linear")
    without = cls(**params).fit(X, y).predict_proba(X_test)
    ignored = cls(**params).fit(X_all, y_all, sample_weight=zero)
    counted = cls(**params).fit(X_all, y_all).predict_proba(X_test)
    near = np.abs(ignored.predict_proba(X_test) - without).mean()
    far = np.abs(counted - without).mean()
    assert near < 0.1 * far, (near, far)
    # the zero-weight fit learned (the flipped rows would cancel the signal)
    assert ignored.score(X_test, y_test) > 0.85


@pytest.mark.parametrize(
    "cls, extra",
    [
        (SharedBottomClassifier, {}),
        (MMoEClassifier, {}),
        (CrossStitchClassifier, {}),
        (PLEClassifier, {}),
        (MultiTaskDNNClassifier, {}),
        # without dropout, and blocks of one row (rows of a block see each
        # other in training), see tests/_harness.py
        (AutoTaskClassifier, {"dropout": 0.0, "block_size": 1}),
        # pseudo_uniform (the default) scales the regression task by 1 / the
        # variance of its labels, which counts a weighted row once
        (
            GalleryEmbedder,
            {"backbone": "small_vgg", "image_size": 8, "loss_weighter": "uniform"},
        ),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_integer_weights_fit_like_repeated_rows_in_one_batch(cls, extra):
    # One batch holds every row, so the only difference between the two
    # fits is the order of the float32 sums (see tests/_harness.py).
    params = dict(max_epochs=5, batch_size=1024, **FAST, **extra)
    X, y, X_test, _ = make_data(cls(**params), n_samples=160)
    if y.ndim == 1:
        y = y.astype(int)
    # zero included: rows removed from the repeated data
    repeats = np.random.RandomState(3).randint(0, 4, size=len(X))
    weighted = cls(**params).fit(X, y, sample_weight=repeats)
    repeated = cls(**params)
    repeated.fit(np.repeat(X, repeats, axis=0), np.repeat(y, repeats, axis=0))
    out = "transform" if cls is GalleryEmbedder else "predict_proba"
    np.testing.assert_allclose(
        getattr(weighted, out)(X_test), getattr(repeated, out)(X_test), atol=1e-4
    )


def test_unit_weights_give_the_unweighted_model():
    X, y = _two_task_data(n=200)
    plain = SharedBottomClassifier(max_epochs=5, **FAST).fit(X, y)
    ones = SharedBottomClassifier(max_epochs=5, **FAST)
    ones.fit(X, y, sample_weight=np.ones(len(X)))
    np.testing.assert_allclose(ones.predict_proba(X), plain.predict_proba(X), atol=1e-6)


def test_dropped_unlabelled_rows_drop_their_weights():
    X, y = _two_task_data(n=200)
    w = np.random.RandomState(0).rand(len(X)) + 0.1
    y_holes = y.copy()
    y_holes[[3, 50, 51]] = np.nan  # rows with no label at all
    with pytest.warns(UserWarning, match="Dropped 3 of 200 rows"):
        holes = SharedBottomClassifier(max_epochs=3, **FAST)
        holes.fit(X, y_holes, sample_weight=w)
    keep = np.setdiff1d(np.arange(len(X)), [3, 50, 51])
    clean = SharedBottomClassifier(max_epochs=3, **FAST)
    clean.fit(X[keep], y[keep], sample_weight=w[keep])
    np.testing.assert_array_equal(holes.predict_proba(X), clean.predict_proba(X))


def test_class_weight_balanced_raises_recall_of_a_rare_class():
    rng = np.random.RandomState(0)
    n = 4000
    X = rng.normal(size=(n, 4)).astype(np.float32)
    score = X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.7, size=n)
    y = (score > np.quantile(score, 0.95)).astype(int)  # 5% positives
    X_train, y_train, X_test, y_test = X[:3000], y[:3000], X[3000:], y[3000:]
    params = dict(max_epochs=20, **FAST)
    plain = SharedBottomClassifier(**params).fit(X_train, y_train).predict(X_test)
    balanced = SharedBottomClassifier(class_weight="balanced", **params)
    weighted = balanced.fit(X_train, y_train).predict(X_test)
    assert recall_score(y_test, weighted) > recall_score(y_test, plain) + 0.2
    assert balanced_accuracy_score(y_test, weighted) > balanced_accuracy_score(
        y_test, plain
    )
    assert balanced_accuracy_score(y_test, weighted) > 0.8  # beats chance (0.5)


class _MeanGradient(GradientWeighter):
    """A gradient-level weighter: the mean of the task gradients."""

    def combine(self, grads, losses):
        return grads.mean(dim=0)


def test_gradient_level_weighter_ignores_zero_weight_rows():
    X, y = _two_task_data(n=300)
    X_test, y_test = _two_task_data(n=300, seed=9)
    X_all, y_all = _flipped_copies(X, y)
    zero = np.r_[np.ones(len(X)), np.zeros(len(X))]
    params = dict(max_epochs=20, batch_size=2048, lr=1e-2, **FAST)
    without = SharedBottomClassifier(loss_weighter=_MeanGradient(2), **params)
    ignored = SharedBottomClassifier(loss_weighter=_MeanGradient(2), **params)
    without.fit(X, y)
    ignored.fit(X_all, y_all, sample_weight=zero)
    np.testing.assert_allclose(
        ignored.predict_proba(X_test), without.predict_proba(X_test), atol=1e-4
    )
    assert ignored.score(X_test, y_test) > 0.85


def test_step_end_weighter_and_prepare_see_only_the_targets():
    # famo's step_end reads the criterion's losses; pseudo_uniform's
    # prepare reads the labels: both work on a weighted target.
    X, y = _two_task_data(n=200)
    w = np.random.RandomState(0).rand(len(X))
    for name in ("famo", "pseudo_uniform", "dwa"):
        clf = SharedBottomClassifier(loss_weighter=name, max_epochs=15, lr=1e-2, **FAST)
        assert clf.fit(X, y, sample_weight=w).score(X, y) > 0.8


def test_warm_start_and_checkpoint_paths_get_the_weights(tmp_path):
    X, y = _two_task_data(n=200)
    w = np.random.RandomState(0).rand(len(X))
    plain = SharedBottomClassifier(max_epochs=4, **FAST).fit(X, y, sample_weight=w)
    checkpointed = SharedBottomClassifier(
        max_epochs=4, checkpoint_dir=tmp_path, **FAST
    ).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(checkpointed.predict_proba(X), plain.predict_proba(X))
    # A fit with other weights does not resume the first one's checkpoint:
    # the fingerprint covers the weights.
    specs, Y = _specs_and_Y(y)
    table = resolve_class_weight(None, specs, Y)
    params = checkpointed.get_params(deep=False)
    key = fingerprint(params, X, with_weights(Y, row_weights(Y, specs, table, w)))
    other = fingerprint(params, X, with_weights(Y, row_weights(Y, specs, table, w * 2)))
    assert key != other
    again = SharedBottomClassifier(max_epochs=4, checkpoint_dir=tmp_path, **FAST)
    with pytest.warns(UserWarning, match="checkpoint.*other parameters or data"):
        again.fit(X, y, sample_weight=np.ones(len(X)))
    assert not np.array_equal(again.predict_proba(X), plain.predict_proba(X))
    # warm_start continues with the weights of the new call
    warm = SharedBottomClassifier(max_epochs=2, warm_start=True, **FAST)
    warm.fit(X, y, sample_weight=w).fit(X, y, sample_weight=w)
    assert len(warm.history_) == 4


def test_autotask_sample_weight_with_soft_targets():
    est = fast_instance(AutoTaskClassifier)
    X, y, X_test, y_test = make_data(est)
    soft = np.where(y == 1, 0.9, 0.1)
    w = np.random.RandomState(0).rand(len(X)) + 0.5
    est.set_params(class_weight="balanced")
    est.fit(X, y, soft_target=soft, sample_weight=w)
    assert est.score(X_test, y_test) > 0.7
    assert set(est.class_weight_[0]) == {0, 1}


def test_multitask_dnn_zero_weight_rows_are_ignored_in_both_branches():
    est = MultiTaskDNNClassifier(max_epochs=10, batch_size=4096, **FAST)
    X, y, X_test, y_test = make_data(est, n_samples=400)
    X_all = np.vstack([X, X])
    y_all = np.r_[y, 1 - y]
    zero = np.r_[np.ones(len(X)), np.zeros(len(X))]
    without = MultiTaskDNNClassifier(max_epochs=10, batch_size=4096, **FAST)
    without.fit(X, y)
    est.fit(X_all, y_all, sample_weight=zero)
    for branch in ("task", "general"):
        est.set_params(branch=branch)
        without.set_params(branch=branch)
        np.testing.assert_allclose(
            est.predict_proba(X_test), without.predict_proba(X_test), atol=1e-4
        )
    assert est.score(X_test, y_test) > 0.7


def test_gallery_embedder_zero_weight_galleries_are_ignored():
    est = fast_instance(GalleryEmbedder)
    X, y, X_test, y_test = make_data(est, n_samples=160)
    params = est.get_params()
    params.update(batch_size=1024, max_epochs=5)
    X_all = np.vstack([X, X[::-1]])
    y_all = np.vstack([y, y])  # the copies' labels belong to other galleries
    zero = np.r_[np.ones(len(X)), np.zeros(len(X))]
    without = GalleryEmbedder(**params).fit(X, y)
    ignored = GalleryEmbedder(**params).fit(X_all, y_all, sample_weight=zero)
    np.testing.assert_allclose(
        ignored.transform(X_test), without.transform(X_test), atol=1e-4
    )


# ------------------------------------------------------------------- routing
def test_pipeline_routes_sample_weight_to_the_step():
    X, y = _two_task_data(n=200)
    X_all, y_all = _flipped_copies(X, y)
    zero = np.r_[np.ones(len(X)), np.zeros(len(X))]
    pipe = make_pipeline(
        StandardScaler(), SharedBottomClassifier(max_epochs=20, lr=1e-2, **FAST)
    )
    pipe.fit(X_all, y_all, sharedbottomclassifier__sample_weight=zero)
    X_test, y_test = _two_task_data(n=300, seed=9)
    assert pipe.score(X_test, y_test) > 0.85


def test_grid_search_slices_sample_weight_per_fold():
    X, y = _two_task_data(n=200)
    X_all, y_all = _flipped_copies(X, y)
    zero = np.r_[np.ones(len(X)), np.zeros(len(X))]
    grid = GridSearchCV(
        SharedBottomClassifier(max_epochs=20, lr=1e-2, **FAST),
        {"lr": [1e-3, 1e-2]},
        cv=KFold(2, shuffle=True, random_state=0),
        error_score="raise",
    )
    # A weight array of the full length would not match a fold's rows.
    grid.fit(X_all, y_all, sample_weight=zero)
    X_test, y_test = _two_task_data(n=300, seed=9)
    assert grid.score(X_test, y_test) > 0.8


def test_metadata_routing_requests_sample_weight():
    X, y = _two_task_data(n=200)
    X_all, y_all = _flipped_copies(X, y)
    zero = np.r_[np.ones(len(X)), np.zeros(len(X))]
    X_test, y_test = _two_task_data(n=300, seed=9)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = SharedBottomClassifier(max_epochs=20, lr=1e-2, **FAST)
        clf.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = make_pipeline(scaler, clf)
        pipe.fit(X_all, y_all, sample_weight=zero)
        assert pipe.score(X_test, y_test) > 0.85
        grid = GridSearchCV(
            clf, {"lr": [1e-2]}, cv=KFold(2, shuffle=True, random_state=0)
        )
        grid.fit(X_all, y_all, sample_weight=zero)
        assert grid.score(X_test, y_test) > 0.8
        # unrequested, the weights are refused rather than silently dropped
        unrequested = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=False),
            SharedBottomClassifier(max_epochs=1, **FAST),
        )
        with pytest.raises(ValueError, match="sample_weight"):
            unrequested.fit(X_all, y_all, sample_weight=zero)
