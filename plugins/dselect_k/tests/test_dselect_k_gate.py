"""The DSelect-k gate plugin: its defining properties and its use by name."""

import pickle

import numpy as np
import pytest
import torch

from mtlestimators.plugins import available_gates, list_plugins

plugin = pytest.importorskip(
    "mtl_dselect_k", reason="install the plugin: pip install -e plugins/dselect_k"
)
DSelectKGate, smooth_step = plugin.DSelectKGate, plugin.smooth_step


def test_registered_through_its_own_distribution():
    assert "dselect_k" in available_gates()
    (info,) = [p for p in list_plugins() if p.name == "dselect_k"]
    assert info.distribution == "mtlestimators-dselect-k"
    assert info.version == "0.1.0"


def test_smooth_step_is_a_c1_step():
    t = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64, requires_grad=True)
    s = smooth_step(t, gamma=1.0)
    assert s[t <= -0.5].eq(0).all() and s[t >= 0.5].eq(1).all()
    assert torch.all(s[1:] >= s[:-1])  # monotone
    (grad,) = torch.autograd.grad(s.sum(), t)
    # continuous derivative: 0 at both ends of the cubic part
    assert grad[(t - 0.5).abs() < 1e-3].abs().max() < 1e-2
    assert grad[(t + 0.5).abs() < 1e-3].abs().max() < 1e-2
    assert s[1000].item() == pytest.approx(0.5)


@pytest.mark.parametrize("n_experts", [2, 4, 5, 8])
def test_weights_are_a_distribution_over_the_experts(n_experts):
    torch.manual_seed(0)
    gate = DSelectKGate(3, n_experts, k=2)
    w = gate(torch.randn(16, 3))
    assert w.shape == (16, n_experts)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(16))


def test_saturated_selectors_pick_at_most_k_experts():
    torch.manual_seed(0)
    gate = DSelectKGate(4, 8, k=2)
    with torch.no_grad():
        gate.z.weight.zero_()
        # selector 0 spells 101 (expert 5), selector 1 spells 010 (expert 2)
        gate.z.bias.copy_(torch.tensor([5.0, -5.0, 5.0, -5.0, 5.0, -5.0]))
    w = gate(torch.randn(10, 4))
    assert torch.count_nonzero(w, dim=1).eq(2).all()
    assert torch.all(w[:, [2, 5]] > 0)
    assert gate.penalty().item() == pytest.approx(0.0, abs=1e-4)  # no entropy left


def test_penalty_is_the_selector_entropy_and_trains_towards_sparsity():
    torch.manual_seed(0)
    gate = DSelectKGate(3, 4, k=1)
    x = torch.randn(64, 3)
    gate(x)
    # near initialization every bit is ~0.5: entropy ~ log(4)
    assert gate.penalty().item() == pytest.approx(np.log(4), rel=0.05)
    optimizer = torch.optim.Adam(gate.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        gate(x)
        gate.penalty().backward()
        optimizer.step()
    w = gate.eval()(x)
    assert torch.count_nonzero(w, dim=1).float().mean() < 1.5  # ~one expert


def test_bad_parameters_and_pickling():
    with pytest.raises(ValueError, match="k must be an integer between 1 and"):
        DSelectKGate(3, 4, k=5)
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        DSelectKGate(3, 4, gamma=0)
    gate = DSelectKGate(3, 4).train()
    gate(torch.randn(5, 3))
    copy = pickle.loads(pickle.dumps(gate))
    torch.testing.assert_close(
        copy.eval()(torch.ones(2, 3)), gate.eval()(torch.ones(2, 3))
    )


def test_mmoe_with_dselect_k_by_name_learns():
    from sklearn.metrics import roc_auc_score

    from mtlestimators import MMoEClassifier
    from mtlestimators.datasets import make_multitask_classification

    X, Y = make_multitask_classification(
        n_samples=3000, n_features=20, task_correlation=0.5, random_state=0
    )
    model = MMoEClassifier(
        n_experts=4,
        gate="dselect_k",
        gate__k=2,
        l0_penalty=1e-3,
        max_epochs=8,
        verbose=0,
        random_state=0,
    ).fit(X[:2400], Y[:2400])
    proba = model.predict_proba(X[2400:])
    for k in range(Y.shape[1]):
        assert roc_auc_score(Y[2400:, k], proba[:, k]) > 0.8
    gate = model.net_.module_.gates[0]
    assert type(gate).__name__ == "DSelectKGate"
