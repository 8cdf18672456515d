"""Progressive Layered Extraction (Tang et al., RecSys 2020), a baseline of
MSSM's Table 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._core.layers import TaskTower, mlp, out_width
from .._core.params import Integer, Real, Units
from ..plugins import build_gate, gate_penalty
from ._base import FieldClassifierBase, field_input_width
from ._fields import FieldEmbedding


class _ExtractionLayer(nn.Module):
    """One Customized Gate Control level of PLE (Tang et al. 2020, eq. 2-5).

    Task k's gate mixes its own experts and the shared ones, reading task k's
    input; unless this is the last level, a shared gate mixes all experts,
    reading the shared input.
    """

    def __init__(
        self,
        width_in,
        n_tasks,
        n_specific,
        n_shared,
        units,
        gate,
        gate_params,
        last,
        dropout,
    ):
        super().__init__()
        self.n_tasks, self.n_specific = n_tasks, n_specific
        self.specific = nn.ModuleList(
            nn.ModuleList(mlp(width_in, units, dropout) for _ in range(n_specific))
            for _ in range(n_tasks)
        )
        self.shared = nn.ModuleList(
            mlp(width_in, units, dropout) for _ in range(n_shared)
        )
        self.task_gates = nn.ModuleList(
            build_gate(gate, width_in, n_specific + n_shared, **gate_params)
            for _ in range(n_tasks)
        )
        self.shared_gate = (
            None
            if last
            else build_gate(
                gate, width_in, n_tasks * n_specific + n_shared, **gate_params
            )
        )

    def forward(self, task_inputs, shared_input):
        shared = [expert(shared_input) for expert in self.shared]
        specific = [
            [expert(x) for expert in experts]
            for experts, x in zip(self.specific, task_inputs)
        ]
        outputs = []
        for k, gate in enumerate(self.task_gates):
            experts = torch.stack(specific[k] + shared, dim=1)  # (B, E_k, H)
            weights = gate(task_inputs[k]).unsqueeze(-1)  # (B or 1, E_k, 1)
            outputs.append((weights * experts).sum(dim=1))  # (B, H)
        if self.shared_gate is None:
            return outputs, None
        every = torch.stack([e for row in specific for e in row] + shared, dim=1)
        weights = self.shared_gate(shared_input).unsqueeze(-1)
        return outputs, (weights * every).sum(dim=1)

    def penalty(self) -> torch.Tensor:
        gates = list(self.task_gates) + ([self.shared_gate] if self.shared_gate else [])
        return sum(gate_penalty(g) for g in gates)


class PLEModule(nn.Module):
    """Progressive Layered Extraction: ``n_levels`` stacked CGC levels."""

    def __init__(
        self,
        cardinalities,
        n_numeric,
        field_order,
        output_dims,
        embedding_dim=8,
        n_levels=2,
        n_specific_experts=1,
        n_shared_experts=1,
        expert_units=(32,),
        tower_units=(32, 16),
        gate="softmax",
        gate_params=None,
        l0_penalty=0.0,
        dropout=0.0,
        numeric_embedding: str = "linear",
        numeric_options: dict | None = None,
    ):
        super().__init__()
        self.fields = FieldEmbedding(
            cardinalities,
            n_numeric,
            embedding_dim,
            field_order,
            numeric_embedding,
            numeric_options,
        )
        width = field_input_width(field_order, embedding_dim)
        n_tasks = len(output_dims)
        levels = []
        for level in range(n_levels):
            levels.append(
                _ExtractionLayer(
                    width,
                    n_tasks,
                    n_specific_experts,
                    n_shared_experts,
                    expert_units,
                    gate,
                    gate_params or {},
                    level == n_levels - 1,
                    dropout,
                )
            )
            width = out_width(width, expert_units)
        self.levels = nn.ModuleList(levels)
        self.towers = nn.ModuleList(
            TaskTower(width, tower_units, d, dropout) for d in output_dims
        )
        self.l0_penalty = float(l0_penalty)

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        x = self.fields(categorical, numeric).flatten(1)  # (B, F*d)
        task_inputs, shared = [x] * len(self.towers), x
        for level in self.levels:
            task_inputs, shared = level(task_inputs, shared)
        return tuple(tower(h) for tower, h in zip(self.towers, task_inputs))

    def regularization(self) -> torch.Tensor:
        if not self.l0_penalty:
            return torch.zeros((), device=self.fields.offsets.device)
        return self.l0_penalty * sum(level.penalty() for level in self.levels)


class PLEClassifier(FieldClassifierBase):
    """Progressive Layered Extraction (Tang et al., RecSys 2020).

    ``n_levels`` Customized Gate Control levels: each task has
    ``n_specific_experts`` experts of its own and all tasks share
    ``n_shared_experts``; a task's gate mixes its own and the shared experts,
    and a shared gate mixing every expert feeds the next level. Towers read
    the last level's task outputs.

    Parameters
    ----------
    n_levels : int, default=2
        Extraction levels (1 is CGC).
    n_specific_experts, n_shared_experts : int, default=1, 1
        Per level (the MSSM paper's setting of 3 experts for 2 tasks).
    expert_units : tuple of int, default=(32,)
    categorical_features, embedding_dim, tower_units, gate, l0_penalty, dropout
        As in :class:`~mtlestimators.MMoEClassifier`.
    numeric_embedding, numeric_bins, numeric_frequencies, numeric_frequency_scale
        As in :class:`~mtlestimators.MMoEClassifier`.
    loss_weighter, lr, max_epochs, batch_size, optimizer, callbacks,
    warm_start, verbose, device, random_state, train_split, checkpoint_dir,
    autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, lr_schedule, class_weight, **kwargs
        As in :class:`~mtlestimators.MMoEClassifier`.

    Attributes
    ----------
    net_, history_, classes_, class_weight_, n_tasks_, task_names_, task_specs_,
    is_categorical_, field_encoder_, n_features_in_, feature_names_in_
        As in :class:`~mtlestimators.MMoEClassifier`.
    """

    _parameter_constraints = {
        "n_levels": [Integer(1)],
        "n_specific_experts": [Integer(1)],
        "n_shared_experts": [Integer(1)],
        "expert_units": [Units()],
        "l0_penalty": [Real(0)],
    }

    def __init__(
        self,
        categorical_features="from_dtype",
        embedding_dim: int = 8,
        numeric_embedding: str = "piecewise_linear",
        numeric_bins: int = 48,
        numeric_frequencies: int = 48,
        numeric_frequency_scale: float = 0.1,
        n_levels: int = 2,
        n_specific_experts: int = 1,
        n_shared_experts: int = 1,
        expert_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32, 16),
        gate="softmax",
        l0_penalty: float = 0.0,
        dropout: float = 0.0,
        loss_weighter="uniform",
        lr: float = 3e-3,
        max_epochs: int = 100,
        batch_size: int = 128,
        optimizer="adam",
        callbacks=None,
        warm_start: bool = False,
        verbose: int = 1,
        device: str = "cpu",
        random_state=None,
        train_split=None,
        checkpoint_dir=None,
        autocast=False,
        accelerator=None,
        early_stopping="auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        lr_schedule: str = "plateau",
        class_weight=None,
        **kwargs,
    ):
        self.categorical_features = categorical_features
        self.embedding_dim = embedding_dim
        self.numeric_embedding = numeric_embedding
        self.numeric_bins = numeric_bins
        self.numeric_frequencies = numeric_frequencies
        self.numeric_frequency_scale = numeric_frequency_scale
        self.n_levels = n_levels
        self.n_specific_experts = n_specific_experts
        self.n_shared_experts = n_shared_experts
        self.expert_units = expert_units
        self.tower_units = tower_units
        self.gate = gate
        self.l0_penalty = l0_penalty
        self.dropout = dropout
        self.loss_weighter = loss_weighter
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.verbose = verbose
        self.device = device
        self.random_state = random_state
        self.train_split = train_split
        self.checkpoint_dir = checkpoint_dir
        self.autocast = autocast
        self.accelerator = accelerator
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.lr_schedule = lr_schedule
        self.class_weight = class_weight
        vars(self).update(kwargs)

    def _build_module(self, specs, **input_spec):
        return PLEModule, self._module_params(
            specs,
            input_spec,
            counts={
                "n_levels": self.n_levels,
                "n_specific_experts": self.n_specific_experts,
                "n_shared_experts": self.n_shared_experts,
            },
            units={"expert_units": self.expert_units},
            l0_penalty=float(self.l0_penalty),
        )
