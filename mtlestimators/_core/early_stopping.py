"""Early stopping the scikit-learn way (``early_stopping``,
``validation_fraction``, ``n_iter_no_change``, ``tol``), for every net
estimator.

A share of the training rows is held out, drawn so that every task has
labelled rows of each of its classes among them; after every epoch the
monitored quantity is the mean over tasks of each task's validation loss
(the criterion's weighted mean over that task's labelled held-out rows: no
loss weighter, no regularization, so that a task with many rows does not
drown the others and a penalty's schedule does not decide when to stop).
Training stops when it has not improved by more than ``tol`` for
``n_iter_no_change`` epochs, and the best epoch's weights are restored.

skorch's ``EarlyStopping`` does the bookkeeping (patience, best weights,
restoring them at the end, and the state a ``checkpoint_dir`` resume needs);
the subclass here only computes the monitored value, which skorch's
``valid_loss`` is not: that is the training objective on the held-out rows,
a batch-weighted mean of the loss weighter's combination plus the
regularization.
"""

from __future__ import annotations

import numpy as np
import torch
from skorch.callbacks import EarlyStopping, LRScheduler
from skorch.utils import to_tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset

# "auto" turns early stopping on above this many labelled rows.
# HistGradientBoostingClassifier's threshold is 10,000 samples, below which it
# runs its fixed 100 iterations. A net has no such safe fixed budget: on
# modeldata/wa_churn (5,282 training rows) MMoE at 20 epochs scored 0.942 /
# 0.939 mean ROC AUC (seeds 0, 1), at 100 epochs 0.922 / 0.915, and stopped
# early on 10% held-out rows 0.942 / 0.938; on river's Yeast (1,812 rows)
# 0.660 at 20, 0.671 at 100 and 0.687 stopped early. Holding out 10% cost
# nothing measurable, a wrong epoch budget 0.02. So the threshold is lower;
# below it (scikit-learn's estimator checks fit tens of rows) the held-out
# set would be a handful of rows.
AUTO_MIN_ROWS = 1_000
MONITOR = "valid_task_loss"
CALLBACK_NAME = "early_stopping_task_mean"
SCHEDULE_NAME = "lr_schedule_plateau"
# lr_schedule="plateau": the learning rate is multiplied by PLATEAU_FACTOR
# once the held-out task loss has not improved for more than PLATEAU_PATIENCE
# epochs (torch's ReduceLROnPlateau), so that early stopping's patience of 10
# allows about two cuts before it stops.
# Chosen by benchmarks/tabular_recipe.py at 3 seeds on four tables (MSSM and
# MMoE; docs/results/tabular_recipe.md, docs/tabular.md).
PLATEAU_PATIENCE = 3
PLATEAU_FACTOR = 0.3


def early_stopping_on(estimator, n_rows: int) -> bool:
    """Whether ``estimator``'s ``early_stopping`` setting holds out rows for
    a fit on ``n_rows`` labelled rows."""
    setting = getattr(estimator, "early_stopping", False)
    user_split = getattr(estimator, "train_split", None) is not None
    if setting == "auto":
        # A user's own train_split means they validate themselves.
        return n_rows > AUTO_MIN_ROWS and not user_split
    if setting and user_split:
        raise ValueError(
            "early_stopping=True holds out validation_fraction of the rows "
            "itself, and train_split is set too; use one: train_split=None "
            "(early stopping's own split), or early_stopping=False with your "
            "own train_split and callbacks."
        )
    return bool(setting)


def _stratum(values: np.ndarray, kind: str) -> np.ndarray:
    """A class id per labelled row of one task: the class, the side of 0.5
    for a soft binary target, one stratum for a regression task."""
    if kind == "regression":
        return np.zeros(len(values), dtype=np.int64)
    if kind == "binary":
        return (values > 0.5).astype(np.int64)
    return values.astype(np.int64)


