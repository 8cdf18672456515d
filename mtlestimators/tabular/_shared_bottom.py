"""Shared-bottom multi-task network (Caruana 1997; the "Shared-Bottom"
baseline of MSSM's Table 1 and of MMoE, Ma et al. KDD 2018, figure 1a), over
the field embeddings of the tabular family."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._core.classifier import MultiTaskClassifierBase
from .._core.layers import TaskTower, mlp, out_width
from .._core.params import Units
from ._base import FieldClassifierBase, field_input_width
from ._fields import FieldEmbedding


class SharedBottomModule(nn.Module):
    """Field embeddings, flattened, through shared fully connected layers,
    then one tower per task."""

    def __init__(
        self,
        cardinalities,
        n_numeric: int,
        field_order,
        output_dims: Sequence[int],
        embedding_dim: int = 8,
        bottom_units: Sequence[int] = (128, 64),
        tower_units: Sequence[int] = (32,),
        dropout: float = 0.0,
        numeric_embedding: str = "linear",
        numeric_options: dict | None = None,
        n_features: int | None = None,
    ):
        super().__init__()
        # n_features (the columns of X, one field each) only names the input
        # width in the module's arguments, as before the model took fields.
        assert n_features is None or n_features == len(field_order)
        self.fields = FieldEmbedding(
            cardinalities,
            n_numeric,
            embedding_dim,
            field_order,
            numeric_embedding,
            numeric_options,
        )
        width_in = field_input_width(field_order, embedding_dim)
        self.bottom = mlp(width_in, bottom_units, dropout)
        width = out_width(width_in, bottom_units)
        self.towers = nn.ModuleList(
            TaskTower(width, tower_units, d, dropout) for d in output_dims
        )

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        h = self.bottom(self.fields(categorical, numeric).flatten(1))  # (B, H)
        if getattr(self, "keep_shared_representation", False):
            # Read by gradient-level weighters (MGDA-UB), then cleared.
            self.shared_representation = h
        return tuple(tower(h) for tower in self.towers)


class SharedBottomClassifier(FieldClassifierBase):
    """Shared-bottom multi-task classifier.

    Every column of X is a field (categorical or numeric, see
    ``categorical_features``) embedded to ``embedding_dim``; the flattened
    embeddings go through bottom layers all tasks share; each task has its
    own tower and output.
    y is 1-D for one task (binary or multiclass, any label type) or (n, K) for
    K binary tasks, with NaN/None marking a missing label: such a row still
    trains the tasks it has labels for. Rows with every label missing are
    dropped with a warning.

    Parameters
    ----------
    categorical_features : "from_dtype", None, mask, indices or names
        Which columns are categorical, as in HistGradientBoostingClassifier
        (``"from_dtype"``: a DataFrame's category, object, string and bool
        columns; a numeric array has none).
    embedding_dim : int, default=8
        Size of each field's embedding.
    numeric_embedding, numeric_bins, numeric_frequencies, numeric_frequency_scale
        As in :class:`~mtlestimators.MMoEClassifier`.
    bottom_units : tuple of int, default=(128, 64)
        Widths of the shared layers.
    tower_units : tuple of int, default=(32,)
        Widths of each task's tower before its output layer.
    dropout : float, default=0.0
        Dropout after every hidden layer.
    loss_weighter : str, class or nn.Module, default="uniform"
        Combines the per-task losses; a registered name
        (:func:`mtlestimators.plugins.available_loss_weighters`), a class
        built as ``cls(n_tasks, **loss_weighter__params)``, or an instance.
    lr : float, default=3e-3
        Learning rate.
    max_epochs : int, default=100
    batch_size : int, default=128
    optimizer : str or torch.optim.Optimizer subclass, default="adam"
        Configure it with ``optimizer__<name>`` (e.g. ``optimizer__weight_decay``).
    callbacks : list of skorch callbacks, optional
    warm_start : bool, default=False
        If True, a second ``fit`` continues training the fitted net.
    verbose : int, default=1
        1 prints skorch's epoch table; 0 is silent.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available).
    random_state : int, RandomState or None, default=None
        Seeds initialization and shuffling; the same int gives the same model.
    train_split : callable or None, default=None
        skorch's internal validation split, e.g.
        ``skorch.dataset.ValidSplit(0.2)``; it adds ``valid_loss`` to the
        history (for ``EarlyStopping``). None trains on all rows.
    checkpoint_dir : str, path or None, default=None
        Resumable training (needs an int ``random_state``). After every
        epoch, ``fit`` writes the training state (weights, optimizer, loss
        weighter, history, epoch, callbacks' and random generators' states)
        to a file in this directory named after a
        fingerprint of the parameters and the data (written to a temporary
        file, then renamed, so a killed process leaves the previous epoch's
        checkpoint whole). A later ``fit`` with the same parameters and data
        loads it and trains only the remaining epochs, ending with the same
        model as an uninterrupted fit. A fit with other parameters or data
        starts from scratch (with a warning when the directory holds other
        checkpoints) and writes its own file. When all ``max_epochs`` ran
        or ``EarlyStopping`` stopped the fit, the file is marked complete:
        the same ``fit`` again loads the final model without training
        (delete the file to retrain); after a ``KeyboardInterrupt`` it
        resumes. Details in docs/usage.md. Loading a checkpoint runs no
        code (tensors and JSON, checked by SHA-256). Not used by a ``warm_start``
        continuation.
    autocast : bool or {"bfloat16", "float16"}, default=False
        Mixed precision: training forward passes and predictions run under
        ``torch.autocast`` on the net's device (True: bfloat16 on CPU,
        float16 on CUDA, which adds a ``torch.amp.GradScaler``). Weights,
        losses and returned predictions stay float32/float64.
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face Accelerate (skorch's ``AccelerateMixin``):
        the accelerator places the model (``device`` is then ignored), runs
        distributed data parallel training under ``accelerate launch`` and
        applies its own mixed precision (keep ``autocast=False``). ``clone``
        shares the accelerator; a pickle does not carry it (the loaded
        estimator has ``accelerator=None``). See the "Scaling out" guide.
    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the training rows, stop when the
        mean over tasks of the validation loss has not improved by more than
        ``tol`` for ``n_iter_no_change`` epochs, and restore the weights of
        the best epoch. ``"auto"`` turns it on when there are more than
        1,000 labelled rows (HistGradientBoostingClassifier's threshold is
        10,000; with no safe fixed epoch budget, a net gains from stopping
        early on smaller tables too). The
        held-out rows are drawn (with ``random_state``) so that every task
        has labelled rows among them, stratified by label.
    validation_fraction : float, default=0.1
        Share of the training rows held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without improvement before training stops.
    tol : float, default=1e-4
        Smallest decrease of the validation loss that counts as an
        improvement.
    lr_schedule : {"plateau", "constant"}, default="plateau"
        ``"plateau"``: in a fit that stops early, multiply the learning rate
        by 0.3 when the held-out task loss has not improved by ``tol`` for
        more than 3 epochs (torch's ``ReduceLROnPlateau``, patience 3; early
        stopping's patience of 10 then allows about two cuts). A fit without
        early stopping keeps ``lr`` constant, as ``"constant"`` always does;
        so does the built-in schedule give way to an ``LRScheduler`` of your
        own in ``callbacks``. A ``warm_start`` continuation starts again at
        ``lr``.
    class_weight : None, "balanced", dict or list of dict, default=None
        Per-task class weights multiplying each row's loss: ``"balanced"``
        weights each task's classes by ``n / (n_classes * count)`` over its
        labelled rows; a dict maps class labels to weights (one task); a
        list holds one ``None``, ``"balanced"`` or dict per task.
    **kwargs
        Double-underscore routed parameters: ``optimizer__*``, ``module__*``,
        ``loss_weighter__*``, ``callbacks__*``, ``iterator_train__*``,
        ``iterator_valid__*``.

    Attributes
    ----------
    net_ : MultiTaskNet
        The fitted skorch net.
    history_ : skorch.History
        Per-epoch training history.
    classes_ : ndarray, or list of ndarray for K > 1 tasks
    class_weight_ : list of dict
        Each task's weight per class label, ``{label: weight}``, resolved
        from ``class_weight`` at fit (all 1.0 when it is None).
    n_tasks_ : int
    task_specs_ : list of TaskSpec
        Name, kind and classes of each task.
    task_names_ : ndarray of str
        Column names of y (DataFrame) or ``task_<k>``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string column names.
    is_categorical_ : ndarray of bool
        Which columns were embedded as categorical fields.
    field_encoder_ : FieldEncoder
        Category vocabularies, numeric standardization (and bins) learned in
        fit.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators import SharedBottomClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4)).astype("float32")
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    >>> Y[:50, 1] = np.nan  # no label for task 1 on these rows
    >>> clf = SharedBottomClassifier(max_epochs=5, verbose=0, random_state=0)
    >>> clf.fit(X, Y).predict_proba(X[:3]).shape
    (3, 2)
    """

    # It has no gates, so gate__* parameters are refused instead of ignored.
    _routed_prefixes = MultiTaskClassifierBase._routed_prefixes
    _module_prefixes = ()
    _parameter_constraints = {"bottom_units": [Units()]}

    def __init__(
        self,
        categorical_features="from_dtype",
        embedding_dim: int = 8,
        numeric_embedding: str = "piecewise_linear",
        numeric_bins: int = 48,
        numeric_frequencies: int = 48,
        numeric_frequency_scale: float = 0.1,
        bottom_units: Sequence[int] = (128, 64),
        tower_units: Sequence[int] = (32,),
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
        self.bottom_units = bottom_units
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

    def _predict_inputs(self, X):
        if "field_encoder_" not in vars(self):
            # Fitted by a version whose SharedBottom took a float matrix.
            raise ValueError(
                "This SharedBottomClassifier was fitted by an mtlestimators "
                "version in which SharedBottom took a numeric matrix; it now "
                "embeds raw fields (categorical and numeric columns), and the "
                "saved network does not fit that input. Refit it (the same "
                "one-hot matrix still works as X, as numeric fields)."
            )
        return super()._predict_inputs(X)

    def _build_module(self, specs, **input_spec):
        return SharedBottomModule, self._module_params(
            specs,
            input_spec,
            units={"bottom_units": self.bottom_units},
            n_features=len(input_spec["field_order"]),
        )
