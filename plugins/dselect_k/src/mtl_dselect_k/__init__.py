"""DSelect-k gate (Hazimeh et al., NeurIPS 2021) for mtlestimators."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlestimators.gates import Gate

__all__ = ["DSelectKGate", "smooth_step"]
__version__ = "0.1.0"


def smooth_step(t: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """The cubic smooth-step of DSelect-k (eq. 3): 0 below -gamma/2, 1 above
    gamma/2, a cubic in between that is continuously differentiable."""
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(
        t <= -gamma / 2,
        torch.zeros_like(t),
        torch.where(t >= gamma / 2, torch.ones_like(t), cubic),
    )


class DSelectKGate(Gate):
    """Per-example DSelect-k gate over ``n_outputs`` experts.

    Parameters
    ----------
    n_inputs : int
        Width of the gate's input.
    n_outputs : int
        Number of experts n.
    k : int, default=2
        Number of selectors: at most k experts get a nonzero weight once the
        smooth-steps saturate.
    gamma : float, default=1.0
        Width of the smooth-step's cubic part.
    """

    def __init__(self, n_inputs: int, n_outputs: int, k: int = 2, gamma: float = 1.0):
        super().__init__(n_inputs, n_outputs)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_outputs:
            raise ValueError(
                f"k must be an integer between 1 and the number of experts "
                f"({n_outputs}), got {k!r}."
            )
        if not float(gamma) > 0:
            raise ValueError(f"gamma must be a positive number, got {gamma!r}.")
        self.k = int(k)
        self.gamma = float(gamma)
        self.n_bits = max(1, math.ceil(math.log2(n_outputs)))
        self.z = nn.Linear(n_inputs, self.k * self.n_bits)
        self.alpha = nn.Linear(n_inputs, self.k)
        nn.init.uniform_(self.z.weight, -self.gamma / 100, self.gamma / 100)
        nn.init.uniform_(self.z.bias, -self.gamma / 100, self.gamma / 100)
        nn.init.uniform_(self.alpha.weight, -0.05, 0.05)
        nn.init.uniform_(self.alpha.bias, -0.05, 0.05)
        codes = [
            [(i >> (self.n_bits - 1 - j)) & 1 for j in range(self.n_bits)]
            for i in range(n_outputs)
        ]
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.bool))
        self._entropy: torch.Tensor | None = None

    def selectors(self, x: torch.Tensor) -> torch.Tensor:
        """Each selector's distribution over the experts, (B, k, n)."""
        z = self.z(x).view(-1, self.k, 1, self.n_bits)
        s = smooth_step(z, self.gamma)  # (B, k, 1, m)
        per_bit = torch.where(self.codes, s, 1.0 - s)  # (B, k, n, m)
        r = per_bit.prod(dim=-1)  # (B, k, n)
        if self.n_outputs != 2**self.n_bits:
            r = r / r.sum(dim=-1, keepdim=True).clamp(min=1e-12)
        return r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.selectors(x)
        weights = torch.softmax(self.alpha(x), dim=-1)  # (B, k)
        if self.training:
            entropy = -(r * torch.log(r + 1e-6)).sum(dim=-1)  # (B, k)
            self._entropy = entropy.sum(dim=-1).mean()
        return torch.einsum("bk,bkn->bn", weights, r)

    def penalty(self) -> torch.Tensor:
        """Entropy of the selectors in the last training forward pass."""
        if self._entropy is None:
            return torch.zeros((), device=self._device())
        return self._entropy

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state["_entropy"] = None  # a graph-holding tensor: not pickled
        return state

    def extra_repr(self) -> str:
        return (
            f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, k={self.k}, "
            f"gamma={self.gamma}"
        )
