"""Small building blocks shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_features: int,
    units: Sequence[int],
    dropout: float = 0.0,
    act_layer: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Fully connected layers ``Linear -> act -> Dropout`` for each width in
    ``units``; an empty ``units`` gives the identity."""
    layers: list[nn.Module] = []
    width = in_features
    for out in units:
        layers += [nn.Linear(width, int(out)), act_layer()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = int(out)
    return nn.Sequential(*layers)


def out_width(in_features: int, units: Sequence[int]) -> int:
    """Width of the output of ``mlp(in_features, units)``."""
    return int(units[-1]) if len(units) else in_features


class TaskTower(nn.Module):
    """A task's tower: hidden layers then an output layer of ``output_dim``.

    Returns (B,) when ``output_dim`` is 1 (binary logit or regression value)
    and (B, C) logits otherwise.
    """

    def __init__(
        self,
        in_features: int,
        units: Sequence[int],
        output_dim: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.hidden = mlp(in_features, units, dropout)
        self.out = nn.Linear(out_width(in_features, units), output_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.out(self.hidden(h))  # (B, output_dim)
        return out.squeeze(-1) if out.shape[-1] == 1 else out
