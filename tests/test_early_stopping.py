"""Early stopping the scikit-learn way: ``early_stopping``,
``validation_fraction``, ``n_iter_no_change``, ``tol``, ``n_iter_`` and
``best_epoch_`` on the net estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mtlestimators import MSSMClassifier, MultiTaskDNNClassifier, SharedBottomClassifier
from mtlestimators._core.early_stopping import (
    AUTO_MIN_ROWS,
    MONITOR,
    early_stopping_on,
    validation_rows,
)
from tests.test_resume import Interrupt, _state_dicts_equal


def _tasks(n, seed=0, rare=None):
    """Two binary tasks from four features; the second labelled on the
    ``rare`` first rows only (the rest NaN) when given."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    Y = np.column_stack(
        [
            X[:, 0] + 0.5 * rng.normal(size=n) > 0,
            X[:, 1] - X[:, 2] + 0.5 * rng.normal(size=n) > 0,
        ]
    ).astype(float)
    if rare is not None:
        Y[rare:, 1] = np.nan
    return X, Y


def _small(**params):
    defaults = dict(
        bottom_units=(16,),
        tower_units=(8,),
        batch_size=64,
        lr=1e-2,
        verbose=0,
        random_state=0,
        early_stopping=True,
        n_iter_no_change=3,
        max_epochs=60,
    )
    return SharedBottomClassifier(**{**defaults, **params})


# ------------------------------------------------------------ the held-out rows
def test_every_task_and_class_is_in_the_held_out_rows_in_proportion():
    _, Y = _tasks(5000, rare=60)
    Y[:3, 1] = [1.0, 0.0, 1.0]
    held = validation_rows(Y, ["binary", "binary"], 0.1, random_state=0)
    assert 0.09 < held.mean() < 0.11
    for k in range(2):
        labelled = ~np.isnan(Y[:, k])
        for c in (0.0, 1.0):
            members = labelled & (Y[:, k] == c)
            share = held[members].mean()
            assert 1 <= held[members].sum() < members.sum()
            assert abs(share - 0.1) < 0.05, (k, c, share)
    # The rare task's 60 labels: about 6 held out, not left to chance.
    assert 4 <= held[:60].sum() <= 8


def test_a_task_with_two_labels_gets_one_of_them_held_out():
    _, Y = _tasks(400)
    Y[:, 1] = np.nan
    Y[[10, 20], 1] = [1.0, 1.0]
    held = validation_rows(Y, ["binary", "binary"], 0.1, random_state=3)
    assert held[[10, 20]].sum() == 1


