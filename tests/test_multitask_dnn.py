"""MultiTaskDNNClassifier: per-task branches, the general branch, unseen tasks."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mtlestimators import MultiTaskDNNClassifier
from mtlestimators.autotask._multitask_dnn import MultiTaskDNNModule
from tests.test_autotask import scenario_data


@pytest.fixture(scope="module")
def fitted():
    X, y = scenario_data()
    model = MultiTaskDNNClassifier(
        task_column="scenario", max_epochs=20, verbose=0, random_state=0
    )
    return model.fit(X, y), X, y


def test_task_branches_learn_each_scenario(fitted):
    model, _, _ = fitted
    X_test, y_test = scenario_data(n=400, seed=1)
    assert model.score(X_test, y_test) > 0.85
    model.set_params(branch="general")
    try:
        general = model.score(X_test, y_test)
    finally:
        model.set_params(branch="task")
    # The general branch cannot see the task: its offset is lost.
    assert general < model.score(X_test, y_test)


def test_unseen_task_uses_the_general_branch(fitted):
    model, X, y = fitted
    unseen = model.predict_proba(X.assign(scenario="new"))
    model.set_params(branch="general")
    try:
        general = model.predict_proba(X)
    finally:
        model.set_params(branch="task")
    np.testing.assert_array_equal(unseen, general)
    assert roc_auc_score(y, unseen[:, 1]) > 0.8


def test_a_row_only_trains_its_own_branch_and_the_general_one():
    torch.manual_seed(0)
    net = MultiTaskDNNModule(n_features=3, n_tasks=3, branch_units=(4,))
    features = torch.randn(16, 3)
    task = torch.full((16,), 2)  # all rows of task 2
    own, general = net(features, task)
    (own.sum() + general.sum()).backward()
    grad = net.branch_layers[0].weight.grad
    assert torch.count_nonzero(grad[2]) > 0  # task 2's branch
    assert torch.count_nonzero(grad[0]) > 0  # the general branch
    assert torch.count_nonzero(grad[1]) == 0
    assert torch.count_nonzero(grad[3]) == 0


def test_unknown_branch_is_named(fitted):
    model, X, _ = fitted
    model.set_params(branch="best")
    try:
        with pytest.raises(ValueError, match="branch='best' is unknown"):
            model.predict_proba(X)
    finally:
        model.set_params(branch="task")
