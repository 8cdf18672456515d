import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import expit, logit

from mtlestimators.gates import HardConcreteGate, SoftmaxGate

LOG_ALPHA = [-2.0, 0.0, 1.5]


def _gate(log_alpha=LOG_ALPHA, **params):
    gate = HardConcreteGate(4, len(log_alpha), **params)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor(log_alpha))
    return gate


def _closed_form_mean(log_alpha, beta, gamma, zeta):
    """E[z] = integral over v in (0, 1) of P(z > v) for the hard concrete."""

    def survival(v):
        return expit(log_alpha - beta * logit((v - gamma) / (zeta - gamma)))

    return quad(survival, 0.0, 1.0)[0]


def test_sampled_mean_and_atoms_match_the_closed_form():
    torch.manual_seed(0)
    gate = _gate()
    n = 200_000
    z = gate.sample(n).detach().numpy()  # (n, 3)
    beta, gamma, zeta = gate.beta, gate.gamma, gate.zeta
    for k, la in enumerate(LOG_ALPHA):
        mean = _closed_form_mean(la, beta, gamma, zeta)
        stderr = z[:, k].std() / math.sqrt(n)
        assert abs(z[:, k].mean() - mean) < 5 * stderr + 1e-6
        p_nonzero = expit(la - beta * math.log(-gamma / zeta))
        p_one = expit(la - beta * math.log((1 - gamma) / (zeta - 1)))
        assert (z[:, k] > 0).mean() == pytest.approx(
            p_nonzero, abs=5 * 0.5 / math.sqrt(n)
        )
        assert (z[:, k] == 1).mean() == pytest.approx(p_one, abs=5 * 0.5 / math.sqrt(n))
    assert z.min() == 0.0 and z.max() == 1.0


def test_penalty_is_the_expected_l0_norm():
    gate = _gate()
    expected = sum(
        expit(la - gate.beta * math.log(-gate.gamma / gate.zeta)) for la in LOG_ALPHA
    )
    assert gate.penalty().item() == pytest.approx(expected, rel=1e-6)


def test_penalty_sends_gradient_to_log_alpha():
    gate = _gate()
    gate.penalty().backward()
    p = expit(np.array(LOG_ALPHA) - gate.beta * math.log(-gate.gamma / gate.zeta))
    np.testing.assert_allclose(gate.log_alpha.grad.numpy(), p * (1 - p), rtol=1e-5)


def test_eval_mode_is_exactly_deterministic():
    gate = _gate().eval()
    first, second = gate(torch.zeros(5, 4)), gate(torch.zeros(5, 4))
    assert torch.equal(first, second)
    expected = np.clip(expit(np.array(LOG_ALPHA)) * 1.2 - 0.1, 0, 1)
    np.testing.assert_allclose(first.detach().numpy()[0], expected, rtol=1e-6)


def test_training_mode_samples_and_reaches_log_alpha():
    torch.manual_seed(0)
    gate = _gate().train()
    draws = torch.cat([gate(torch.zeros(2, 4)) for _ in range(20)])
    assert draws.shape == (20, 3)
    assert len(torch.unique(draws[:, 1])) > 1
    draws.sum().backward()
    assert torch.all(gate.log_alpha.grad != 0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"gamma": 0.1}, "gamma < 0"),
        ({"beta": 0.0}, "beta > 0"),
        ({"droprate_init": 1.0}, "droprate_init"),
    ],
)
def test_hard_concrete_rejects_invalid_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        HardConcreteGate(2, 3, **params)


def test_softmax_gate_mixes_and_has_no_penalty():
    torch.manual_seed(0)
    gate = SoftmaxGate(5, 3).eval()
    x = torch.randn(7, 5)
    weights = gate(x)
    assert weights.shape == (7, 3)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(7))
    assert torch.all((weights >= 0) & (weights <= 1))
    assert torch.equal(weights, gate(x))
    assert gate.penalty().item() == 0.0
