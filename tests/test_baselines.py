import numpy as np
import pytest
import torch

from mtlestimators import CrossStitchClassifier, PLEClassifier, SNRClassifier
from mtlestimators.datasets import make_multitask_classification
from mtlestimators.tabular._cross_stitch import CrossStitchModule
from mtlestimators.tabular._ple import PLEModule
from mtlestimators.tabular._sparse_routing import SparseRoutingModule

INPUT = dict(cardinalities=[5], n_numeric=2, field_order=[0, 1, 2], output_dims=[1, 1])


def _inputs(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 5, (n, 1), generator=g), torch.randn(n, 2, generator=g)


@pytest.mark.parametrize("cls", [SNRClassifier, PLEClassifier, CrossStitchClassifier])
def test_learns_correlated_synthetic_tasks(cls):
    X, Y = make_multitask_classification(3000, 20, 2, 0.9, random_state=1)
    clf = cls(max_epochs=15, verbose=0, random_state=0).fit(X[:2000], Y[:2000])
    accuracy = (clf.predict(X[2000:]) == Y[2000:]).mean(axis=0)
    assert np.all(accuracy > 0.75)  # balanced labels: chance is 0.5


def test_snr_connects_every_subnetwork_to_every_task_with_one_coding_variable():
    X, Y = make_multitask_classification(200, 5, 2, 0.5, random_state=0)
    for routing, has_transform in (("transform", True), ("average", False)):
        clf = SNRClassifier(routing=routing, max_epochs=1, verbose=0).fit(X, Y)
        module = clf.net_.module_
        assert isinstance(module, SparseRoutingModule)
        assert module.connections == [(i, j) for i in range(2) for j in range(3)]
        assert all(g.n_outputs == 1 for g in module.gates)
        assert module.mask_vectors is None
        n_transform_params = sum(p.numel() for p in module.transforms.parameters())
        assert (n_transform_params > 0) == has_transform


def test_snr_rejects_an_unknown_routing():
    X, Y = make_multitask_classification(50, 4, 2, 0.5, random_state=0)
    with pytest.raises(ValueError, match="routing='mean' is unknown"):
        SNRClassifier(routing="mean", verbose=0).fit(X, Y)


def test_ple_levels_and_gates():
    torch.manual_seed(0)
    module = PLEModule(**INPUT, embedding_dim=4, n_levels=3).eval()
    assert len(module.levels) == 3
    assert all(level.shared_gate is not None for level in module.levels[:-1])
    assert module.levels[-1].shared_gate is None
    # each task gate mixes 1 specific + 1 shared expert, the shared gate all 3
    assert [g.n_outputs for g in module.levels[0].task_gates] == [2, 2]
    assert module.levels[0].shared_gate.n_outputs == 3
    out = module(*_inputs())
    assert [o.shape for o in out] == [(8,), (8,)]


def test_cross_stitch_units_start_near_identity_and_learn():
    module = CrossStitchModule(**INPUT, embedding_dim=4, hidden_units=(6, 5))
    alpha = module.stitches[0].detach()
    torch.testing.assert_close(alpha, torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    module(*_inputs())[0].sum().backward()
    assert module.stitches[0].grad.abs().sum() > 0


def test_parameters_a_model_cannot_use_are_refused():
    X, Y = make_multitask_classification(50, 4, 2, 0.5, random_state=0)
    with pytest.raises(ValueError, match="unknown parameter 'gate__beta'"):
        CrossStitchClassifier(gate__beta=0.5, verbose=0).fit(X, Y)
    from mtlestimators import MMoEClassifier

    with pytest.raises(ValueError, match="l0_penalty must be a real number >= 0"):
        MMoEClassifier(l0_penalty=-1.0, verbose=0).fit(X, Y)
