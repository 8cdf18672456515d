"""FAMO (Liu et al., NeurIPS 2023): the loss-level weighter ``famo``."""

import math
import pickle

import numpy as np
import pytest
import torch

from mtlestimators import SharedBottomClassifier
from mtlestimators.loss_weighters import FAMOWeighter
from mtlestimators.plugins import get_loss_weighter


def test_registered_as_famo():
    assert get_loss_weighter("famo") is FAMOWeighter


def test_gradient_and_update_follow_the_paper_on_a_hand_checked_example():
    famo = FAMOWeighter(2, optimizer="sgd").train()  # Algorithm 1's step
    losses = torch.tensor([1.0, 4.0], requires_grad=True)
    total = famo(losses, labelled=torch.tensor([True, True]))
    assert total.item() == pytest.approx(5.0)  # the value is the plain sum
    total.backward()
    # z = (1/2, 1/2), c = 1 / (0.5 / 1 + 0.5 / 4) = 1.6; K' c z_k / L_k
    torch.testing.assert_close(losses.grad, torch.tensor([1.6, 0.4]))
    # after the step task 0's loss halved, task 1's did not move:
    # delta = (log 2, 0), grad_xi (z . delta) = z (delta - z . delta)
    famo.step_end(torch.tensor([0.5, 4.0]), labelled=torch.tensor([True, True]))
    step = 0.025 * 0.25 * math.log(2)
    torch.testing.assert_close(famo.logits, torch.tensor([-step, step]))
    assert famo.weights[1] > famo.weights[0]  # the slower task gains weight
    # weight decay gamma pulls the logits back to 0
    famo(torch.tensor([2.0, 2.0]))
    famo.step_end(torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(
        famo.logits, torch.tensor([-step, step]) * (1 - 0.025 * 0.001)
    )


def test_a_task_without_labels_gets_no_weight_and_no_update():
    famo = FAMOWeighter(3, optimizer="sgd").train()
    losses = torch.tensor([1.0, 0.0, 2.0], requires_grad=True)
    labelled = torch.tensor([True, False, True])
    famo(losses, labelled=labelled).backward()
    assert losses.grad[1] == 0
    assert losses.grad[[0, 2]].sum().item() == pytest.approx(2.0)
    famo.step_end(torch.tensor([0.5, 0.0, 1.0]), labelled=labelled)
    # tasks 0 and 2 both halved, task 1 (unlabelled) has delta 0: the step
    # is the softmax Jacobian applied to (log 2, 0, log 2)
    z = torch.full((3,), 1 / 3)
    delta = torch.tensor([math.log(2), 0.0, math.log(2)])
    expected = -0.025 * z * (delta - (z * delta).sum())
    torch.testing.assert_close(famo.logits, expected)


def test_adam_step_of_the_authors_code():
    # Adam's first step is lr * g / (|g| + 1e-8) per logit (bias-corrected
    # moments m = g, v = g^2), then it follows the moment recursion.
    famo = FAMOWeighter(2).train()
    famo(torch.tensor([1.0, 4.0]))
    famo.step_end(torch.tensor([0.5, 4.0]))
    g = 0.25 * math.log(2) * torch.tensor([1.0, -1.0])
    torch.testing.assert_close(famo.logits, -0.025 * g / (g.abs() + 1e-8))
    logits = famo.logits.clone()
    famo(torch.tensor([2.0, 2.0]))
    famo.step_end(torch.tensor([2.0, 2.0]))  # delta = 0: only the decay
    g2 = 0.001 * logits
    m = (0.1 * 0.9 * g + 0.1 * g2) / (1 - 0.9**2)
    v = (0.001 * 0.999 * g**2 + 0.001 * g2**2) / (1 - 0.999**2)
    torch.testing.assert_close(famo.logits, logits - 0.025 * m / (v.sqrt() + 1e-8))


def test_eval_mode_is_the_plain_sum_and_leaves_the_state_alone():
    famo = FAMOWeighter(2).eval()
    losses = torch.tensor([1.0, 3.0], requires_grad=True)
    famo(losses).backward()
    torch.testing.assert_close(losses.grad, torch.ones(2))
    assert torch.isnan(famo.step_losses).all()


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="lr must be a number >= 0"):
        FAMOWeighter(2, lr=-1)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        FAMOWeighter(2, eps=0)
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        FAMOWeighter(2, optimizer="rmsprop")


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(500, 6)).astype("float32")
    Y = np.column_stack([X[:, 0] + X[:, 1] > 0, X[:, 0] - X[:, 2] > 0]).astype(float)
    Y[rng.rand(500) < 0.2, 1] = np.nan
    return X, Y


def test_learns_and_moves_its_weights(data):
    X, Y = data
    model = SharedBottomClassifier(
        loss_weighter="famo", max_epochs=6, verbose=0, random_state=0
    ).fit(X[:400], Y[:400])
    assert model.score(X[400:], Y[400:]) > 0.85  # majority class is ~0.5
    weighter = model.net_.loss_weighter_
    assert isinstance(weighter, FAMOWeighter)
    assert float(weighter.logits.abs().max()) > 0.01  # step_end ran
    assert torch.isfinite(weighter.logits).all()


def test_survives_pickle_and_warm_start(data):
    X, Y = data
    model = SharedBottomClassifier(
        loss_weighter="famo", max_epochs=2, verbose=0, random_state=0
    ).fit(X[:400], Y[:400])
    logits = model.net_.loss_weighter_.logits.clone()
    copy = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(copy.net_.loss_weighter_.logits, logits)
    np.testing.assert_allclose(
        copy.predict_proba(X[400:])[0], model.predict_proba(X[400:])[0]
    )
    # warm start: the second fit continues from the first fit's logits
    copy.set_params(warm_start=True)
    seen = []
    weighter = copy.net_.loss_weighter_
    original = weighter.step_end

    def spy(losses, labelled=None):
        if not seen:
            seen.append(copy.net_.loss_weighter_.logits.clone())
        return original(losses, labelled=labelled)

    weighter.step_end = spy
    copy.fit(X[:400], Y[:400])
    assert copy.net_.loss_weighter_ is weighter
    torch.testing.assert_close(seen[0], logits)
    assert not torch.equal(weighter.logits, logits)


def test_famo_is_refused_for_multi_process_training():
    from types import SimpleNamespace

    from mtlestimators import NetEstimatorBase
    from mtlestimators.loss_weighters import FAMOWeighter

    net = SimpleNamespace(
        accelerator=SimpleNamespace(num_processes=2), loss_weighter_=FAMOWeighter(2)
    )
    with pytest.raises(ValueError, match="FAMOWeighter updates its task weights"):
        NetEstimatorBase._check_accelerated_net(net)
    net.accelerator.num_processes = 1  # one process: nothing to disagree on
    NetEstimatorBase._check_accelerated_net(net)
