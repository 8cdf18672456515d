"""Cross-stitch networks (Misra et al., CVPR 2016), a baseline of MSSM's Table 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._core.classifier import MultiTaskClassifierBase
from .._core.layers import TaskTower, mlp
from .._core.params import Units
from ._base import FieldClassifierBase, field_input_width
from ._fields import FieldEmbedding


class CrossStitchModule(nn.Module):
    """One column of layers per task; after each layer a cross-stitch unit
    mixes the columns, ``h_k <- sum_j alpha_kj h_j`` (Misra et al., CVPR 2016,
    eq. 1), with ``alpha`` starting at 0.9 on the diagonal and the remaining
    0.1 spread over the other tasks (the paper's initialization)."""

    def __init__(
        self,
        cardinalities,
        n_numeric,
        field_order,
        output_dims,
        embedding_dim=8,
        hidden_units=(32,),
        tower_units=(32, 16),
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
        n_tasks = len(output_dims)
        width = field_input_width(field_order, embedding_dim)
        self.columns = nn.ModuleList()
        self.stitches = nn.ParameterList()
        off = 0.1 / (n_tasks - 1) if n_tasks > 1 else 0.0
        for units in hidden_units:
            self.columns.append(
                nn.ModuleList(mlp(width, (units,), dropout) for _ in range(n_tasks))
            )
            alpha = torch.full((n_tasks, n_tasks), off)
            alpha.fill_diagonal_(0.9 if n_tasks > 1 else 1.0)
            self.stitches.append(nn.Parameter(alpha))
            width = int(units)
        self.towers = nn.ModuleList(
            TaskTower(width, tower_units, d, dropout) for d in output_dims
        )

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        x = self.fields(categorical, numeric).flatten(1)  # (B, F*d)
        h = torch.stack([x] * len(self.towers), dim=1)  # (B, K, W)
        for layers, alpha in zip(self.columns, self.stitches):
            h = torch.stack([layer(h[:, k]) for k, layer in enumerate(layers)], dim=1)
            h = torch.einsum("kj,bjh->bkh", alpha, h)  # (B, K, H)
        return tuple(tower(h[:, k]) for k, tower in enumerate(self.towers))


class CrossStitchClassifier(FieldClassifierBase):
    """Cross-stitch networks (Misra et al., CVPR 2016) for tabular tasks.

    Each task has its own column of hidden layers; after every layer a
    learned cross-stitch unit linearly mixes the tasks' activations.

    Parameters
    ----------
    hidden_units : tuple of int, default=(32,)
        Layers of each task's column, each followed by a cross-stitch unit.
    categorical_features, embedding_dim, tower_units, dropout
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

    # It has no gates, so gate__* parameters are refused instead of ignored.
    _routed_prefixes = MultiTaskClassifierBase._routed_prefixes
    _module_prefixes = ()
    _parameter_constraints = {"hidden_units": [Units()]}

    def __init__(
        self,
        categorical_features="from_dtype",
        embedding_dim: int = 8,
        numeric_embedding: str = "piecewise_linear",
        numeric_bins: int = 48,
        numeric_frequencies: int = 48,
        numeric_frequency_scale: float = 0.1,
        hidden_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32, 16),
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
        self.hidden_units = hidden_units
        self.tower_units = tower_units
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
        return CrossStitchModule, self._module_params(
            specs, input_spec, units={"hidden_units": self.hidden_units}
        )
