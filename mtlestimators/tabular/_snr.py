"""Sub-Network Routing (Ma et al., AAAI 2019), a baseline of MSSM's Table 1."""

from __future__ import annotations

from collections.abc import Sequence

from .._core.params import Integer, Options, Real, Units
from ._sparse_routing import SparseRoutingModule, _SparseRoutingClassifier


class SNRClassifier(_SparseRoutingClassifier):
    """Sub-Network Routing (Ma et al., AAAI 2019).

    ``n_subnetworks`` lower sub-networks read the field embeddings; every task
    reads every sub-network through one hard-concrete coding variable
    ``z_ij`` per connection: ``v_i = sum_j z_ij W_ij u_j`` for
    ``routing="transform"`` (SNR-Trans) or ``sum_j z_ij u_j`` for
    ``routing="average"`` (SNR-Aver); then one tower per task. The loss adds
    ``l0_penalty`` times the coding variables' expected L0 norm and
    ``l2_penalty`` times the squared weights, as MSSM's (their values default
    to MSSM's, so the two are compared under one objective).

    Parameters
    ----------
    routing : {"transform", "average"}, default="transform"
        ``"transform"`` (SNR-Trans) applies a weight matrix ``W_ij`` on each
        connection; ``"average"`` (SNR-Aver) adds the gated sub-network
        outputs as they are.
    categorical_features, embedding_dim, subnet_units, tower_units, gate,
    l2_penalty, l0_penalty, dropout
        As in :class:`~mtlestimators.MSSMClassifier`.
    numeric_embedding, numeric_bins, numeric_frequencies, numeric_frequency_scale
        As in :class:`~mtlestimators.MMoEClassifier`.
    n_subnetworks : int, default=3
        Lower sub-networks, all shared by every task.
    loss_weighter, lr, max_epochs, batch_size, optimizer, callbacks,
    warm_start, verbose, device, random_state, train_split, checkpoint_dir,
    autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, lr_schedule, class_weight, **kwargs
        As in :class:`~mtlestimators.MMoEClassifier`.

    Attributes
    ----------
    connection_sparsity_ : float
        Share of the coding variables exactly 0 at eval, averaged over the
        training rows.
    net_, history_, classes_, class_weight_, n_tasks_, task_names_, task_specs_,
    is_categorical_, field_encoder_, n_features_in_, feature_names_in_
        As in :class:`~mtlestimators.MMoEClassifier`.
    """

    _parameter_constraints = {
        "routing": [Options(["transform", "average"])],
        "n_subnetworks": [Integer(1)],
        "subnet_units": [Units()],
        "l2_penalty": [Real(0)],
        "l0_penalty": [Real(0)],
    }

    def __init__(
        self,
        routing: str = "transform",
        categorical_features="from_dtype",
        embedding_dim: int = 8,
        numeric_embedding: str = "piecewise_linear",
        numeric_bins: int = 48,
        numeric_frequencies: int = 48,
        numeric_frequency_scale: float = 0.1,
        n_subnetworks: int = 3,
        subnet_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32, 16),
        gate="hard_concrete",
        l2_penalty: float = 1e-3,
        l0_penalty: float = 1e-2,
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
        self.routing = routing
        self.categorical_features = categorical_features
        self.embedding_dim = embedding_dim
        self.numeric_embedding = numeric_embedding
        self.numeric_bins = numeric_bins
        self.numeric_frequencies = numeric_frequencies
        self.numeric_frequency_scale = numeric_frequency_scale
        self.n_subnetworks = n_subnetworks
        self.subnet_units = subnet_units
        self.tower_units = tower_units
        self.gate = gate
        self.l2_penalty = l2_penalty
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
        return SparseRoutingModule, self._module_params(
            specs,
            input_spec,
            counts={"n_shared": self.n_subnetworks},
            units={"subnet_units": self.subnet_units},
            n_specific=0,
            field_masks=False,
            cell_gates=False,
            routing=self.routing,
            l2_penalty=float(self.l2_penalty),
            l0_penalty=float(self.l0_penalty),
        )