def validation_rows(
    Y: np.ndarray, kinds, fraction: float, random_state: int
) -> np.ndarray:
    """Boolean mask of the rows held out for early stopping.

    ``Y`` holds the targets (n, K) with NaN for a missing label, optionally
    followed by K weight columns (a label of weight 0 counts as missing).
    Each (task, class) stratum gets ``fraction`` of its rows held out (at
    least one when it has two or more, never all of them). Strata are
    filled from the smallest to the largest, each with rows drawn at random
    among its rows not yet held out, preferring rows that no smaller
    stratum holds: so a rare task's or a rare class's rows are not left to
    chance, and the common strata, counted with the rows the rare ones
    already hold out, do not add more of the rare ones'.
    """
    rng = np.random.RandomState(random_state)
    n_tasks = len(kinds)
    values = np.asarray(Y, dtype=np.float64)
    targets = values[:, :n_tasks].copy()
    if values.shape[1] == 2 * n_tasks:
        targets[values[:, n_tasks:] <= 0] = np.nan
    n = len(targets)
    strata = []
    for k in range(n_tasks):
        rows = np.flatnonzero(~np.isnan(targets[:, k]))
        classes = _stratum(targets[rows, k], kinds[k])
        strata.extend(rows[classes == c] for c in np.unique(classes))
    held_out = np.zeros(n, dtype=bool)
    touched = np.zeros(n, dtype=bool)  # rows of a stratum already filled
    for members in sorted(strata, key=len):
        want = round(fraction * len(members))
        if len(members) >= 2:
            want = min(max(want, 1), len(members) - 1)
        need = want - int(held_out[members].sum())
        if need > 0:
            free = members[~held_out[members] & ~touched[members]]
            taken = rng.choice(free, size=min(need, len(free)), replace=False)
            need -= len(taken)
            held_out[taken] = True
            if need > 0:  # every free row is held out: use a smaller stratum's
                rest = members[~held_out[members]]
                more = rng.choice(rest, size=min(need, len(rest) - 1), replace=False)
                held_out[more] = True
        touched[members] = True
    if held_out.all():  # not reachable with fraction < 1; never train on nothing
        held_out[rng.randint(n)] = False
    return held_out


class HeldOutRows:
    """skorch ``train_split``: a fixed set of held-out rows (indices into the
    dataset the net is fit on)."""

    def __init__(self, held_out: np.ndarray):
        self.valid_index = np.flatnonzero(held_out)
        self.train_index = np.flatnonzero(~held_out)

    def __call__(self, dataset, y=None, groups=None):
        subset = getattr(dataset, "subset", None)  # a GalleryDataset's own
        if subset is not None:
            return subset(self.train_index), subset(self.valid_index)
        return (
            Subset(dataset, self.train_index.tolist()),
            Subset(dataset, self.valid_index.tolist()),
        )


def _no_print(*args, **kwargs) -> None:
    """The stop message's sink with ``verbose=0``."""


class TaskMeanEarlyStopping(EarlyStopping):
    """skorch ``EarlyStopping`` on the mean over tasks of the validation
    loss, which it computes from the validation batches and records in the
    history as ``valid_task_loss`` (with ``valid_task_loss_best``, which the
    epoch table highlights). Inert in a fit without validation batches, or
    while ``active`` is False (a warm-start continuation that does not stop
    early)."""

    def __init__(self, patience=10, threshold=1e-4, sink=print, active=True):
        super().__init__(
            monitor=MONITOR,
            patience=patience,
            threshold=threshold,
            threshold_mode="abs",
            lower_is_better=True,
            load_best=True,
            sink=sink,
        )
        self.active = active

    def on_train_begin(self, net, **kwargs):
        self._sums = self._counts = None
        return super().on_train_begin(net, **kwargs)

    def on_epoch_begin(self, net, **kwargs):
        self._sums = self._counts = None

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or not self.active or y_pred is None:
            return
        _, yi = batch
        y_true = to_tensor(yi, device=net.data_device())
        with torch.no_grad():
            sums, counts = net.criterion_.totals(y_pred, y_true)
        sums, counts = sums.double().cpu(), counts.double().cpu()
        if self._sums is None:
            self._sums, self._counts = sums, counts
        else:
            self._sums, self._counts = self._sums + sums, self._counts + counts

    def on_epoch_end(self, net, **kwargs):
        if not self.active or self._sums is None:
            return
        sums, counts = self._sums, self._counts
        accelerator = getattr(net, "accelerator", None)
        if accelerator is not None and getattr(accelerator, "num_processes", 1) > 1:
            # Summed over the processes, so they all stop at the same epoch:
            # the gallery model's validation batches are sharded (this is
            # then the whole set's), the tabular ones are whole in every
            # process (sums and counts both grow P-fold: the same ratio).
            both = torch.stack([sums, counts]).to(accelerator.device)
            sums, counts = accelerator.reduce(both, reduction="sum").cpu()
        present = counts > 0
        value = float((sums[present] / counts[present]).mean())
        net.history.record(MONITOR, value)
        improved = value < self.dynamic_threshold_
        net.history.record(MONITOR + "_best", bool(improved))
        try:
            super().on_epoch_end(net, **kwargs)
        finally:
            if improved and isinstance(net.module_, DistributedDataParallel):
                # Kept as the bare module's weights: accelerate unwraps the
                # module when training ends, before they are restored.
                self.best_model_weights_ = {
                    k.removeprefix("module."): v
                    for k, v in self.best_model_weights_.items()
                }

    def on_train_end(self, net, **kwargs):
        if not self.active or self.best_model_weights_ is None:
            return
        if self.best_epoch_ != net.history[-1, "epoch"]:
            module = net.module_
            if isinstance(module, DistributedDataParallel):
                module = module.module
            module.load_state_dict(self.best_model_weights_)
            self._sink(
                f"Restoring best model from epoch {self.best_epoch_}.",
                verbose=net.verbose,
            )


