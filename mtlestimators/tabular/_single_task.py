"""Single-task baseline of the tabular family: one independent network per
task (the "Single-Task" row of the MSSM paper's Table 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._core.classifier import MultiTaskClassifierBase
from .._core.layers import TaskTower
from .._core.params import Units
from ._base import FieldClassifierBase, as_tuple, field_input_width
from ._fields import FieldEmbedding


class SingleTaskMLPModule(nn.Module):
    """K networks that share no parameter: each has its own field embedding
    and its own MLP with an output layer. They live in one module so that
    one training loop fits them all: the gradient of the summed loss with
    respect to network k's parameters is the gradient of task k's loss
    alone, so each trains as if it were fitted by itself."""

    def __init__(
        self,
        cardinalities,
        n_numeric: int,
        field_order,
        output_dims: Sequence[int],
        embedding_dim: int = 8,
        hidden_units: Sequence[int] = (128, 64),
        dropout: float = 0.0,
        numeric_embedding: str = "linear",
        numeric_options: dict | None = None,
    ):
        super().__init__()
        width_in = field_input_width(field_order, embedding_dim)
        self.fields = nn.ModuleList(
            FieldEmbedding(
                cardinalities,
                n_numeric,
                embedding_dim,
                field_order,
                numeric_embedding,
                numeric_options,
            )
            for _ in output_dims
        )
        self.networks = nn.ModuleList(
            TaskTower(width_in, hidden_units, d, dropout) for d in output_dims
        )

    def shared_parameters(self) -> list[nn.Parameter]:
        """None: gradient-level loss weighters then leave every parameter to
        the plain gradient of its own task (there is nothing to reconcile)."""
        return []

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        return tuple(
            network(fields(categorical, numeric).flatten(1))
            for fields, network in zip(self.fields, self.networks)
        )


class SingleTaskMLPClassifier(FieldClassifierBase):
    """One independent field MLP per task, fitted together (no sharing).

    The MSSM paper's "Single-Task" baseline: for K tasks, K networks each
    with its own field embeddings (categorical and numeric, see
    ``categorical_features``), its own ``hidden_units`` layers and its own
    output; no parameter is shared, so task k's network is trained by task
    k's labels only (a row missing task k's label does not train it). The
    reference a multi-task model must beat to show that sharing helps.

    Parameters
    ----------
    categorical_features, embedding_dim, numeric_embedding, numeric_bins,
    numeric_frequencies, numeric_frequency_scale, dropout
        As in :class:`~mtlestimators.MMoEClassifier`.
    hidden_units : tuple of int, default=(128, 64)
        Hidden layers of each task's network (as the shared bottom's
        default, so the two differ only in sharing).
    loss_weighter, lr, max_epochs, batch_size, optimizer, callbacks,
    warm_start, verbose, device, random_state, train_split, checkpoint_dir,
    autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, lr_schedule, class_weight, **kwargs
        As in :class:`~mtlestimators.MMoEClassifier`. With the ``uniform``
        loss weighter and Adam, the gradient of each network is that of its
        own task alone; other weighters only rescale each task's loss. What
        the networks share is the training loop: the batches (a batch
        without a label of a task still moves that network's Adam momentum)
        and early stopping, which stops all of them at one epoch, the best
        for the mean over tasks. For per-task stopping, fit one estimator
        per task on a 1-D y (as benchmarks/tabular_suite.py does).

    Attributes
    ----------
    net_, history_, classes_, n_tasks_, task_names_, task_specs_,
    is_categorical_, field_encoder_, n_features_in_, feature_names_in_
        As in :class:`~mtlestimators.MMoEClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators import SingleTaskMLPClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    >>> clf = SingleTaskMLPClassifier(max_epochs=5, verbose=0, random_state=0)
    >>> clf.fit(X, Y).predict_proba(X[:3]).shape
    (3, 2)
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
        hidden_units: Sequence[int] = (128, 64),
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
        # Not _module_params: the family's tower_units has no meaning here
        # (each network is one MLP).
        return SingleTaskMLPModule, {
            **input_spec,
            "output_dims": [s.output_dim for s in specs],
            "embedding_dim": int(self.embedding_dim),
            "hidden_units": as_tuple(self.hidden_units),
            "dropout": float(self.dropout),
        }
