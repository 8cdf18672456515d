import numpy as np
import pytest
import torch

from mtlestimators import MSSMClassifier
from mtlestimators.datasets import make_multitask_classification
from mtlestimators.gates import HardConcreteGate
from mtlestimators.tabular._sparse_routing import SparseRoutingModule


def _module(**kwargs):
    torch.manual_seed(0)
    params = dict(
        cardinalities=[5, 4],
        n_numeric=3,
        field_order=[0, 2, 1, 3, 4],
        output_dims=[1, 1],
        embedding_dim=4,
        n_specific=2,
        n_shared=1,
        subnet_units=(8,),
        tower_units=(6,),
    )
    params.update(kwargs)
    return SparseRoutingModule(**params)


def _inputs(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    categorical = torch.stack(
        [
            torch.randint(0, 5, (n,), generator=g),
            torch.randint(0, 4, (n,), generator=g),
        ],
        dim=1,
    )
    return categorical, torch.randn(n, 3, generator=g)


def test_field_masks_are_exactly_zero_where_tanh_of_g_dot_e_is_not_positive():
    module = _module()
    categorical, numeric = _inputs()
    e = module.fields(categorical, numeric)
    scores = torch.einsum("bfd,kfd->bkf", e, module.mask_vectors)
    masks = module.field_mask_weights(e)
    assert (scores <= 0).any() and (scores > 0).any()
    assert torch.all(masks[scores <= 0] == 0)
    torch.testing.assert_close(masks[scores > 0], torch.tanh(scores[scores > 0]))


def test_cssm_gates_are_deterministic_at_eval_and_sampled_in_training():
    module = _module()
    categorical, numeric = _inputs()
    module.eval()
    first, second = module(categorical, numeric), module(categorical, numeric)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    module.train()
    torch.manual_seed(1)
    a = module(categorical, numeric)[0]
    b = module(categorical, numeric)[0]
    assert not torch.equal(a, b)


def test_one_gate_per_cell_and_task_specific_subnetworks_never_cross():
    module = _module()
    # 2 tasks; lower sub-networks 0, 1 are specific, 2 is shared.
    assert module.connections == [(0, 0), (0, 2), (1, 1), (1, 2)]
    assert all(
        isinstance(g, HardConcreteGate) and g.n_outputs == 8 for g in module.gates
    )
    categorical, numeric = _inputs()
    out = module.eval()(categorical, numeric)
    out[0].sum().backward()
    other_task_specific = list(module.subnets[1].parameters())
    assert all(p.grad is None or torch.all(p.grad == 0) for p in other_task_specific)
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in module.subnets[0].parameters()
    )


def test_ablation_switches_turn_off_exactly_their_part():
    full = _module()
    no_masks = _module(field_masks=False)
    no_cells = _module(cell_gates=False)
    assert no_masks.mask_vectors is None and full.mask_vectors is not None
    assert [g.n_outputs for g in no_masks.gates] == [g.n_outputs for g in full.gates]
    assert [g.n_outputs for g in no_cells.gates] == [1, 1, 1, 1]
    assert no_cells.mask_vectors is not None
    for variant in (no_masks, no_cells):
        assert variant.connections == full.connections
        assert len(variant.subnets) == len(full.subnets)


def test_estimator_ablations_and_figure_3_attributes():
    X, Y = make_multitask_classification(400, 6, 2, 0.5, random_state=0)
    full = MSSMClassifier(max_epochs=2, verbose=0, random_state=0).fit(X, Y)
    module = full.net_.module_.eval()
    inputs = full.field_encoder_.transform(X.astype(object))
    with torch.no_grad():
        e = module.fields(
            *(torch.as_tensor(inputs[k]) for k in ("categorical", "numeric"))
        )
        expected = module.field_mask_weights(e).mean(dim=0).numpy()
    np.testing.assert_allclose(full.field_masks_, expected, rtol=1e-5, atol=1e-7)
    assert full.field_masks_.shape == (2, 6)
    assert 0.0 <= full.connection_sparsity_ <= 1.0
    basic = MSSMClassifier(
        field_masks=False, cell_sharing=False, max_epochs=2, verbose=0
    ).fit(X, Y)
    assert not hasattr(basic, "field_masks_")
    assert basic.net_.module_.gates[0].n_outputs == 1
    full.set_params(field_masks=False).fit(X, Y)  # a refit drops the old masks
    assert not hasattr(full, "field_masks_")


def test_large_l0_penalty_closes_the_connections_and_prediction_still_runs():
    X, Y = make_multitask_classification(600, 6, 2, 0.5, random_state=0)
    weak = MSSMClassifier(max_epochs=5, verbose=0, random_state=0).fit(X, Y)
    strong = MSSMClassifier(
        l0_penalty=10.0, max_epochs=20, lr=0.05, verbose=0, random_state=0
    ).fit(X, Y)
    assert strong.connection_sparsity_ > 0.9
    assert strong.connection_sparsity_ > weak.connection_sparsity_
    proba = strong.predict_proba(X)
    assert proba.shape == (600, 2) and np.all(np.isfinite(proba))


def test_learns_correlated_synthetic_tasks():
    X, Y = make_multitask_classification(3000, 20, 2, 0.9, random_state=1)
    clf = MSSMClassifier(max_epochs=15, verbose=0, random_state=0).fit(
        X[:2000], Y[:2000]
    )
    accuracy = (clf.predict(X[2000:]) == Y[2000:]).mean(axis=0)
    assert np.all(accuracy > 0.75)  # labels are balanced: chance is 0.5


def test_bad_penalties_are_named():
    X, Y = make_multitask_classification(50, 4, 2, 0.5, random_state=0)
    with pytest.raises(ValueError, match="l0_penalty must be a real number >= 0"):
        MSSMClassifier(l0_penalty=-1.0, verbose=0).fit(X, Y)
