import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from mtlestimators import MMoEClassifier, per_task_scores
from mtlestimators.datasets import load_adult_multitask
from mtlestimators.gates import HardConcreteGate
from mtlestimators.tabular._mmoe import MMoEModule


def test_learns_both_adult_tasks_from_raw_fields():
    data = load_adult_multitask()
    X_train, X_test, Y_train, Y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    clf = MMoEClassifier(max_epochs=5, verbose=0, random_state=0).fit(X_train, Y_train)
    scores = per_task_scores(Y_test, clf.predict_proba(X_test))
    # one-hot logistic regression per task: 0.907 / 0.962
    assert scores["income"]["roc_auc"] >= 0.89
    assert scores["never_married"]["roc_auc"] >= 0.95


def test_each_task_mixes_the_experts_with_its_own_softmax_gate():
    torch.manual_seed(0)
    module = MMoEModule([5], 2, [0, 1, 2], [1, 1], embedding_dim=4, n_experts=3).eval()
    categorical = torch.tensor([[2], [3]])
    numeric = torch.randn(2, 2)
    x = module.fields(categorical, numeric).flatten(1)
    weights = [gate(x) for gate in module.gates]
    for w in weights:
        torch.testing.assert_close(w.sum(dim=1), torch.ones(2))
    assert not torch.allclose(weights[0], weights[1])
    experts = torch.stack([e(x) for e in module.experts], dim=1)
    expected = module.towers[1]((weights[1].unsqueeze(-1) * experts).sum(1))
    torch.testing.assert_close(module(categorical, numeric)[1], expected)


def test_gate_plugin_and_its_params_are_routed():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    clf = MMoEClassifier(
        gate="hard_concrete", gate__beta=0.5, l0_penalty=1e-2, max_epochs=2, verbose=0
    ).fit(X, Y)
    gates = clf.net_.module_.gates
    assert all(isinstance(g, HardConcreteGate) and g.beta == 0.5 for g in gates)
    assert clf.get_params()["gate__beta"] == 0.5


def test_unknown_gate_is_named_before_training():
    X = np.zeros((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="Unknown gate 'nope'"):
        MMoEClassifier(gate="nope", verbose=0).fit(X, y)
