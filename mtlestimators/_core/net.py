"""The skorch net behind every estimator: multi-task loss, loss weighter,
tensor-resident batches."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import LRScheduler
from skorch.dataset import unpack_data
from skorch.hf import AccelerateMixin
from skorch.utils import to_tensor
from torch import nn

from ..plugins import build_loss_weighter, call_hook
from .checkpoint import stopped_early
from .data import TensorBatchIterator, TensorData


class MultiTaskLoss(nn.Module):
    """Per-task mean losses over the labelled rows of a batch, shape (K,).

    ``y_pred`` is a tuple with one output per task: logits (B,) for binary,
    logits (B, C) for multiclass, values (B,) for regression. ``y_true`` is
    (B, K) float with NaN for a missing label, or (B, 2K): the K targets
    followed by K non-negative weights, one per row and task (sample and
    class weights). A missing label, or a weight of 0, is masked out of its
    task's loss, so it contributes exactly zero gradient; each task's loss is
    the weighted mean over its labelled rows, and a task with no labelled
    (or no positively weighted) row in the batch has loss 0.

    Losses: binary cross-entropy, cross-entropy, squared error.
    """

    def __init__(self, task_kinds: Sequence[str]):
        super().__init__()
        self.task_kinds = list(task_kinds)

    def totals(self, y_pred, y_true: torch.Tensor):
        """Each task's weighted sum of row losses and sum of weights over its
        labelled rows: two (K,) tensors (the loss is their ratio)."""
        n_tasks = len(self.task_kinds)
        assert len(y_pred) == n_tasks and y_true.shape[1] in (n_tasks, 2 * n_tasks)
        weights = y_true[:, n_tasks:] if y_true.shape[1] == 2 * n_tasks else None
        sums, counts = [], []
        for k, (output, kind) in enumerate(zip(y_pred, self.task_kinds)):
            target = y_true[:, k]
            labelled = ~torch.isnan(target)
            safe = torch.where(labelled, target, torch.zeros_like(target))
            if kind == "binary":
                per_row = F.binary_cross_entropy_with_logits(
                    output, safe, reduction="none"
                )
            elif kind == "multiclass":
                per_row = F.cross_entropy(output, safe.long(), reduction="none")
            else:
                per_row = (output - safe) ** 2
            weight = labelled.to(per_row.dtype)
            if weights is not None:
                weight = weight * weights[:, k].to(per_row.dtype)
            sums.append((per_row * weight).sum())
            counts.append(weight.sum())
        return torch.stack(sums), torch.stack(counts)

    def forward(self, y_pred, y_true: torch.Tensor) -> torch.Tensor:
        sums, counts = self.totals(y_pred, y_true)
        # Unweighted, counts are whole numbers, and this is sums / max(n, 1).
        return torch.where(
            counts > 0, sums / counts.clamp(min=torch.finfo(sums.dtype).tiny), 0.0
        )  # (K,)


class TrainingDivergedError(FloatingPointError, ValueError):
    """Training stopped at a non-finite (NaN or infinite) loss.

    A ``FloatingPointError``, the exception numpy raises for a floating-point
    error it is told to raise on (``np.errstate``), since the failure is
    numerical; and a ``ValueError``, the exception scikit-learn raises for an
    unusable parameter value, since the cause is almost always a setting or
    the data (a too large ``lr``, unscaled features, extreme labels). Code
    that catches either keeps working.
    """


def _labelled_tasks(y_true: torch.Tensor, n_tasks: int | None = None) -> torch.Tensor:
    """(K,) bool: the task has at least one label (with a positive weight,
    when ``y_true`` carries weights, see :class:`MultiTaskLoss`) in the batch."""
    n_tasks = y_true.shape[1] if n_tasks is None else n_tasks
    labelled = ~torch.isnan(y_true[:, :n_tasks])
    if y_true.shape[1] == 2 * n_tasks:
        labelled = labelled & (y_true[:, n_tasks:] > 0)
    return labelled.any(dim=0)


class MultiTaskNet(NeuralNet):
    """skorch ``NeuralNet`` for multi-task modules.

    The module returns a tuple of per-task outputs; ``criterion_`` turns them
    into the (K,) vector of per-task losses; ``loss_weighter_`` (a plugin,
    built from ``loss_weighter`` and ``loss_weighter__*``) turns that into the
    training loss. A module may define ``regularization()``; its value is
    added to the loss (the MSSM family's L0/L2 terms). Batches are slices of
    tensors held once per fit (:class:`TensorData`).
    """

    def __init__(
        self,
        module,
        *,
        task_kinds,
        loss_weighter="uniform",
        autocast=None,
        checkpointer=None,
        task_names=None,
        **kwargs,
    ):
        kwargs.setdefault("criterion", MultiTaskLoss)
        kwargs.setdefault("criterion__task_kinds", list(task_kinds))
        kwargs.setdefault("iterator_train", TensorBatchIterator)
        kwargs.setdefault("iterator_valid", TensorBatchIterator)
        kwargs.setdefault("iterator_train__shuffle", True)
        kwargs.setdefault("train_split", None)
        # Set before NeuralNet.__init__: skorch refuses to set a torch module
        # (an instance given as loss_weighter) on an already constructed net.
        self.task_kinds = list(task_kinds)
        self.loss_weighter = loss_weighter
        # None, "bfloat16" or "float16": forward passes run under torch.autocast.
        self.autocast = autocast
        # None, or the Checkpointer of the fit in progress (``checkpoint_dir``),
        # which ``notify`` drives; the estimator sets it back to None after
        # the fit, so a fitted net holds no open checkpoint. A constructor
        # parameter rather than a skorch Callback: the checkpointer must act
        # both before an epoch's callbacks (restoring the RNG states) and
        # after all of them (writing the epoch), also when one raises
        # KeyboardInterrupt, which would skip a callback placed after it.
        self.checkpointer = checkpointer
        # The tasks' names, for messages (a divergence names its tasks); None
        # names them by position.
        self.task_names = None if task_names is None else list(task_names)
        super().__init__(module, **kwargs)

    # ------------------------------------------------- device and precision
    def data_device(self):
        """Where input tensors go: ``device``, or, when ``device`` is None
        (placement left to accelerate), the device of the module's weights."""
        if self.device is not None:
            return self.device
        module = getattr(self, "module_", None)
        first = None if module is None else next(module.parameters(), None)
        return "cpu" if first is None else first.device

    def autocast_context(self):
        """``torch.autocast`` for the net's device with the ``autocast`` dtype,
        or a no-op context when ``autocast`` is None."""
        if not self.autocast:
            return contextlib.nullcontext()
        device_type = torch.device(self.data_device()).type
        return torch.autocast(device_type, dtype=getattr(torch, self.autocast))

    def _float_outputs(self, out):
        """Module outputs back in float32 after an autocast forward pass."""
        if not self.autocast:
            return out
        if isinstance(out, torch.Tensor):
            return out.float() if out.is_floating_point() else out
        return tuple(
            o.float() if isinstance(o, torch.Tensor) and o.is_floating_point() else o
            for o in out
        )

    def initialize(self):
        super().initialize()
        # float16 on CUDA needs loss scaling; bfloat16 has float32's range. A
        # gradient-level weighter sets the gradients itself, unscaled.
        device_type = torch.device(self.data_device()).type
        gradient_level = hasattr(self.loss_weighter_, "combine_gradients")
        if self.autocast == "float16" and device_type == "cuda" and gradient_level:
            raise ValueError(
                f"autocast='float16' on CUDA needs loss scaling, which the "
                f"gradient-level loss weighter {type(self.loss_weighter_).__name__} "
                "does not support (its per-task gradients would underflow); use "
                "autocast='bfloat16' or a loss weighter without combine_gradients."
            )
        self.grad_scaler_ = (
            torch.amp.GradScaler("cuda")
            if self.autocast == "float16"
            and device_type == "cuda"
            and not gradient_level
            else None
        )
        return self

    def infer(self, x, **fit_params):
        with self.autocast_context():
            out = self._infer(x, **fit_params)
        return self._float_outputs(out)

    def _infer(self, x, **fit_params):
        """The module's forward pass on one batch (without autocast)."""
        return super().infer(x, **fit_params)

    def _step_optimizer(self, step_fn):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super()._step_optimizer(step_fn)
        step_fn()  # GradScaler.step takes no closure
        for name in self._optimizers:
            scaler.step(getattr(self, name + "_"))
        scaler.update()

    # ------------------------------------------------------------ checkpoints
    def notify(self, method_name, **cb_kwargs):
        # getattr: a net pickled before ``checkpointer`` was a parameter
        # has no such attribute.
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is None:
            return super().notify(method_name, **cb_kwargs)
        if method_name == "on_epoch_begin":
            checkpointer.epoch_begin(self)  # a resumed fit's generators
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt:
            # A callback ended training (EarlyStopping, or Ctrl-C while the
            # callbacks ran): the epoch is trained and its history row holds
            # what the callbacks before it recorded, as in the model that
            # fit returns. Checkpoint it, then let skorch stop.
            if method_name == "on_epoch_end":
                checkpointer.epoch_end(self, stopped=stopped_early(self))
            raise
        # After every callback, so the epoch's history row is complete.
        if method_name == "on_train_begin":
            checkpointer.train_begin(self)
        elif method_name == "on_epoch_end":
            checkpointer.epoch_end(self)
        return None

    def checkpoint_extra(self) -> dict:
        """Training state outside the state_dicts (subclasses add to it)."""
        return {}

    def load_checkpoint_extra(self, extra: dict) -> None:
        pass

    def initialize_optimizer(self, triggered_directly=None):
        """skorch's optimizer, with weight decay on weights only: when the
        optimizer is given a ``weight_decay`` and no ``param_groups`` of the
        user's, the decay applies to the weights of linear layers, and not
        to biases, norms, embeddings (field, task and position tables),
        gates, FSCM mask vectors or a loss weighter's parameters (see
        :func:`decayed_parameters`): shrinking an embedding towards 0 or a
        gate towards half-open is not the regularization meant."""
        named = list(self.get_all_learnable_params())
        args, kwargs = self.get_params_for_optimizer("optimizer", named)
        own_groups = "param_groups" in self.get_params_for("optimizer")
        decay = kwargs.get("weight_decay")
        if decay is None:  # the optimizer's own default (AdamW's is 0.01)
            default = inspect.signature(self.optimizer).parameters.get("weight_decay")
            decay = None if default is None else default.default
        if isinstance(decay, (int, float)) and decay > 0 and not own_groups:
            decayed = {id(p) for p in decayed_parameters(self.module_)}
            groups = [
                {"params": [p for _, p in named if id(p) in decayed]},
                {
                    "params": [p for _, p in named if id(p) not in decayed],
                    "weight_decay": 0.0,
                },
            ]
            args = ([g for g in groups if g["params"]],)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        return self

    def initialize_module(self):
        # Set inside skorch's module init context, ``loss_weighter_`` is
        # registered like ``module_``: its parameters join the optimizer, it
        # moves with the device and ``loss_weighter__*`` routes to it.
        super().initialize_module()
        params = self.get_params_for("loss_weighter")
        self.loss_weighter_ = build_loss_weighter(
            self.loss_weighter, len(self.task_kinds), **params
        )
        forward = inspect.signature(self.loss_weighter_.forward).parameters
        self.weighter_takes_labelled_ = "labelled" in forward
        return self

    def _set_training(self, training=True):
        # skorch sets the mode of every module and criterion on every batch;
        # nn.Module.train() walks all submodules, a measurable cost on small
        # models. A component already in the requested mode is left alone.
        for name in self._modules + self._criteria:
            component = getattr(self, name + "_")
            if isinstance(component, nn.Module) and component.training != training:
                component.train(training)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The module's trainable parameters that several tasks share: its
        ``shared_parameters()`` if it defines one, else every parameter
        outside ``module.towers`` (each task's own tower)."""
        own = getattr(self.module_, "shared_parameters", None)
        if own is not None:
            params = list(own())
        else:
            towers = getattr(self.module_, "towers", None)
            skip = set() if towers is None else {id(p) for p in towers.parameters()}
            params = [p for p in self.module_.parameters() if id(p) not in skip]
        return [p for p in params if p.requires_grad]

    def train_step_single(self, batch, **fit_params):
        combine = getattr(self.loss_weighter_, "combine_gradients", None)
        scaler = getattr(self, "grad_scaler_", None)
        if combine is None and scaler is None:
            return super().train_step_single(batch, **fit_params)
        if combine is None:  # float16 autocast: scaled backward
            self._set_training(True)
            Xi, yi = unpack_data(batch)
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
            scaler.scale(loss).backward()
            for name in self._optimizers:  # callbacks see the true gradients
                scaler.unscale_(getattr(self, name + "_"))
            return {"loss": loss, "y_pred": y_pred}
        # Gradient-level weighting: the weighter sees the per-task losses and
        # the shared parameters and leaves every parameter's .grad set.
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        self.module_.keep_shared_representation = True
        try:
            y_pred = self.infer(Xi, **fit_params)
        finally:
            self.module_.keep_shared_representation = False
        representation = getattr(self.module_, "shared_representation", None)
        self.module_.shared_representation = None  # no graph kept on the module
        y_true = to_tensor(yi, device=self.data_device())
        task_losses = self.criterion_(y_pred, y_true)
        regularization = self._regularization(task_losses.device)
        # Before the weighter's backward passes, and again on its total
        # before the optimizer steps: no weight is ever updated from NaN.
        self.check_finite_loss(task_losses, task_losses.sum() + regularization)
        shared = self.shared_parameters()
        loss = combine(
            task_losses,
            shared_parameters=shared,
            task_parameters=self._task_parameters(shared),
            labelled=_labelled_tasks(y_true, len(self.task_kinds)),
            regularization=regularization,
            representation=representation,
        )
        self.check_finite_loss(task_losses, loss)
        return {"loss": loss, "y_pred": y_pred}

    # ------------------------------------------------------------ divergence
    def check_finite_loss(self, task_losses: torch.Tensor, loss: torch.Tensor):
        """Raise :class:`TrainingDivergedError` if a training batch's per-task
        losses ``task_losses`` (K,) or its total ``loss`` is NaN or infinite.

        Called after the forward pass and before any backward pass or
        optimizer step, so the weights are never updated from a non-finite
        loss; the estimator's ``fit`` then leaves a previously fitted model
        as it was (a ``warm_start`` continuation gets its weights back).
        """
        values = torch.cat([task_losses.detach().reshape(-1), loss.detach().reshape(1)])
        if bool(torch.isfinite(values).all()):
            return
        raise TrainingDivergedError(self._divergence_message(task_losses, loss))

    def _divergence_message(self, task_losses, loss) -> str:
        task_losses = task_losses.detach().float().cpu()
        names = getattr(self, "task_names", None)
        if names is None or len(names) != len(task_losses):
            names = [f"task {k}" for k in range(len(task_losses))]
        bad = [
            f"{name!r} ({value.item()})"
            for name, value in zip(names, task_losses)
            if not torch.isfinite(value)
        ]
        if bad:
            what = f"the loss of {', '.join(bad)}"
        else:  # every task loss finite: the weighter or the regularization
            what = (
                f"the total loss ({loss.detach().float().item()}, after the "
                f"loss weighter {type(self.loss_weighter_).__name__} and the "
                "module's regularization) while every task loss is finite"
            )
        where = ""
        if len(self.history):
            epoch = self.history[-1].get("epoch", len(self.history))
            batch = len(self.history[-1].get("batches", [])) or 1
            where = f" at epoch {epoch}, batch {batch}"
        return (
            f"Training diverged: {what} is not finite{where}; training stopped "
            "before the weights were updated with it (an estimator fitted "
            "before this call keeps its previous model). To fix it: lower lr "
            f"(now {self.lr}), standardize or scale the features (e.g. "
            "sklearn.preprocessing.StandardScaler), and check the labels (a "
            "regression target with a huge scale, or labels that are not "
            "0/1 or class ids)."
        )

    def _task_parameters(self, shared) -> list[nn.Parameter]:
        """The trainable parameters of the net that are not in ``shared``; the
        loss weighter's own parameters are left to the weighter."""
        skip = {id(p) for p in shared} | {
            id(p) for p in self.loss_weighter_.parameters()
        }
        return [
            p
            for _, p in self.get_all_learnable_params()
            if p.requires_grad and id(p) not in skip
        ]

    def _regularization(self, device) -> torch.Tensor:
        """The module's ``regularization()`` term, or 0 if it has none."""
        regularization = getattr(self.module_, "regularization", None)
        if regularization is None:
            return torch.zeros((), device=device)
        return regularization()

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        call_hook(self.loss_weighter_, "epoch_end")

    def train_step(self, batch, **fit_params):
        step = super().train_step(batch, **fit_params)
        # Optional weighter hook ``step_end(losses, labelled=...)``: the
        # per-task losses of the same batch after the optimizer step (one
        # more forward pass, no backward; ``famo`` updates its weights with
        # them). Weighters without the hook cost nothing.
        step_end = getattr(self.loss_weighter_, "step_end", None)
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and not accelerator.sync_gradients:
            step_end = None  # a gradient-accumulation micro-step: no update yet
        if step_end is not None:
            Xi, yi = unpack_data(batch)
            with torch.no_grad():
                y_pred = self.infer(Xi, **fit_params)
                y_true = to_tensor(yi, device=self.data_device())
                losses = self.criterion_(y_pred, y_true)
            step_end(
                losses.detach(), labelled=_labelled_tasks(y_true, len(self.task_kinds))
            )
        return step

    def get_dataset(self, X, y=None):
        if isinstance(X, TensorData):
            return X
        return TensorData(X, y, device=self.data_device())

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.data_device())
        task_losses = self.criterion_(y_pred, y_true)
        if self.weighter_takes_labelled_:
            loss = self.loss_weighter_(
                task_losses, labelled=_labelled_tasks(y_true, len(self.task_kinds))
            )
        else:
            loss = self.loss_weighter_(task_losses)
        loss = loss + self._regularization(task_losses.device)
        if training:  # a training step: stop before backward on NaN
            self.check_finite_loss(task_losses, loss)
        return loss

    def task_outputs(self, X, batch_size=None) -> tuple[torch.Tensor, ...]:
        """Eval-mode module outputs for X, one CPU tensor per task.

        What ``NeuralNet.forward(X, training=False)`` computes, without its
        per-call dataset and iterator: X (an array or a dict of arrays) is
        turned into tensors once and fed to the module in slices of
        ``batch_size`` rows (the estimator's current ``batch_size`` when
        given, else the net's), which keeps a single-row prediction close to
        the module's own forward time.
        """
        self._set_training(False)
        device = self.data_device()
        data = X if isinstance(X, TensorData) else TensorData(X, device=device)
        n = len(data)
        size = self.batch_size if batch_size is None else batch_size
        step = max(size if size and size > 0 else n, 1)
        parts = []
        with torch.inference_mode(), self.autocast_context():
            for start in range(0, max(n, 1), step):
                Xi = data.rows(slice(start, start + step))
                out = self.module_(**Xi) if isinstance(Xi, dict) else self.module_(Xi)
                if isinstance(out, torch.Tensor):
                    out = (out,)
                parts.append([o.to("cpu") for o in self._float_outputs(out)])
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(torch.cat(p, dim=0) for p in zip(*parts))


def decayed_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters that weight decay applies to: the ``weight`` of every
    ``nn.Linear`` (and convolution) in ``module``, plus those a module names
    in a ``decayed_parameters`` attribute (a batched linear layer's stacked
    weights). The usual rule for transformers and MLPs (decay the matrices
    that mix features, not biases, norms or lookup tables). A module with a
    true ``no_weight_decay`` attribute is skipped whole (gates, field
    embeddings)."""
    layers = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    found = []
    stack = [module]
    while stack:
        sub = stack.pop()
        if getattr(sub, "no_weight_decay", False):
            continue  # a gate or a field embedding, with all it contains
        names = getattr(sub, "decayed_parameters", ())
        if isinstance(sub, layers):
            names = ("weight", *names)
        for name in names:
            param = sub._parameters.get(name)
            if param is not None and param.requires_grad:
                found.append(param)
        stack.extend(sub.children())
    return found


def bare_module(module):
    """``module`` without its ``DistributedDataParallel`` wrapper (which does
    not forward attribute access such as ``regularization``)."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        return module.module
    return module


def _print_nothing(*args, **kwargs) -> None:
    """The training log's sink outside the main process."""


class DataParallelMixin:
    """What the accelerated nets need with several processes; placed before
    skorch's ``AccelerateMixin`` in the bases.

    skorch's ``AccelerateMixin`` passes every module and criterion to
    ``accelerator.prepare``, which wraps each in ``DistributedDataParallel``
    when there are several processes; DDP refuses a component without
    trainable parameters (the multi-task loss, most loss weighters), and a
    wrapped loss weighter hides its methods. Here, with several processes,
    only ``module_`` is prepared (DDP averages its gradients); the other
    components are moved to the accelerator's device, and the gradients of
    their trainable parameters (the ``uncertainty`` weighter's log
    variances) are averaged across processes after each backward pass. The
    recorded training loss of a batch is the mean over processes, so every
    process keeps the same history and callbacks decide alike.
    """

    def _initialize_callbacks(self):
        # skorch's AccelerateMixin makes accelerator.print the log's sink,
        # and PrintLog honours verbose=0 only for the built-in print: print
        # in the main process, nothing in the others.
        if self.callbacks__print_log__sink == "auto":
            main = getattr(self.accelerator, "is_main_process", True)
            self.callbacks__print_log__sink = print if main else _print_nothing
        return super()._initialize_callbacks()

    def _initialize_accelerator(self):
        if self._wrapped_with_accelerator:
            return self
        accelerator = self.accelerator
        if accelerator.num_processes == 1:
            self.synced_parameters_ = []
            return super()._initialize_accelerator()
        synced = []
        with self._current_init_context("module"):
            for name in self._modules + self._criteria:
                component = getattr(self, name + "_")
                if not isinstance(component, nn.Module):
                    continue
                trainable = [p for p in component.parameters() if p.requires_grad]
                if name == "module" and trainable:
                    setattr(self, name + "_", accelerator.prepare(component))
                    continue
                if accelerator.device_placement:
                    component.to(accelerator.device)
                synced.extend(trainable)
        self.synced_parameters_ = synced
        with self._current_init_context("optimizer"):
            for name in self._optimizers:
                optimizer = getattr(self, name + "_")
                if isinstance(optimizer, torch.optim.Optimizer):
                    setattr(self, name + "_", accelerator.prepare(optimizer))
        for _, callback in self.callbacks_:
            if isinstance(callback, LRScheduler):
                callback.policy_ = accelerator.prepare(callback.policy_)
        self._wrapped_with_accelerator = True
        return self

    def train_step_single(self, batch, **fit_params):
        step = super().train_step_single(batch, **fit_params)
        synced = getattr(self, "synced_parameters_", [])
        if synced and self.accelerator.sync_gradients:
            for param in synced:
                # Every process joins every all-reduce (a parameter without a
                # gradient in this process contributes zeros), so the
                # collectives always match across processes.
                grad = param.grad if param.grad is not None else torch.zeros_like(param)
                param.grad = self.accelerator.reduce(grad, reduction="mean")
        return step

    def _loss_over_processes(self, step: dict) -> dict:
        """The step with its recorded loss replaced by the mean over the
        processes, so every process keeps the same history."""
        if self.accelerator.num_processes > 1:
            loss = step["loss"].detach().float().reshape(())
            step["loss"] = self.accelerator.reduce(loss, reduction="mean")
        return step

    def train_step(self, batch, **fit_params):
        return self._loss_over_processes(super().train_step(batch, **fit_params))

    def validation_step(self, batch, **fit_params):
        # accelerate shards a DataLoader's validation batches too (the
        # gallery net's): with the mean, callbacks such as EarlyStopping
        # stop all processes at the same epoch.
        return self._loss_over_processes(super().validation_step(batch, **fit_params))

    def _regularization(self, device) -> torch.Tensor:
        regularization = getattr(bare_module(self.module_), "regularization", None)
        if regularization is None:
            return torch.zeros((), device=device)
        return regularization()


class AcceleratedMultiTaskNet(DataParallelMixin, AccelerateMixin, MultiTaskNet):
    """:class:`MultiTaskNet` trained through Hugging Face Accelerate (skorch's
    ``AccelerateMixin``): the accelerator places the module, wraps it for
    distributed data parallel training and applies its mixed precision.

    Tensor-resident batches are not a ``DataLoader`` that accelerate could
    shard, so with several processes each process trains on its own stride
    of every epoch's shuffled order (drawn in the first process and
    broadcast, so it is the same order in every process), padded by
    wrapping as torch's ``DistributedSampler`` does; ``batch_size`` is per
    process. Validation runs whole in every process. See
    :class:`DataParallelMixin` for what is wrapped in DDP.
    """

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        processes = self.accelerator.num_processes
        if training and processes > 1 and isinstance(iterator, TensorBatchIterator):
            iterator.shard = (self.accelerator.process_index, processes)
        return iterator

    def evaluation_step(self, batch, training=False):
        # Each process evaluates the whole (unsharded) validation data, so
        # there is nothing to gather across processes.
        return MultiTaskNet.evaluation_step(self, batch, training=training)
