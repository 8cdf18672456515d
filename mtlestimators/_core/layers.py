"""Small building blocks shared by the models."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn


def check_units(name: str, units) -> None:
    """``units`` must be a sequence of positive integers (may be empty)."""
    ok = isinstance(units, (tuple, list)) and all(
        isinstance(u, numbers.Integral) and not isinstance(u, bool) and u > 0
        for u in units
    )
    if not ok:
        raise ValueError(
            f"{name} must be a tuple of positive integers (layer widths), got "
            f"{units!r}."
        )


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_penalties(**penalties) -> None:
    """Each penalty weight must be a real number >= 0."""
    for name, value in penalties.items():
        if (
            not isinstance(value, numbers.Real)
            or isinstance(value, bool)
            or not value >= 0
        ):
            raise ValueError(f"{name} must be a real number >= 0, got {value!r}.")


def check_dropout(dropout) -> None:
    if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}.")


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
