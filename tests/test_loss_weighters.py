import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlestimators.loss_weighters import (
    DWAWeighter,
    PseudoUniformWeighter,
    RLWWeighter,
    UncertaintyWeighter,
    UniformWeighter,
)


def _value_and_grad(weighter, losses):
    losses = torch.tensor(losses, requires_grad=True)
    total = weighter(losses)
    total.backward()
    return total.item(), losses.grad.numpy()


def test_uniform_is_the_weighted_sum():
    value, grad = _value_and_grad(UniformWeighter(2, weights=[1.0, 3.0]), [1.0, 2.0])
    assert value == pytest.approx(7.0)
    np.testing.assert_allclose(grad, [1.0, 3.0])


def test_uniform_rejects_wrong_number_of_weights():
    with pytest.raises(ValueError, match="one per task"):
        UniformWeighter(3, weights=[1.0, 2.0])


def test_pseudo_uniform_scales_regression_by_inverse_label_variance():
    weighter = PseudoUniformWeighter(2)
    y = np.array([[0.0, 1.0], [1.0, 3.0], [np.nan, 5.0]])
    weighter.prepare(y, ["binary", "regression"])  # var([1, 3, 5], ddof=1) = 4
    value, grad = _value_and_grad(weighter, [0.5, 8.0])
    assert value == pytest.approx(0.5 + 8.0 / 4.0)
    np.testing.assert_allclose(grad, [1.0, 0.25])


def test_pseudo_uniform_refuses_a_constant_regression_task():
    with pytest.raises(ValueError, match="zero variance"):
        PseudoUniformWeighter(1).prepare(np.ones((4, 1)), ["regression"])


def test_uncertainty_matches_kendall_as_written_in_the_gallery_paper():
    weighter = UncertaintyWeighter(2)
    weighter.prepare(np.zeros((1, 2)), ["binary", "regression"])
    with torch.no_grad():
        weighter.log_variance.copy_(torch.tensor([0.0, math.log(4.0)]))
    losses = torch.tensor([2.0, 8.0], requires_grad=True)
    total = weighter(losses)
    total.backward()
    # classification: L / sigma^2 + log sigma; regression: L / (2 sigma^2) + log sigma
    expected = 2.0 / 1.0 + 0.0 + 8.0 / (2 * 4.0) + math.log(2.0)
    assert total.item() == pytest.approx(expected)
    np.testing.assert_allclose(losses.grad.numpy(), [1.0, 1.0 / 8.0])
    # d/ds (f e^{-s} L + s/2) = -f e^{-s} L + 1/2
    np.testing.assert_allclose(
        weighter.log_variance.grad.numpy(), [-2.0 + 0.5, -1.0 + 0.5], rtol=1e-6
    )


def test_uncertainty_log_variance_is_a_trainable_parameter():
    names = [name for name, _ in UncertaintyWeighter(3).named_parameters()]
    assert names == ["log_variance"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
        min_size=1,
        max_size=6,
    )
)
def test_weighters_are_finite_for_finite_losses(values):
    losses = torch.tensor(values)
    k = len(values)
    kinds = ["binary"] * k
    for weighter in (
        UniformWeighter(k),
        PseudoUniformWeighter(k),
        UncertaintyWeighter(k),
    ):
        weighter.prepare(np.zeros((2, k)), kinds)
        assert torch.isfinite(weighter(losses))


@settings(max_examples=30, deadline=None)
@given(
    st.floats(min_value=0.01, max_value=100.0), st.floats(min_value=0.01, max_value=100)
)
def test_uniform_and_pseudo_uniform_are_linear_in_the_losses(scale, loss):
    for weighter in (UniformWeighter(1), PseudoUniformWeighter(1)):
        one = weighter(torch.tensor([loss]))
        scaled = weighter(torch.tensor([loss * scale]))
        assert scaled.item() == pytest.approx(scale * one.item(), rel=1e-5)