def test_the_held_out_rows_follow_the_random_state():
    _, Y = _tasks(2000)
    kinds = ["binary", "binary"]
    a = validation_rows(Y, kinds, 0.2, random_state=1)
    b = validation_rows(Y, kinds, 0.2, random_state=1)
    c = validation_rows(Y, kinds, 0.2, random_state=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_multiclass_and_regression_targets_are_stratified():
    rng = np.random.RandomState(0)
    Y = np.column_stack([rng.randint(0, 5, 1000), rng.normal(size=1000)])
    held = validation_rows(Y, ["multiclass", "regression"], 0.25, random_state=0)
    for c in range(5):
        assert abs(held[Y[:, 0] == c].mean() - 0.25) < 0.03


# ------------------------------------------------------------- when it is on
def test_auto_is_on_above_a_thousand_labelled_rows():
    est = SharedBottomClassifier()
    assert est.early_stopping == "auto"
    assert not early_stopping_on(est, AUTO_MIN_ROWS)
    assert early_stopping_on(est, AUTO_MIN_ROWS + 1)
    # A train_split of the user's own: they validate, auto stays off.
    from skorch.dataset import ValidSplit

    assert not early_stopping_on(
        SharedBottomClassifier(train_split=ValidSplit(5)), 10**6
    )
    assert early_stopping_on(SharedBottomClassifier(early_stopping=True), 10)
    assert not early_stopping_on(SharedBottomClassifier(early_stopping=False), 10**6)


def test_early_stopping_and_a_train_split_together_are_refused():
    from skorch.dataset import ValidSplit

    X, Y = _tasks(300)
    with pytest.raises(ValueError, match="train_split=None"):
        _small(train_split=ValidSplit(0.2)).fit(X, Y)


def test_auto_stops_a_large_fit_and_leaves_a_small_one_alone():
    X, Y = _tasks(AUTO_MIN_ROWS + 500)
    big = _small(early_stopping="auto", max_epochs=200, lr=3e-2).fit(X, Y)
    assert MONITOR in big.history_[-1]
    assert big.n_iter_ < 200 and big.best_epoch_ <= big.n_iter_ - 3
    small = _small(early_stopping="auto", max_epochs=4).fit(X[:900], Y[:900])
    assert MONITOR not in small.history_[-1]
    assert small.n_iter_ == small.best_epoch_ == 4


# ------------------------------------------------------ what a stop returns
def test_the_best_epochs_weights_are_restored():
    X, Y = _tasks(3000)
    stopped = _small(lr=5e-2).fit(X, Y)
    best, n_iter = stopped.best_epoch_, stopped.n_iter_
    assert best < n_iter == best + 3 < 60
    losses = stopped.history_[:, MONITOR]
    assert losses[best - 1] == pytest.approx(min(losses), abs=1e-4)
    # The same fit (same held-out rows, same shuffles) run for exactly
    # best_epoch_ epochs ends with the weights early stopping restored.
    until_best = _small(lr=5e-2, max_epochs=best, n_iter_no_change=100).fit(X, Y)
    assert until_best.n_iter_ == best
    assert _state_dicts_equal(stopped, until_best)


def test_the_monitored_loss_is_the_mean_of_the_tasks_losses():
    # Task 1 has few labels: a mean over rows would let task 0 decide.
    X, Y = _tasks(3000, rare=300)
    est = _small(max_epochs=3, n_iter_no_change=10).fit(X, Y)
    net = est.net_
    held = validation_rows(Y, ["binary", "binary"], 0.1, est._seed())
    outputs = net.task_outputs(est._predict_inputs(X[held]))
    losses = []
    for k, out in enumerate(outputs):
        rows = ~np.isnan(Y[held, k])
        target = torch.as_tensor(Y[held, k][rows])
        losses.append(
            torch.nn.functional.binary_cross_entropy_with_logits(
                out[rows].double(), target
            ).item()
        )
    best = est.history_[est.best_epoch_ - 1, MONITOR]
    assert best == pytest.approx(np.mean(losses), rel=1e-5)


def test_early_stopping_is_reproducible():
    X, Y = _tasks(2000)
    a, b = _small(lr=5e-2).fit(X, Y), _small(lr=5e-2).fit(X, Y)
    assert a.n_iter_ == b.n_iter_ and a.best_epoch_ == b.best_epoch_
    assert _state_dicts_equal(a, b)


def test_a_model_that_stops_early_learns():
    X, Y = _tasks(4000)
    est = _small(random_state=1).fit(X[:3000], Y[:3000])
    proba = est.predict_proba(X[3000:])
    for k in range(2):
        assert roc_auc_score(Y[3000:, k], proba[:, k]) > 0.8


def test_the_stop_message_is_silent_with_verbose_0(capsys):
    X, Y = _tasks(2000)
    _small(lr=5e-2).fit(X, Y)
    assert capsys.readouterr().out == ""
    _small(lr=5e-2, verbose=1).fit(X, Y)
    out = capsys.readouterr().out
    assert MONITOR in out and "Restoring best model" in out


# ----------------------------------------------- warm start and checkpoints
def test_a_warm_start_continuation_stops_early_on_its_own_rows():
    X, Y = _tasks(3000)
    est = _small(lr=5e-2, warm_start=True, early_stopping=False, max_epochs=2)
    est.fit(X, Y)
    assert est.n_iter_ == est.best_epoch_ == 2
    est.set_params(early_stopping=True, max_epochs=60).fit(X, Y)
    assert 2 < est.best_epoch_ < est.n_iter_ < 62
    assert MONITOR in est.history_[-1] and MONITOR not in est.history_[0]
    n_iter = est.n_iter_
    est.set_params(early_stopping=False, max_epochs=1).fit(X, Y)
    assert est.n_iter_ == est.best_epoch_ == n_iter + 1
    assert MONITOR not in est.history_[-1]


def test_an_interrupted_fit_with_early_stopping_resumes_to_the_same_model(tmp_path):
    X, Y = _tasks(2000)
    reference = _small(lr=1e-2).fit(X, Y)
    assert reference.n_iter_ > 4
    Interrupt.armed = 1
    cut = _small(lr=1e-2, checkpoint_dir=tmp_path, callbacks=[Interrupt(at=3)])
    assert cut.fit(X, Y).n_iter_ == 3
    resumed = _small(lr=1e-2, checkpoint_dir=tmp_path, callbacks=[Interrupt(at=3)])
    resumed.fit(X, Y)
    assert (resumed.n_iter_, resumed.best_epoch_) == (
        reference.n_iter_,
        reference.best_epoch_,
    )
    assert _state_dicts_equal(resumed, reference)
    again = _small(lr=1e-2, checkpoint_dir=tmp_path, callbacks=[Interrupt(at=3)])
    assert _state_dicts_equal(again.fit(X, Y), reference)
    assert again.best_epoch_ == reference.best_epoch_


# ------------------------------------------------------- the other families
def test_field_models_stop_early_on_a_dataframe():
    import pandas as pd

    X, Y = _tasks(1500)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    est = MSSMClassifier(
        early_stopping=True,
        n_iter_no_change=2,
        max_epochs=40,
        verbose=0,
        random_state=0,
        lr=2e-2,
    ).fit(frame, Y)
    assert est.best_epoch_ < est.n_iter_ < 40


def test_the_scenario_models_stop_early():
    rng = np.random.RandomState(0)
    X, _ = _tasks(2000)
    scenario = rng.randint(0, 3, 2000)
    y = (X[:, 0] * (scenario - 1) + 0.3 * rng.normal(size=2000) > 0).astype(int)
    features = np.column_stack([scenario, X])
    est = MultiTaskDNNClassifier(
        task_column=0,
        early_stopping=True,
        n_iter_no_change=2,
        max_epochs=40,
        verbose=0,
        random_state=0,
        lr=1e-2,
    ).fit(features, y)
    assert est.best_epoch_ < est.n_iter_ < 40


# ------------------------------------------- weight decay on weights only
def test_weight_decay_applies_to_linear_weights_only():
    import pandas as pd

    X, Y = _tasks(400)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    est = MSSMClassifier(
        max_epochs=1,
        verbose=0,
        random_state=0,
        optimizer="adamw",
        optimizer__weight_decay=0.1,
        early_stopping=False,
    ).fit(frame, Y)
    module = est.net_.module_
    names = {id(p): n for n, p in module.named_parameters()}
    decayed, plain = est.net_.optimizer_.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    decayed_names = {names[id(p)] for p in decayed["params"]}
    plain_names = {names[id(p)] for p in plain["params"] if id(p) in names}
    assert decayed_names and all(n.endswith("weight") for n in decayed_names)
    assert not any(
        n.startswith(("fields.", "gates.", "mask_vectors")) for n in decayed_names
    )
    assert any(n.startswith("fields.") for n in plain_names)
    assert any(n.startswith("gates.") for n in plain_names)
    assert any(n.endswith("bias") for n in plain_names)
    # Every learnable parameter is in exactly one group.
    everything = [p for _, p in est.net_.get_all_learnable_params()]
    grouped = decayed["params"] + plain["params"]
    assert len(grouped) == len(everything) == len({id(p) for p in grouped})


def test_weight_decay_with_the_users_param_groups_is_left_to_them():
    X, Y = _tasks(300)
    est = SharedBottomClassifier(
        max_epochs=1,
        verbose=0,
        optimizer__weight_decay=0.1,
        optimizer__param_groups=[("towers*", {"lr": 0.5})],
    ).fit(X, Y)
    groups = est.net_.optimizer_.param_groups
    assert [g["lr"] for g in groups] == [0.5, est.lr]
    assert all(g["weight_decay"] == 0.1 for g in groups)


def test_the_gallery_model_stops_early_on_binary_multiclass_and_regression_tasks():
    from mtlestimators import GalleryEmbedder

    rng = np.random.RandomState(0)
    n = 60
    galleries = [
        rng.randint(0, 256, size=(k, 12, 12), dtype=np.uint8)
        for k in rng.randint(1, 4, size=n)
    ]
    y = np.column_stack(
        [rng.randint(0, 2, n), rng.randint(0, 3, n), rng.normal(size=n)]
    )
    est = GalleryEmbedder(
        backbone="small_vgg",
        image_size=16,
        lr=1e-3,
        verbose=0,
        random_state=0,
        max_epochs=30,
        early_stopping=True,
        n_iter_no_change=2,
        tasks=["binary", "multiclass", "regression"],
    ).fit(galleries, y)
    assert MONITOR in est.history_[-1]
    assert est.best_epoch_ <= est.n_iter_ - 2 and est.n_iter_ < 30


# ------------------------------------------------ review follow-ups
def test_a_rare_class_of_a_fully_labelled_task_is_held_out():
    # Every row has both labels; task 1 has 3 positives. Filling task 0's
    # strata first must not leave task 1's positives no free row.
    for seed in range(20):
        _, Y = _tasks(2000, seed=seed)
        Y[:, 1] = 0.0
        Y[[5, 500, 1500], 1] = 1.0
        held = validation_rows(Y, ["binary", "binary"], 0.1, random_state=seed)
        assert held[[5, 500, 1500]].sum() == 1
        assert 0.09 < held.mean() < 0.11


def test_rows_of_weight_zero_do_not_count_as_held_out_labels():
    _, Y = _tasks(1000)
    weights = np.ones_like(Y)
    weights[:500, 1] = 0.0
    held = validation_rows(
        np.hstack([Y, weights]), ["binary", "binary"], 0.1, random_state=0
    )
    positive = held[500:] & (Y[500:, 1] == 1)
    assert positive.sum() >= 1  # task 1's held-out labels have weight 1


def test_a_continuation_holds_out_the_rows_of_the_first_fit(monkeypatch):
    import mtlestimators._core.base as base

    X, Y = _tasks(3000)
    est = _small(warm_start=True, max_epochs=3, n_iter_no_change=10)
    first = validation_rows(Y, ["binary", "binary"], 0.1, est._seed())
    est.fit(X, Y)
    seen = []

    class Spy(base.HeldOutRows):
        def __call__(self, dataset, y=None, groups=None):
            train, valid = super().__call__(dataset, y, groups)
            seen.append(np.asarray(valid.indices))
            return train, valid

    monkeypatch.setattr(base, "HeldOutRows", Spy)
    est.set_params(max_epochs=2).fit(X, Y)
    assert seen and np.array_equal(seen[0], np.flatnonzero(first))


def test_early_stopping_monitors_the_weighted_loss():
    X, Y = _tasks(3000)
    weights = np.where(Y[:, 0] == 1, 3.0, 1.0)
    est = _small(max_epochs=3, n_iter_no_change=10).fit(X, Y, sample_weight=weights)
    held = validation_rows(
        np.hstack([Y, weights[:, None] * np.ones((1, 2))]),
        ["binary", "binary"],
        0.1,
        est._seed(),
    )
    outputs = est.net_.task_outputs(est._predict_inputs(X[held]))
    losses = []
    for k, out in enumerate(outputs):
        per_row = torch.nn.functional.binary_cross_entropy_with_logits(
            out.double(), torch.as_tensor(Y[held, k]), reduction="none"
        ).numpy()
        losses.append(np.average(per_row, weights=weights[held]))
    best = est.history_[est.best_epoch_ - 1, MONITOR]
    assert best == pytest.approx(np.mean(losses), rel=1e-5)


def test_adamw_at_its_default_weight_decay_spares_embeddings():
    X, Y = _tasks(300)
    est = SharedBottomClassifier(max_epochs=1, verbose=0, optimizer="adamw").fit(X, Y)
    groups = est.net_.optimizer_.param_groups
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    names = {id(p): n for n, p in est.net_.module_.named_parameters()}
    assert all(not names[id(p)].startswith("fields.") for p in groups[0]["params"])


def test_a_collapsed_task_of_any_classifier_warns_with_its_name():
    from mtlestimators import MMoEClassifier

    X, Y = _tasks(400)
    est = MMoEClassifier(max_epochs=2, verbose=0, random_state=0)

    def dead(*args, **kwargs):  # the second task's head outputs a constant
        outputs = list(real(*args, **kwargs))
        outputs[1] = torch.zeros_like(outputs[1])
        return tuple(outputs)

    import mtlestimators._core.net as net_module

    real = net_module.MultiTaskNet.task_outputs
    net_module.MultiTaskNet.task_outputs = dead
    try:
        with pytest.warns(UserWarning, match="task_1"):
            est.fit(X, Y)
    finally:
        net_module.MultiTaskNet.task_outputs = real


# ------------------------------------------------ lr_schedule="plateau"
def _learning_rates(est):
    return [float(g["lr"]) for g in est.net_.optimizer_.param_groups]


def _cuts_follow_plateaus(est, lr, patience=3):
    """The epochs' learning rates: each change is a cut by 0.3 that comes
    after more than ``patience`` epochs without a better held-out loss."""
    rates = list(est.history_[:, "event_lr"])
    losses = list(est.history_[:, MONITOR])
    tol = est.tol
    assert rates[0] == pytest.approx(lr)
    # As torch counts: bad epochs since the last improvement by more than
    # tol, or since the last cut (which resets the count, not the best).
    cuts, best, counted_from = 0, np.inf, -1
    for e in range(1, len(rates)):
        if losses[e - 1] < best - tol:
            best, counted_from = losses[e - 1], e - 1
        if rates[e] == pytest.approx(rates[e - 1]):
            continue
        cuts += 1
        assert rates[e] == pytest.approx(0.3 * rates[e - 1])
        assert e - 1 - counted_from > patience
        counted_from = e - 1
    return cuts


def test_the_plateau_schedule_cuts_the_learning_rate_on_the_held_out_loss():
    X, Y = _tasks(3000)
    est = _small(lr=5e-2, n_iter_no_change=12, lr_schedule="plateau").fit(X, Y)
    assert _cuts_follow_plateaus(est, 5e-2) >= 1
    assert min(_learning_rates(est)) < 5e-2
    constant = _small(lr=5e-2, n_iter_no_change=12, lr_schedule="constant")
    constant.fit(X, Y)
    assert _learning_rates(constant) == [pytest.approx(5e-2)]
    assert "event_lr" not in constant.history_[-1]
    # Without held-out rows there is no loss to watch: the rate stays.
    plain = _small(lr=5e-2, early_stopping=False, max_epochs=20).fit(X, Y)
    assert plain.lr_schedule == "plateau"
    assert _learning_rates(plain) == [pytest.approx(5e-2)]


def test_the_plateau_schedule_follows_warm_start_continuations():
    from mtlestimators._core.early_stopping import SCHEDULE_NAME

    X, Y = _tasks(3000)
    est = _small(lr=5e-2, n_iter_no_change=12, warm_start=True)
    est.set_params(early_stopping=False, max_epochs=2).fit(X, Y)
    assert SCHEDULE_NAME not in dict(est.net_.callbacks_)
    # A continuation that stops early gets the schedule, after early stopping.
    est.set_params(early_stopping=True, max_epochs=60).fit(X, Y)
    names = [name for name, _ in est.net_.callbacks_]
    assert names.index(SCHEDULE_NAME) == names.index("early_stopping_task_mean") + 1
    rates = est.history_[2:, "event_lr"]
    assert min(rates) < rates[0] == pytest.approx(5e-2)
    # One that does not stop early starts again at lr and keeps it.
    assert min(_learning_rates(est)) < 5e-2
    est.set_params(early_stopping=False, max_epochs=3).fit(X, Y)
    assert _learning_rates(est) == [pytest.approx(5e-2)]
    assert not dict(est.net_.callbacks_)[SCHEDULE_NAME].active


def test_an_interrupted_fit_resumes_with_its_schedule(tmp_path):
    X, Y = _tasks(3000)
    params = dict(lr=5e-2, n_iter_no_change=12)
    reference = _small(**params).fit(X, Y)
    rates = list(reference.history_[:, "event_lr"])
    first_cut = next(e for e in range(1, len(rates)) if rates[e] < rates[e - 1])
    # Interrupted two epochs before the first cut, inside the run of epochs
    # without improvement: the resumed scheduler must remember how many.
    losses = list(reference.history_[:, MONITOR])
    at = first_cut - 2
    assert min(losses[:at]) <= min(losses[: first_cut - 4]) + reference.tol
    Interrupt.armed = 1
    cut = _small(**params, checkpoint_dir=tmp_path, callbacks=[Interrupt(at=at)])
    assert cut.fit(X, Y).n_iter_ == at
    resumed = _small(**params, checkpoint_dir=tmp_path, callbacks=[Interrupt(at=at)])
    resumed.fit(X, Y)
    assert list(resumed.history_[:, "event_lr"]) == pytest.approx(rates)
    assert resumed.best_epoch_ == reference.best_epoch_
    assert _state_dicts_equal(resumed, reference)


def test_a_fitted_model_with_the_schedule_pickles_without_its_optimizer_copy():
    import pickle

    from mtlestimators._core.early_stopping import SCHEDULE_NAME

    X, Y = _tasks(3000)
    est = _small(lr=5e-2, n_iter_no_change=12, max_epochs=20).fit(X, Y)
    assert dict(est.net_.callbacks_)[SCHEDULE_NAME].lr_scheduler_ is not None
    loaded = pickle.loads(pickle.dumps(est))
    assert dict(loaded.net_.callbacks_)[SCHEDULE_NAME].lr_scheduler_ is None
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X))
    # and it trains on: the scheduler is rebuilt when a fit starts
    loaded.set_params(warm_start=True, max_epochs=2).fit(X, Y)
    assert dict(loaded.net_.callbacks_)[SCHEDULE_NAME].lr_scheduler_ is not None


def test_a_users_own_scheduler_replaces_the_built_in_one():
    from skorch.callbacks import LRScheduler

    from mtlestimators._core.early_stopping import SCHEDULE_NAME

    X, Y = _tasks(3000)
    step = LRScheduler(policy="StepLR", step_size=5, gamma=0.5)
    est = _small(lr=5e-2, n_iter_no_change=12, max_epochs=12, callbacks=[step])
    est.fit(X, Y)
    assert SCHEDULE_NAME not in dict(est.net_.callbacks_)
    rates = est.history_[:, "event_lr"]
    assert rates[:5] == [pytest.approx(5e-2)] * 5
    assert rates[5:10] == [pytest.approx(2.5e-2)] * 5


def test_a_model_pickled_before_lr_schedule_existed_keeps_a_constant_rate():
    import pickle

    X, Y = _tasks(300)
    est = _small(max_epochs=2, early_stopping=False).fit(X, Y)
    state = est.__getstate__()
    del state["lr_schedule"]
    old = SharedBottomClassifier.__new__(SharedBottomClassifier)
    old.__setstate__(state)
    assert old.get_params()["lr_schedule"] == "constant"
    assert pickle.loads(pickle.dumps(old)).lr_schedule == "constant"
