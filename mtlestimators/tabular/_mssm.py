"""MSSM: Multiple-level Sparse Sharing Model (Ding, Dong et al., SIGIR 2021).

The routing module is shared with SNR (``_sparse_routing.py``): MSSM is SNR
plus FSCM field masks and CSSM cell-level gates.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._core.params import Boolean, Integer, Real, Units
from ._sparse_routing import SparseRoutingModule, _SparseRoutingClassifier


class MSSMClassifier(_SparseRoutingClassifier):
    """Multiple-level Sparse Sharing Model (Ding, Dong et al., SIGIR 2021).

    Field embeddings; one task-specific lower sub-network per task and
    ``n_shared`` shared ones; FSCM field masks before each task's specific
    sub-network; CSSM cell-level hard-concrete gates on the connections
    ``v_i = sum_j m_ij (.) W_ij u_j`` (Algorithm 1); one tower per task. The
    loss is ``sum_k w_k L_k + l2_penalty * L2 + l0_penalty * L0`` (eq. 4),
    with ``w_k`` from ``loss_weighter`` (``uniform``: all 1, as in the paper).

    Parameters
    ----------
    categorical_features : "from_dtype", None, mask, indices or names
        Which columns are categorical, as in HistGradientBoostingClassifier.
    embedding_dim : int, default=8
    numeric_embedding, numeric_bins, numeric_frequencies, numeric_frequency_scale
        As in :class:`~mtlestimators.MMoEClassifier`.
    n_shared : int, default=1
        Shared lower sub-networks (the paper: 3 sub-networks for 2 tasks,
        i.e. 2 specific + 1 shared).
    subnet_units : tuple of int, default=(32,)
        Layers of each lower sub-network (paper: 32 units).
    tower_units : tuple of int, default=(32, 16)
        Each task's tower (paper: 32, 16).
    field_masks : bool, default=True
        FSCM on; False is the paper's MSSM-a.
    cell_sharing : bool, default=True
        CSSM on (one gate per cell). False keeps one gate per connection
        (SNR's coding variable): the paper's MSSM-b; with ``field_masks=False``
        too, MSSM-Basic (= SNR-Trans restricted to MSSM's connections).
    gate : str, class or instance, default="hard_concrete"
        Gate plugin for ``m_ij`` (``gate__*`` routes its parameters).
    l2_penalty : float, default=1e-3
        lambda_1 on the sum of squared weights: the linear layers' matrices
        (not embeddings, biases, gates or FSCM vectors).
    l0_penalty : float, default=1e-2
        lambda_2 on the gates' L0 term, here the *mean* probability that a
        gate cell is open (the expected L0 norm divided by the number of
        cells, so lambda_2 does not grow with the model; the task loss is a
        mean over rows, which plays the role of Louizos et al.'s division of
        the L0 term by N). See docs/tabular.md, "MSSM's sparsity".
    target_sparsity : float in [0, 1) or None, default=None
        None: the L0 term is weighted by ``l0_penalty`` only; at 1e-2 on the
        mean it closes few cells (0-2% on Adult and wa_churn), which cost no
        AUC. A float: the L0 weight becomes ``l0_penalty + 4 *
        (target_sparsity - closed)+``, ``closed`` the share of cells closed
        at eval, recomputed every training step (a proportional controller;
        an integrating, Lagrangian multiplier wound up while the gates
        travelled and overshot to 0.93 for 0.6). The closed share approaches
        the target from below and settles a little under it (0.56 for 0.6 on
        Adult in 12 epochs); 0.6 is the paper's "> 60%" (Figure 3b) and
        makes the pruned serving graph smaller, at the dense AUC on Adult
        but 0.07 below it on one wa_churn task (benchmarks/mssm_sparsity.py),
        hence not the default. Cells close at Adam's pace (a log_alpha moves
        by about ``lr`` per step and must fall from 0 to -2.4), so a fit of
        under ~800 steps at the default lr 3e-3 closes nothing.
    keep_open : bool, default=True
        Every task keeps a path to its tower: the log_alpha of each task's
        strongest cell (over all its connections) is floored at 0, so that
        cell is open (eval value >= 0.5) whatever the penalty. False lets the
        L0 term close every cell of a task (it then predicts a constant, and
        ``fit`` warns).
    shared_field_mask : bool, default=False
        Also apply an FSCM field mask to the input of each shared
        sub-network (its own mask vectors, the same for every task), the
        reading of Algorithm 1's line 11 for ``j = s``. Needs
        ``field_masks=True``. Off by default: on Adult and wa_churn (3 seeds,
        benchmarks/mssm_sparsity.py) it did not improve the AUC.
    dropout : float, default=0.0
    loss_weighter, lr, max_epochs, batch_size, optimizer, callbacks,
    warm_start, verbose, device, random_state, train_split, checkpoint_dir,
    autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, lr_schedule, class_weight, **kwargs
        As in :class:`~mtlestimators.MMoEClassifier` (paper: Adam, lr 1e-4,
        batch 256).

    Attributes
    ----------
    field_masks_ : ndarray of shape (n_tasks, n_fields)
        Mean FSCM weight of each field for each task over the training rows
        (eval mode); 0 means the field never reaches that task's specific
        sub-network. The paper's Figure 3a. Absent when ``field_masks=False``.
    connection_sparsity_ : float
        Share of gate cells exactly 0 at eval (the paper's Figure 3b); the
        per-epoch values are the ``connection_sparsity`` column of
        ``history_``.
    task_sparsity_ : ndarray of shape (n_tasks,)
        The same share over each task's connections.
    cell_map_ : ndarray of shape (n_connections, width)
        For each connection (row) and cell of ``v_i`` (column), the share of
        training rows for which the cell is closed (0 or 1 with the
        input-independent hard-concrete gates). Rows follow
        ``cell_map_connections_``.
    cell_map_connections_ : ndarray of shape (n_connections, 2)
        ``(task i, lower sub-network j)`` of each row of ``cell_map_``:
        task-major; for each task its own specific sub-network ``j = i``
        first, then the shared ones ``j = n_tasks, ..., n_tasks + n_shared - 1``.
    shared_field_masks_ : ndarray of shape (n_shared, n_fields)
        Mean FSCM weight of each field at each shared sub-network's input;
        only with ``shared_field_mask=True``.
    net_, history_, classes_, class_weight_, n_tasks_, task_names_, task_specs_,
    is_categorical_, field_encoder_, n_features_in_, feature_names_in_
        As in :class:`~mtlestimators.MMoEClassifier`.
    """

    _parameter_constraints = {
        "n_shared": [Integer(1)],
        "subnet_units": [Units()],
        "field_masks": [Boolean()],
        "cell_sharing": [Boolean()],
        "l2_penalty": [Real(0)],
        "l0_penalty": [Real(0)],
        "target_sparsity": [None, Real(0, 1, closed="left")],
        "keep_open": [Boolean()],
        "shared_field_mask": [Boolean()],
    }

    def __init__(
        self,
        categorical_features="from_dtype",
        embedding_dim: int = 8,
        numeric_embedding: str = "piecewise_linear",
        numeric_bins: int = 48,
        numeric_frequencies: int = 48,
        numeric_frequency_scale: float = 0.1,
        n_shared: int = 1,
        subnet_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32, 16),
        field_masks: bool = True,
        cell_sharing: bool = True,
        gate="hard_concrete",
        l2_penalty: float = 1e-3,
        l0_penalty: float = 1e-2,
        target_sparsity: float | None = None,
        keep_open: bool = True,
        shared_field_mask: bool = False,
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
        self.n_shared = n_shared
        self.subnet_units = subnet_units
        self.tower_units = tower_units
        self.field_masks = field_masks
        self.cell_sharing = cell_sharing
        self.gate = gate
        self.l2_penalty = l2_penalty
        self.l0_penalty = l0_penalty
        self.target_sparsity = target_sparsity
        self.keep_open = keep_open
        self.shared_field_mask = shared_field_mask
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
        if self.shared_field_mask and not self.field_masks:
            raise ValueError(
                "shared_field_mask=True masks the shared sub-networks' input with "
                "FSCM, which field_masks=False turns off; set field_masks=True or "
                "shared_field_mask=False."
            )
        return SparseRoutingModule, self._module_params(
            specs,
            input_spec,
            counts={"n_shared": self.n_shared},
            units={"subnet_units": self.subnet_units},
            n_specific=len(specs),
            field_masks=bool(self.field_masks),
            cell_gates=bool(self.cell_sharing),
            routing="transform",
            l2_penalty=float(self.l2_penalty),
            l0_penalty=float(self.l0_penalty),
            target_sparsity=None
            if self.target_sparsity is None
            else float(self.target_sparsity),
            keep_open=bool(self.keep_open),
            l0_reduction="mean",
            shared_field_mask=bool(self.shared_field_mask),
        )
