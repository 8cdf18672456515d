"""MSSM's sparsity: the mean-scaled L0 term and target_sparsity, no task cut
off (keep_open) and the collapse warning, per-task / per-cell statistics,
exact eval-mode pruning (torch and ONNX) and the shared-input field mask."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from mtlestimators import MSSMClassifier, SNRClassifier
from mtlestimators._core.collapse import warn_constant_tasks
from mtlestimators.datasets import make_multitask_classification
from mtlestimators.gates import HardConcreteGate
from mtlestimators.tabular._sparse_routing import (
    PrunedRoutingModule,
    SparseRoutingModule,
)
from tests.test_mssm import _inputs, _module

FAST = {"verbose": 0, "random_state": 0, "early_stopping": False}


def _data(n=2400, seed=0):
    X, Y = make_multitask_classification(
        n_samples=n, n_features=10, task_correlation=0.5, random_state=seed
    )[:2]
    return X[: n // 4 * 3], Y[: n // 4 * 3], X[n // 4 * 3 :], Y[n // 4 * 3 :]


def _aucs(model, X, Y):
    proba = model.predict_proba(X)
    return [roc_auc_score(Y[:, k], proba[:, k]) for k in range(Y.shape[1])]


@pytest.fixture(scope="module")
def sparse_fit():
    """A fit that reaches a substantial sparsity (lr 1e-2, 600 steps)."""
    X, Y, X_test, Y_test = _data()
    model = MSSMClassifier(
        lr=1e-2, batch_size=32, max_epochs=11, target_sparsity=0.8, **FAST
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no collapse warning
        model.fit(X, Y)
    return model, X, Y, X_test, Y_test


# ----------------------------------------------------------- (a) sparsity
def test_target_sparsity_is_reached_and_the_model_still_learns(sparse_fit):
    model, _, _, X_test, Y_test = sparse_fit
    assert model.connection_sparsity_ >= 0.6
    assert min(_aucs(model, X_test, Y_test)) > 0.7  # chance is 0.5


def test_without_a_target_the_mean_scaled_l0_closes_few_cells():
    X, Y, X_test, Y_test = _data()
    model = MSSMClassifier(
        lr=1e-2, batch_size=32, max_epochs=11, target_sparsity=None, **FAST
    ).fit(X, Y)
    assert model.connection_sparsity_ < 0.2
    assert min(_aucs(model, X_test, Y_test)) > 0.7


def test_history_records_connection_sparsity_every_epoch(sparse_fit):
    model = sparse_fit[0]
    curve = model.history_[:, "connection_sparsity"]
    assert len(curve) == model.max_epochs
    assert all(0.0 <= v <= 1.0 for v in curve)
    assert curve[0] < curve[-1]  # cells close as training goes on
    # hard-concrete gates do not depend on the row: the last epoch's value
    # is the fitted attribute
    assert curve[-1] == pytest.approx(model.connection_sparsity_)


def test_mean_l0_term_does_not_grow_with_the_width():
    terms = []
    for width in (8, 64):
        module = _module(subnet_units=(width,), l0_reduction="mean", l2_penalty=0)
        terms.append(float(module.regularization().detach()))
    assert terms[0] == pytest.approx(terms[1], rel=0.05)
    summed = _module(subnet_units=(64,), l2_penalty=0)  # SNR's sum: grows
    assert float(summed.regularization().detach()) > 10 * terms[1]


def test_the_controller_weight_follows_the_missing_sparsity():
    module = _module(l0_reduction="mean", target_sparsity=0.9, l2_penalty=0)
    module.train()
    open_term = float(module.regularization().detach())
    assert float(module.l0_multiplier) == pytest.approx(4 * 0.9)  # none closed
    with torch.no_grad():
        for gate in module.gates:
            gate.log_alpha[: gate.n_outputs // 2] = -10.0  # half closed
    module.regularization()
    assert float(module.l0_multiplier) == pytest.approx(4 * (0.9 - 0.5))
    with torch.no_grad():
        for gate in module.gates:
            gate.log_alpha.fill_(-10.0)
    module.regularization()
    assert float(module.l0_multiplier) == 0  # target met: no extra weight
    module.eval()  # evaluation leaves the weight alone
    module.regularization()
    assert float(module.l0_multiplier) == 0
    assert open_term > 0


# ------------------------------------------------------- (b) no cut-off
def test_keep_open_leaves_every_task_a_cell_and_no_warning():
    X, Y, X_test, Y_test = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # The linear numeric encoding: with the piecewise-linear default at
        # this extreme step and penalty, the one cell left open to each task
        # carries a dead ReLU unit (a path, but a constant one).
        model = MSSMClassifier(
            lr=3e-2,
            batch_size=32,
            max_epochs=8,
            l0_penalty=50.0,
            target_sparsity=None,
            numeric_embedding="linear",
            **FAST,
        ).fit(X, Y)
    assert (model.task_sparsity_ < 1).all()
    assert model.connection_sparsity_ > 0.9  # the penalty closed the rest
    assert min(_aucs(model, X_test, Y_test)) > 0.6


def test_forced_collapse_warns_naming_the_task():
    X, Y, _, _ = _data()
    import pandas as pd

    Yf = pd.DataFrame(Y, columns=["clicks", "buys"])
    model = MSSMClassifier(
        lr=3e-2,
        batch_size=32,
        max_epochs=8,
        l0_penalty=50.0,
        target_sparsity=None,
        keep_open=False,
        **FAST,
    )
    with pytest.warns(UserWarning, match="constant") as record:
        model.fit(X, Yf)
    messages = " ".join(str(w.message) for w in record)
    assert "MSSMClassifier" in messages
    assert "'clicks'" in messages and "'buys'" in messages
    assert (model.task_sparsity_ == 1).all()


def test_warn_constant_tasks_names_only_the_constant_task():
    rng = np.random.default_rng(0)
    proba = np.column_stack([rng.uniform(size=100), np.full(100, 0.3)])
    with pytest.warns(UserWarning, match="'ctr'") as record:
        out = warn_constant_tasks("Model", ["cvr", "ctr"], proba)
    assert out == ["ctr"] and "'cvr'" not in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_constant_tasks("Model", ["a", "b"], proba[:, [0, 0]]) == []
        # a list of per-task arrays, one of them multiclass
        multi = rng.dirichlet([1, 1, 1], size=100)
        assert warn_constant_tasks("M", ["a", "b"], [proba[:, 0], multi]) == []
    with pytest.raises(ValueError, match="one name per task"):
        warn_constant_tasks("Model", ["a"], proba)


def test_snr_fit_also_runs_the_collapse_check():
    X, Y, _, _ = _data(n=800)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = SNRClassifier(max_epochs=2, **FAST).fit(X, Y)
    # one gate per connection, repeated over the cells of v_i
    assert model.cell_map_.shape == (len(model.cell_map_connections_), 32)
    assert (model.cell_map_ == model.cell_map_[:, :1]).all()


# ------------------------------------------------------ (c) statistics
def test_task_sparsity_and_cell_map_layout(sparse_fit):
    model = sparse_fit[0]
    conns = model.cell_map_connections_
    assert conns.tolist() == [[0, 0], [0, 2], [1, 1], [1, 2]]
    assert model.cell_map_.shape == (4, 32)
    assert set(np.unique(model.cell_map_)) <= {0.0, 1.0}
    for k in range(2):
        rows = model.cell_map_[conns[:, 0] == k]
        assert model.task_sparsity_[k] == pytest.approx(rows.mean())
    assert model.connection_sparsity_ == pytest.approx(model.cell_map_.mean())
    # the map is the eval-mode gate: closed exactly where the value is 0
    values = model.net_.module_.eval_cell_values()
    np.testing.assert_array_equal(model.cell_map_ == 1, values == 0)


# --------------------------------------------------------- (d) pruning
def _unpruned(model, X):
    module = model.net_.module_
    module.pruned_serving = False
    try:
        return model.predict_proba(X)
    finally:
        module.pruned_serving = True


def test_pruning_is_exact_and_smaller(sparse_fit):
    model, _, _, X_test, _ = sparse_fit
    module = model.net_.module_
    pruned = model.predict_proba(X_test)
    assert isinstance(module.pruned_plan(), PrunedRoutingModule)
    np.testing.assert_allclose(pruned, _unpruned(model, X_test), atol=1e-6, rtol=0)
    assert module.serving_flops(True) < module.serving_flops(False)
    plan = module.pruned_plan()
    open_cells = (model.cell_map_ == 0).reshape(2, 2, -1).any(1).sum(1)
    assert plan.n_open == open_cells.tolist()  # closed cells are not computed
    # the plan is not part of the state: no extra parameters or buffers
    assert set(module.state_dict()) == set(
        clone(model)
        .fit(sparse_fit[1][:64], sparse_fit[2][:64])
        .net_.module_.state_dict()
    )


def test_pruned_plan_is_rebuilt_after_training_and_survives_pickle(sparse_fit):
    model, X, Y, X_test, _ = sparse_fit
    model = pickle.loads(pickle.dumps(model))
    assert model.net_.module_.__dict__["_plan_cache"] is None
    np.testing.assert_allclose(
        model.predict_proba(X_test), _unpruned(model, X_test), atol=1e-6, rtol=0
    )
    before = model.predict_proba(X_test)
    model.set_params(warm_start=True, max_epochs=2)
    model.fit(X, Y)  # continues training: the gates change
    after = model.predict_proba(X_test)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _unpruned(model, X_test), atol=1e-6, rtol=0)
    fresh = clone(model)
    assert not hasattr(fresh, "net_") and fresh.target_sparsity == 0.8


def test_cache_follows_in_place_weight_changes():
    module = _module(l0_reduction="mean").eval()
    cat, num = _inputs()
    with torch.no_grad():
        for gate in module.gates[:2]:
            gate.log_alpha.fill_(-10.0)  # close task 0's connections
        a = module(cat, num)
        module.towers[1].out.bias.add_(1.0)  # an in-place change
        b = module(cat, num)
        module.pruned_serving = False
        c = module(cat, num)
    assert not torch.allclose(a[1], b[1])
    for x, y in zip(b, c):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)


def test_onnx_graph_is_pruned_and_exact(sparse_fit, tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from mtlestimators.export import export_onnx, prepare_inputs

    model, _, _, X_test, _ = sparse_fit
    feeds = prepare_inputs(model, X_test)
    path = export_onnx(model, tmp_path / "pruned.onnx")
    pruned = ort.InferenceSession(str(path)).run(None, feeds)[0]
    monkeypatch.setattr(SparseRoutingModule, "pruned_copy", lambda self: None)
    monkeypatch.setattr(SparseRoutingModule, "pruned_plan", lambda self: None)
    path_full = export_onnx(model, tmp_path / "full.onnx")
    full = ort.InferenceSession(str(path_full)).run(None, feeds)[0]
    np.testing.assert_allclose(pruned, full, atol=1e-6, rtol=0)
    assert path.stat().st_size < path_full.stat().st_size  # fewer weights


# --------------------------------------------- (e) shared-input field mask
def test_shared_field_mask_masks_the_shared_input_and_learns():
    X, Y, X_test, Y_test = _data()
    model = MSSMClassifier(lr=1e-2, max_epochs=6, shared_field_mask=True, **FAST).fit(
        X, Y
    )
    assert model.shared_field_masks_.shape == (1, X.shape[1])
    assert ((model.shared_field_masks_ >= 0) & (model.shared_field_masks_ <= 1)).all()
    assert min(_aucs(model, X_test, Y_test)) > 0.7
    np.testing.assert_allclose(
        model.predict_proba(X_test), _unpruned(model, X_test), atol=1e-6, rtol=0
    )
    model.set_params(shared_field_mask=False, warm_start=False).fit(X, Y)
    assert not hasattr(model, "shared_field_masks_")


def test_shared_field_mask_changes_the_shared_output_only():
    plain = _module()
    masked = _module(shared_field_mask=True)
    masked.load_state_dict(plain.state_dict(), strict=False)
    cat, num = _inputs()
    u_plain, _, _ = plain.lower(cat, num)
    u_mask, _, shared = masked.lower(cat, num)
    for j in (0, 1):
        torch.testing.assert_close(u_plain[j], u_mask[j])
    assert not torch.allclose(u_plain[2], u_mask[2])
    assert shared.shape == (16, 1, 5)


def test_shared_field_mask_needs_field_masks():
    X, Y, _, _ = _data(n=200)
    with pytest.raises(ValueError, match="field_masks=True"):
        MSSMClassifier(field_masks=False, shared_field_mask=True, **FAST).fit(X, Y)


def test_gate_log_alpha_override():
    gate = HardConcreteGate(4, 3).eval()
    la = torch.tensor([-10.0, 0.0, 10.0])
    np.testing.assert_allclose(gate.deterministic(la)[0].numpy(), [0, 0.5, 1])
    assert gate.prob_nonzero(la)[0] < 1e-3
    np.testing.assert_array_equal(
        gate.values().detach().numpy(), gate(None).detach().numpy()
    )