def test_uncertainty_leaves_out_tasks_without_labels_in_the_batch():
    weighter = UncertaintyWeighter(2)
    losses = torch.tensor([0.7, 0.0])
    total = weighter(losses, labelled=torch.tensor([True, False]))
    total.backward()
    assert total.item() == pytest.approx(0.7)
    assert weighter.log_variance.grad[1].item() == 0.0
    assert weighter.log_variance.grad[0].item() == pytest.approx(-0.7 + 0.5)


def test_dwa_weights_follow_the_loss_ratio_formula():
    dwa = DWAWeighter(2, temperature=2.0).train()
    epochs = [  # per-batch task losses of three epochs
        [[1.0, 2.0], [3.0, 2.0]],  # epoch means 2.0, 2.0
        [[1.0, 1.5], [1.0, 1.5]],  # epoch means 1.0, 1.5
        [[0.5, 1.0]],
    ]
    for batches in epochs[:2]:
        for losses in batches:
            value = dwa(torch.tensor(losses))
            assert value.item() == pytest.approx(sum(losses))  # w = 1 so far
        dwa.epoch_end()
    # r = (1.0 / 2.0, 1.5 / 2.0); w = K softmax(r / T)
    r = np.array([0.5, 0.75]) / 2.0
    expected = 2 * np.exp(r) / np.exp(r).sum()
    np.testing.assert_allclose(dwa.weights.numpy(), expected, rtol=1e-6)
    assert expected[1] > expected[0]  # the slower task gets more weight
    value = dwa(torch.tensor(epochs[2][0]))
    assert value.item() == pytest.approx(float(expected @ epochs[2][0]), rel=1e-6)


def test_dwa_skips_tasks_without_labels_in_the_epoch_mean():
    dwa = DWAWeighter(2).train()
    dwa(torch.tensor([1.0, 0.0]), labelled=torch.tensor([True, False]))
    dwa(torch.tensor([3.0, 4.0]), labelled=torch.tensor([True, True]))
    dwa.epoch_end()
    np.testing.assert_allclose(dwa.history[1].numpy(), [2.0, 4.0])


def test_dwa_stays_finite_when_a_loss_explodes_at_a_low_temperature():
    # ratio / T overflows to inf for T < 1 even when the ratio itself is
    # finite; the weights must still be finite and favour the exploding task.
    dwa = DWAWeighter(2, temperature=0.5).train()
    for losses in ([1e-30, 1.0], [1e30, 1.0]):
        dwa(torch.tensor(losses))
        dwa.epoch_end()
    weights = dwa.weights.numpy()
    assert np.isfinite(weights).all()
    np.testing.assert_allclose(weights, [2.0, 0.0], atol=1e-6)


def test_rlw_draws_softmax_normal_weights_per_step():
    rlw = RLWWeighter(3).train()
    losses = torch.tensor([1.0, 2.0, 3.0])
    torch.manual_seed(0)
    values = [rlw(losses).item() for _ in range(200)]
    torch.manual_seed(0)
    z = torch.randn(3)
    w = torch.softmax(z, dim=0)
    assert values[0] == pytest.approx(float(w @ losses), rel=1e-6)
    assert len(set(values)) == 200  # a fresh draw every step
    assert 1.0 < min(values) and max(values) < 3.0  # convex combinations
    assert np.mean(values) == pytest.approx(2.0, abs=0.1)  # E[w] = 1/K
    rlw.eval()
    assert rlw(losses).item() == pytest.approx(2.0)


def test_dwa_trains_inside_an_estimator():
    from mtlestimators import SharedBottomClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4)).astype("float32")
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    clf = SharedBottomClassifier(
        loss_weighter="dwa", max_epochs=4, verbose=0, random_state=0
    ).fit(X, Y)
    weights = clf.net_.loss_weighter_.weights
    assert weights.sum().item() == pytest.approx(2.0, rel=1e-5)
    assert not torch.equal(weights, torch.ones(2))  # updated after epoch 2
