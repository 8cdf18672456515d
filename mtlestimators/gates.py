"""Gates: modules that return connection weights in [0, 1].

Every gate is a :class:`torch.nn.Module` built as
``cls(n_inputs, n_outputs, **params)`` and registered under the entry-point
group ``mtlestimators.gates``. ``forward(x)`` takes the gate's input batch
``x`` of shape (B, n_inputs) and returns weights of shape (B, n_outputs)
(input-independent gates use only the batch size of ``x`` and may return a
(1, n_outputs) row that broadcasts). ``penalty()`` returns the gate's sparsity
term, added to the training loss by the models that use it. Every gate is
deterministic in eval mode.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Gate", "HardConcreteGate", "SoftmaxGate"]


class Gate(nn.Module):
    """Base class of the gate plugins."""

    def __init__(self, n_inputs: int, n_outputs: int):
        super().__init__()
        if int(n_inputs) < 1 or int(n_outputs) < 1:
            raise ValueError(
                f"n_inputs and n_outputs must be >= 1, got {n_inputs!r} and "
                f"{n_outputs!r}."
            )
        self.n_inputs = int(n_inputs)
        self.n_outputs = int(n_outputs)

    def penalty(self) -> torch.Tensor:
        """Sparsity term of this gate; 0 unless a subclass defines one."""
        return torch.zeros((), device=self._device())

    def _device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}"


class HardConcreteGate(Gate):
    """Hard-concrete (stretched, clamped binary concrete) L0 gates.

    Louizos, Welling & Kingma, "Learning Sparse Neural Networks through L0
    Regularization", ICLR 2018, section 4 (eq. 10-13); used by MSSM (Ding et
    al. 2021, Algorithm 1) for cell-level sparse connections. One gate per
    output cell, independent of the input values::

        u ~ U(0, 1)
        s = sigmoid((log u - log(1 - u) + log_alpha) / beta)
        z = min(1, max(0, s (zeta - gamma) + gamma))

    In eval mode ``z = min(1, max(0, sigmoid(log_alpha) (zeta - gamma) +
    gamma))`` (the paper's test-time estimator), so predictions are exactly
    deterministic. ``penalty()`` is the expected L0 norm, the probability
    that each gate is non-zero summed over gates::

        sum sigmoid(log_alpha - beta log(-gamma / zeta))

    Parameters
    ----------
    n_inputs : int
        Width of the gate's input; unused by the gate values, kept for the
        common gate interface.
    n_outputs : int
        Number of gates (cells).
    beta : float, default=2/3
        Temperature of the concrete distribution.
    gamma, zeta : float, default=-0.1, 1.1
        Stretch interval (gamma < 0 < 1 < zeta).
    droprate_init : float, default=0.5
        Initial drop rate; ``log_alpha`` starts near
        ``log(1 - droprate_init) - log(droprate_init)`` (Louizos et al.'s
        initialization, with N(0, 0.01^2) jitter).
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        beta: float = 2.0 / 3.0,
        gamma: float = -0.1,
        zeta: float = 1.1,
        droprate_init: float = 0.5,
    ):
        super().__init__(n_inputs, n_outputs)
        if not (gamma < 0.0 and zeta > 1.0):
            raise ValueError(
                f"hard_concrete needs gamma < 0 and zeta > 1, got gamma={gamma}, "
                f"zeta={zeta}."
            )
        if not beta > 0.0:
            raise ValueError(f"hard_concrete needs beta > 0, got {beta}.")
        if not 0.0 < droprate_init < 1.0:
            raise ValueError(f"droprate_init must be in (0, 1), got {droprate_init}.")
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.zeta = float(zeta)
        centre = math.log(1.0 - droprate_init) - math.log(droprate_init)
        self.log_alpha = nn.Parameter(centre + 0.01 * torch.randn(self.n_outputs))

    def _stretch(self, s: torch.Tensor) -> torch.Tensor:
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def sample(self, n: int = 1, log_alpha: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``n`` independent gate vectors, shape (n, n_outputs).

        Parameters
        ----------
        n : int, default=1
            Number of gate vectors.
        log_alpha : Tensor of shape (n_outputs,), optional
            Location parameters to use instead of ``self.log_alpha`` (the
            routing module passes a floored copy so a task keeps a cell open).

        Returns
        -------
        Tensor of shape (n, n_outputs)
        """
        log_alpha = self.log_alpha if log_alpha is None else log_alpha
        eps = torch.finfo(log_alpha.dtype).eps
        u = torch.rand(n, self.n_outputs, device=log_alpha.device)
        u = u.clamp(eps, 1.0 - eps)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / self.beta)
        return self._stretch(s)

    def deterministic(self, log_alpha: torch.Tensor | None = None) -> torch.Tensor:
        """Test-time gate values, shape (1, n_outputs).

        Parameters
        ----------
        log_alpha : Tensor of shape (n_outputs,), optional
            As in :meth:`sample`.

        Returns
        -------
        Tensor of shape (1, n_outputs)
        """
        log_alpha = self.log_alpha if log_alpha is None else log_alpha
        return self._stretch(torch.sigmoid(log_alpha)).unsqueeze(0)

    def values(self, log_alpha: torch.Tensor | None = None) -> torch.Tensor:
        """``forward``'s values for the current mode, with an optional
        ``log_alpha`` override (see :meth:`sample`), shape (1, n_outputs).

        Parameters
        ----------
        log_alpha : Tensor of shape (n_outputs,), optional
            As in :meth:`sample`.

        Returns
        -------
        Tensor of shape (1, n_outputs)
        """
        if self.training:
            return self.sample(1, log_alpha)
        return self.deterministic(log_alpha)

    def forward(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Gate values: one sample in training mode, the test-time values in
        eval mode.

        Parameters
        ----------
        x : Tensor of shape (B, n_inputs), optional
            The gate's input; not used (the gates do not depend on it).

        Returns
        -------
        Tensor of shape (1, n_outputs)
            One row, shared by the batch.
        """
        # One sample per forward pass, shared by the batch (Algorithm 1 of MSSM).
        return self.values()  # (1, n_outputs)

    def prob_nonzero(self, log_alpha: torch.Tensor | None = None) -> torch.Tensor:
        """P(z > 0) per gate: ``sigmoid(log_alpha - beta log(-gamma/zeta))``.

        Parameters
        ----------
        log_alpha : Tensor of shape (n_outputs,), optional
            As in :meth:`sample`.

        Returns
        -------
        Tensor of shape (n_outputs,)
        """
        log_alpha = self.log_alpha if log_alpha is None else log_alpha
        shift = self.beta * math.log(-self.gamma / self.zeta)
        return torch.sigmoid(log_alpha - shift)

    def penalty(self) -> torch.Tensor:
        return self.prob_nonzero().sum()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, beta={self.beta:.4g}, gamma={self.gamma}, "
            f"zeta={self.zeta}"
        )


class SoftmaxGate(Gate):
    """Input-conditioned softmax mixture weights (MMoE's gate, Ma et al. KDD
    2018, eq. 5): ``g(x) = softmax(W x / temperature)`` over ``n_outputs``
    experts. Its penalty is 0.

    Parameters
    ----------
    n_inputs : int
        Width of the gate's input x.
    n_outputs : int
        Number of experts mixed.
    temperature : float, default=1.0
    bias : bool, default=True
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        temperature: float = 1.0,
        bias: bool = True,
    ):
        super().__init__(n_inputs, n_outputs)
        if not temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        self.linear = nn.Linear(self.n_inputs, self.n_outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture weights ``softmax(W x / temperature)``.

        Parameters
        ----------
        x : Tensor of shape (B, n_inputs)
            The gate's input.

        Returns
        -------
        Tensor of shape (B, n_outputs)
            Non-negative weights summing to 1 over the experts.
        """
        return torch.softmax(self.linear(x) / self.temperature, dim=-1)  # (B, E)