class HeldOutPlateau(LRScheduler):
    """``lr_schedule="plateau"``: torch's ``ReduceLROnPlateau`` on the
    epoch's held-out task loss (``valid_task_loss``, which
    :class:`TaskMeanEarlyStopping` records before this callback runs), with
    early stopping's threshold (``tol``, absolute). skorch's ``LRScheduler``
    steps it and keeps its state for ``checkpoint_dir`` resumes. Inert in an
    epoch without that loss, or while ``active`` is False (a warm-start
    continuation that does not stop early)."""

    def __init__(self, patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR,
                 threshold=1e-4, active=True):  # fmt: skip
        super().__init__(
            policy="ReduceLROnPlateau",
            monitor=MONITOR,
            mode="min",
            patience=patience,
            factor=factor,
            threshold=threshold,
            threshold_mode="abs",
        )
        self.active = active

    @property
    def kwargs(self):
        # skorch passes every other public attribute to the scheduler.
        return {k: v for k, v in super().kwargs.items() if k != "active"}

    @classmethod
    def _get_param_names(cls):
        return ["patience", "factor", "threshold", "active"]

    def __getstate__(self):
        # The torch scheduler holds the optimizer, whose tensors skorch
        # pickles on its own (so that a CUDA-trained model loads on a CPU);
        # a second copy here would not. on_train_begin builds a new one, and
        # checkpoints save its state_dict from the live object.
        state = dict(self.__dict__)
        state["lr_scheduler_"] = None
        return state

    def on_epoch_end(self, net, **kwargs):
        if not self.active or MONITOR not in net.history[-1]:
            return
        super().on_epoch_end(net, **kwargs)


def _has_own_scheduler(estimator) -> bool:
    for entry in getattr(estimator, "callbacks", None) or ():
        callback = entry[1] if isinstance(entry, tuple) else entry
        if isinstance(callback, LRScheduler) or (
            isinstance(callback, type) and issubclass(callback, LRScheduler)
        ):
            return True
    return False


def lr_schedule_callback(estimator) -> HeldOutPlateau | None:
    """The schedule callback of ``estimator``'s ``lr_schedule`` for a fit
    that stops early, or None: ``"constant"``, an estimator without the
    parameter, or a user's own ``LRScheduler`` in ``callbacks`` (which then
    schedules alone, rather than both cutting the rate)."""
    if getattr(estimator, "lr_schedule", "constant") != "plateau":
        return None
    if _has_own_scheduler(estimator):
        return None
    return HeldOutPlateau(threshold=float(estimator.tol))


def early_stopping_callback(estimator) -> TaskMeanEarlyStopping:
    return TaskMeanEarlyStopping(
        patience=int(estimator.n_iter_no_change),
        threshold=float(estimator.tol),
        sink=print if estimator.verbose else _no_print,
    )


def fitted_epochs(net) -> tuple[int, int]:
    """``(n_iter_, best_epoch_)``: the epochs trained so far and the epoch
    whose weights the net holds: with early stopping in the last fit, the
    last epoch that improved (whose weights were restored), else the last.
    Read from the history, which a completed checkpoint brings back too."""
    history = net.history
    n_iter = len(history)
    if n_iter and MONITOR in history[-1]:
        improved = [row["epoch"] for row in history if row.get(MONITOR + "_best")]
        if improved:
            return n_iter, int(improved[-1])
    return n_iter, n_iter
