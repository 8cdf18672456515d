"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018, section 4.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._core.layers import TaskTower, mlp, out_width
from .._core.params import Integer, Real, Units
from ..plugins import build_gate, gate_penalty
from ._base import FieldClassifierBase, field_input_width
from ._fields import FieldEmbedding


class MMoEModule(nn.Module):
    """Shared experts; each task mixes them with its own gate (eq. 5-6)::

    f_k(x) = sum_e g_k(x)_e expert_e(x),   y_k = tower_k(f_k(x))
    """

    def __init__(
        self,
        cardinalities,
        n_numeric: int,
        field_order,
        output_dims: Sequence[int],
        embedding_dim: int = 8,
        n_experts: int = 3,
        expert_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32, 16),
        gate="softmax",
        gate_params: dict | None = None,
        l0_penalty: float = 0.0,
        dropout: float = 0.0,
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
        width_in = field_input_width(field_order, embedding_dim)
        self.experts = nn.ModuleList(
            mlp(width_in, expert_units, dropout) for _ in range(n_experts)
        )
        self.gates = nn.ModuleList(
            build_gate(gate, width_in, n_experts, **(gate_params or {}))
            for _ in output_dims
        )
        width = out_width(width_in, expert_units)
        self.towers = nn.ModuleList(
            TaskTower(width, tower_units, d, dropout) for d in output_dims
        )
        self.l0_penalty = float(l0_penalty)

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        x = self.fields(categorical, numeric).flatten(1)  # (B, F*d)
        experts = torch.stack(
            [expert(x) for expert in self.experts], dim=1
        )  # (B, E, H)
        outputs = []
        for gate, tower in zip(self.gates, self.towers):
            weights = gate(x).unsqueeze(-1)  # (B or 1, E, 1)
            outputs.append(tower((weights * experts).sum(dim=1)))  # (B, H) -> out
        return tuple(outputs)

    def regularization(self) -> torch.Tensor:
        if not self.l0_penalty:
            return torch.zeros((), device=self.fields.offsets.device)
        return self.l0_penalty * sum(gate_penalty(gate) for gate in self.gates)


class MMoEClassifier(FieldClassifierBase):
    """Multi-gate Mixture-of-Experts multi-task classifier (Ma et al. 2018).

    A baseline of the MSSM paper's Table 1. Inputs are embedded per field
    (categorical and numeric, see ``categorical_features``), ``n_experts``
    shared expert networks process the concatenated embeddings, and each task
    mixes the experts with its own gate (``softmax`` as in the paper, or any
    gate plugin) before its tower.

    Parameters
    ----------
    categorical_features : "from_dtype", None, mask, indices or names
        Which columns are categorical, as in HistGradientBoostingClassifier.
    embedding_dim : int, default=8
    numeric_embedding : str, default="piecewise_linear"
        How a numeric field becomes an ``embedding_dim`` vector (Gorishniy,
        Rubachev & Babenko, NeurIPS 2022), after z-scoring: ``"linear"``,
        ``x v + b``; ``"piecewise_linear"``, the piecewise-linear encoding on
        ``numeric_bins`` quantile bins of the training values, then a per-field
        linear map (the paper's Q-L), plus a linear term (the package's version
        "B"; the piecewise part starts at zero); ``"periodic"``, ``numeric_frequencies``
        trainable frequencies per field, ``sin``/``cos``, then a linear map and
        ReLU shared by the fields (the paper's PLR in its "lite" form). The
        encodings come from the authors' ``rtdl_num_embeddings``. Each gives
        one vector per field, so FSCM field masks act per field with any of
        them.
    numeric_bins : int, default=48
        Most bins per numeric field for ``"piecewise_linear"`` (the paper's
        typical setting); quantiles that coincide are merged, so a column
        with few distinct values gets fewer bins (a binary column one).
        Computed from the training rows in ``fit`` and kept by
        ``warm_start``.
    numeric_frequencies : int, default=48
        Frequencies per numeric field for ``"periodic"`` (``k`` in the paper;
        the package's default).
    numeric_frequency_scale : float, default=0.1
        Standard deviation ``sigma`` of the initial frequencies for
        ``"periodic"`` (on z-scored inputs). The paper tunes it in
        [0.01, 100] and calls it the most important setting; 0.1 trained
        reliably on the family's small tests, where 0.01 (the package's
        default) learned more slowly and 1 often not at all.
    n_experts : int, default=3
    expert_units : tuple of int, default=(32,)
    tower_units : tuple of int, default=(32, 16)
    gate : str, class or instance, default="softmax"
        Gate plugin (``gate__*`` parameters route to it).
    l0_penalty : float, default=0.0
        Weight of the gates' ``penalty()`` in the loss (0 for softmax gates).
    dropout : float, default=0.0
    loss_weighter, lr, max_epochs, batch_size, optimizer, callbacks,
    warm_start, verbose, device, random_state, train_split, checkpoint_dir,
    autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, lr_schedule, class_weight, **kwargs
        As in :class:`~mtlestimators.SharedBottomClassifier`. The family's
        one recipe (Adam, lr 3e-3 cut by 0.3 on plateaus, batch 128,
        embedding_dim 8, piecewise-linear numeric fields, up to 100 epochs
        ended by early stopping) was
        chosen on real tables (docs/tabular.md); the MSSM
        paper trains with lr 1e-4 and batch 256 on millions of rows.

    Attributes
    ----------
    net_, history_, classes_, class_weight_, n_tasks_, task_names_, task_specs_,
    n_features_in_, feature_names_in_
        As in :class:`~mtlestimators.SharedBottomClassifier`.
    is_categorical_ : ndarray of bool
        Which columns were embedded as categorical fields.
    field_encoder_ : FieldEncoder
        Category vocabularies and numeric standardization learned in fit.
    """

    _parameter_constraints = {
        "n_experts": [Integer(1)],
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
        n_experts: int = 3,
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
        self.n_experts = n_experts
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
        return MMoEModule, self._module_params(
            specs,
            input_spec,
            counts={"n_experts": self.n_experts},
            units={"expert_units": self.expert_units},
            l0_penalty=float(self.l0_penalty),
        )
