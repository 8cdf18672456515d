"""The estimator base shared by every model: a scikit-learn estimator whose
``fit`` builds and trains a skorch net (:class:`MultiTaskNet`) stored as
``net_``."""

from __future__ import annotations

import copy
import difflib
import inspect
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from ..plugins import call_hook, get_loss_weighter
from .checkpoint import (
    Checkpointer,
    check_checkpoint_random_state,
    cuda_rng_devices,
    fingerprint,
    seeded_global_generators,
)
from .data import TensorBatchIterator
from .early_stopping import (
    CALLBACK_NAME,
    SCHEDULE_NAME,
    HeldOutRows,
    early_stopping_callback,
    early_stopping_on,
    lr_schedule_callback,
    validation_rows,
)
from .net import AcceleratedMultiTaskNet, MultiTaskLoss, MultiTaskNet
from .params import (
    Boolean,
    Callable,
    InstanceOf,
    Integer,
    Options,
    Plugin,
    Real,
    SubclassOf,
    validate_params,
)
from .targets import (
    TaskSpec,
)
from .weights import counted_targets

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def resolve_device(device) -> str:
    """Check a ``device`` argument and turn ``"auto"`` into a concrete device."""
    if device is None:
        return "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a device; use 'cpu', 'cuda', 'cuda:1' or 'auto'."
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available on this machine; "
                "use device='cpu' or device='auto'."
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(
                f"device={device!r} but this machine has {count} CUDA "
                f"device(s); use an index below {count} (e.g. device='cuda:0'), "
                "or device='auto'."
            )
    return str(parsed)


def resolve_optimizer(optimizer):
    """An optimizer class from a class or a name such as ``"adam"``."""
    if isinstance(optimizer, str):
        try:
            return _OPTIMIZERS[optimizer.lower()]
        except KeyError:
            raise ValueError(
                f"optimizer={optimizer!r} is unknown; use one of "
                f"{sorted(_OPTIMIZERS)} or a torch.optim.Optimizer subclass."
            ) from None
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer
    raise TypeError(
        f"optimizer must be a torch.optim.Optimizer subclass or a name, got "
        f"{optimizer!r}."
    )


_AUTOCAST_DTYPES = ("bfloat16", "float16")


def resolve_autocast(autocast, device_type: str):
    """The autocast dtype name for an ``autocast`` argument, or None (off):
    True picks bfloat16 on CPU and float16 on CUDA."""
    if autocast is None or autocast is False:
        return None
    if autocast is True:
        return "float16" if device_type == "cuda" else "bfloat16"
    name = autocast
    if isinstance(autocast, torch.dtype):
        name = str(autocast).removeprefix("torch.")
    if isinstance(name, str) and name in _AUTOCAST_DTYPES:
        return name
    raise ValueError(
        f"autocast={autocast!r} is not a mixed precision setting; use False, "
        "True (bfloat16 on CPU, float16 on CUDA), 'bfloat16' or 'float16'."
    )


def _explain_input_error(exc: ValueError, estimator) -> ValueError:
    """scikit-learn's error for X's columns or values, with the fix added."""
    message = str(exc).rstrip()
    if "features, but" in message and "is expecting" in message:
        n = getattr(estimator, "n_features_in_", None)
        fix = f"Pass X with the {n} columns the model was fit on, in that order."
    elif message.startswith("The feature names should match"):
        fix = "Pass X with the columns the model was fit on (same names, same order)."
    elif message.startswith("Input X contains infinity"):
        fix = "Replace the infinite values (e.g. clip them) or drop those rows."
    else:
        return exc
    return ValueError(f"{message}\n{fix}")


def check_fitted_X(estimator, X, **check_params):
    """``validate_data(estimator, X, reset=False, ...)``, whose errors for a
    wrong number of columns or wrong column names also give the fix."""
    try:
        return validate_data(estimator, X, reset=False, **check_params)
    except ValueError as exc:
        raise _explain_input_error(exc, estimator) from None


def _net_state(net) -> dict:
    """Copies of what training a fitted net changes (see ``_restore_net_state``)."""
    return {
        "module": copy.deepcopy(net.module_.state_dict()),
        "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
        "loss_weighter": copy.deepcopy(net.loss_weighter_.state_dict()),
        "settings": {
            k: getattr(net, k) for k in ("max_epochs", "verbose", "batch_size", "lr")
        },
    }


def _restore_net_state(net, state: dict) -> None:
    settings = state["settings"]
    if net.lr != settings["lr"]:
        net.set_params(lr=settings["lr"])
    net.max_epochs = settings["max_epochs"]
    net.verbose = settings["verbose"]
    net.batch_size = settings["batch_size"]
    net.module_.load_state_dict(state["module"])
    net.optimizer_.load_state_dict(state["optimizer"])
    net.loss_weighter_.load_state_dict(state["loss_weighter"])


def class_probabilities(out: torch.Tensor) -> np.ndarray:
    """(n, n_classes) probabilities from one task's output: a logit (n,) for
    a binary task, logits (n, C) for a multiclass one."""
    if out.ndim == 1:
        p = torch.sigmoid(out.double()).numpy()
        proba = np.empty((len(p), 2))
        proba[:, 1] = p
        np.subtract(1.0, p, out=proba[:, 0])
        return proba
    return torch.softmax(out.double(), dim=1).numpy()


def _name_of(y) -> str:
    """Name of a single-task target: a DataFrame's column or a Series' name."""
    columns = getattr(y, "columns", None)
    if columns is not None and len(columns) == 1:
        return str(columns[0])
    name = getattr(y, "name", None)
    return str(name) if name is not None else "task_0"


class NetEstimatorBase(BaseEstimator):
    """Base of the skorch-backed estimators.

    Subclasses define ``__init__`` (storing arguments only, with a trailing
    ``**kwargs`` for double-underscore routed parameters) and
    ``_build_module(specs, **input_spec) -> (module_class, module_params)``,
    where ``input_spec`` describes the model input (``n_features`` for a
    float matrix; see ``_fit_inputs``).

    Routed parameters (``optimizer__weight_decay``, ``loss_weighter__alpha``,
    ``module__...``, ``callbacks__...``, ``iterator_train__...``) are stored as
    attributes, reported by ``get_params`` and accepted by ``set_params``, so
    ``clone`` and ``GridSearchCV`` carry them. They are checked at ``fit``;
    a typo gets a "did you mean" error.
    """

    _routed_prefixes: tuple[str, ...] = (
        "module",
        "optimizer",
        "criterion",
        "callbacks",
        "iterator_train",
        "iterator_valid",
        "loss_weighter",
    )
    # Routed prefixes consumed by the module builder rather than by skorch.
    _module_prefixes: tuple[str, ...] = ()

    # What each parameter accepts, checked by ``fit`` before anything else
    # (params.validate_params); subclasses add their own parameters.
    _parameter_constraints: dict = {
        "loss_weighter": [Plugin("loss weighter")],
        "lr": [Real(0, None, closed="neither")],
        "max_epochs": [Integer(1)],
        "batch_size": [Integer(1)],
        "optimizer": [
            Options(sorted(_OPTIMIZERS), ignore_case=True),
            SubclassOf(torch.optim.Optimizer, "a torch.optim.Optimizer subclass"),
        ],
        "callbacks": [None, InstanceOf((list, tuple), description="a list")],
        "warm_start": [Boolean()],
        "verbose": [Boolean(), Integer(0)],
        # Parsed, and checked against the machine's devices, in _train.
        "device": [None, str, Integer(0), torch.device],
        "random_state": [
            None,
            Integer(0, 2**32 - 1),
            InstanceOf(np.random.RandomState, description="a numpy RandomState"),
        ],
        "train_split": [None, Callable()],
        "checkpoint_dir": [None, str, os.PathLike],
        "autocast": [
            Options(_AUTOCAST_DTYPES + (torch.bfloat16, torch.float16)),
            Boolean(),
            None,
        ],
        "accelerator": [None, InstanceOf("accelerate.Accelerator")],
        "early_stopping": [Options(["auto"]), Boolean()],
        "validation_fraction": [Real(0, 1, closed="neither")],
        "n_iter_no_change": [Integer(1)],
        "tol": [Real(0)],
        "lr_schedule": [Options(["plateau", "constant"])],
    }

    def _routed_for(self, prefix: str) -> dict:
        """The routed ``prefix__name`` parameters as ``{name: value}``."""
        head = prefix + "__"
        return {
            k[len(head) :]: v
            for k, v in self._routed_params().items()
            if k.startswith(head)
        }

    # ------------------------------------------------------------------ params
    def _routed_params(self) -> dict:
        names = set(self._get_param_names())
        return {
            k: v
            for k, v in vars(self).items()
            if k not in names and not k.startswith("_") and not k.endswith("_")
        }

    def get_params(self, deep: bool = True) -> dict:
        """Parameters of the estimator, routed ``prefix__name`` ones included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of sub-estimators, as in scikit-learn.

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep)
        params.update(self._routed_params())
        return params

    def set_params(self, **params):
        """Set parameters; unknown names are stored as routed parameters.

        Parameters
        ----------
        **params
            Constructor parameters are set as in scikit-learn; any other name
            (``optimizer__weight_decay``, ``gate__temperature``, ...) is stored
            as an attribute and checked at ``fit``.

        Returns
        -------
        self
        """
        names = set(self._get_param_names())
        own = {k: v for k, v in params.items() if k in names}
        super().set_params(**own)
        for key, value in params.items():
            if key not in names:
                setattr(self, key, value)
        return self

    def _check_routed_params(self) -> dict:
        routed = self._routed_params()
        valid_prefixes = [p + "__" for p in self._routed_prefixes]
        for key in routed:
            prefix, sep, _ = key.partition("__")
            if sep and prefix in self._routed_prefixes:
                continue
            candidates = list(self._get_param_names()) + valid_prefixes
            close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
            if not close and sep:
                close = difflib.get_close_matches(
                    prefix + "__", valid_prefixes, n=1, cutoff=0.6
                )
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{type(self).__name__} got an unknown parameter {key!r}.{hint} "
                f"Parameters are {sorted(self._get_param_names())}; components "
                f"are configured with the prefixes {valid_prefixes}."
            )
        return routed

    # ----------------------------------------------------------------- helpers
    def _seed(self) -> int:
        rng = check_random_state(self.random_state)
        return int(rng.randint(np.iinfo(np.int32).max))

    def _check_training_params(self) -> None:
        # Each parameter alone is checked by validate_params at fit; these
        # are the combinations it cannot see.
        accelerator = getattr(self, "accelerator", None)
        autocast = getattr(self, "autocast", False)
        if accelerator is not None:
            if autocast not in (None, False):
                raise ValueError(
                    "autocast and accelerator are both set; with an accelerator "
                    "choose mixed precision with "
                    "Accelerator(mixed_precision='bf16' or 'fp16') and keep "
                    "autocast=False."
                )
            world_size = os.environ.get("WORLD_SIZE", "1") or "1"
            try:
                launched = int(world_size)
            except ValueError:
                raise ValueError(
                    f"The environment variable WORLD_SIZE={world_size!r} is not "
                    "a number of processes; unset it, or launch with torchrun "
                    "or accelerate launch, which set it."
                ) from None
            if launched > 1 and getattr(accelerator, "num_processes", 1) == 1:
                raise ValueError(
                    f"This process was launched as one of {launched} "
                    "(WORLD_SIZE), but the accelerator runs a single process, "
                    "so every process would train a model of its own on all "
                    "the data. Without a GPU, create it with "
                    "Accelerator(cpu=True) (or set ACCELERATE_USE_CPU=1); see "
                    "docs/scaling.md."
                )
            if getattr(self, "checkpoint_dir", None) is not None:
                raise ValueError(
                    "checkpoint_dir is not supported together with an "
                    "accelerator; use accelerate's own Accelerator.save_state, "
                    "or set checkpoint_dir=None."
                )
        check_checkpoint_random_state(
            getattr(self, "checkpoint_dir", None), self.random_state
        )

    def _check_component_params(self, routed: dict, module_cls) -> None:
        """Check ``prefix__name`` keys against the component they configure."""
        if self.warm_start and hasattr(self, "net_"):
            # A fresh net reports an unknown name when it is built; a
            # continuation reports it before comparing settings with the net's.
            if isinstance(self.loss_weighter, str):
                get_loss_weighter(self.loss_weighter)
        targets = {
            "module": module_cls,
            "optimizer": resolve_optimizer(self.optimizer),
            "criterion": MultiTaskLoss,
            "iterator_train": TensorBatchIterator,
            "iterator_valid": TensorBatchIterator,
        }
        injected = {"module": (), "optimizer": ("params",), "criterion": ()}
        for key in routed:
            prefix, _, name = key.partition("__")
            target = targets.get(prefix)
            if target is None:  # loss_weighter__ is checked by the registry
                continue
            accepted = [
                p
                for p in inspect.signature(target).parameters
                if p not in injected.get(prefix, ("dataset",)) and p != "self"
            ]
            if prefix == "optimizer":
                accepted.append("param_groups")  # skorch's, by name pattern
            if name not in accepted:
                close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
                hint = f" Did you mean '{prefix}__{close[0]}'?" if close else ""
                raise ValueError(
                    f"{key!r} is not a parameter of {target.__name__}.{hint} It "
                    f"accepts {[f'{prefix}__{p}' for p in accepted]}."
                )

    def _net_config(self, module_cls, module_params, routed, device) -> dict:
        """What a net is built from; warm_start refuses to continue if it changed."""
        config = {
            "module": module_cls.__qualname__,
            **{f"module__{k}": v for k, v in module_params.items()},
            "optimizer": resolve_optimizer(self.optimizer).__qualname__,
            "loss_weighter": self.loss_weighter,
            "device": device,
            "autocast": resolve_autocast(
                getattr(self, "autocast", False),
                "cpu" if device is None else torch.device(device).type,
            ),
            "accelerator": getattr(self, "accelerator", None) is not None,
            **{
                k: v
                for k, v in routed.items()
                if not k.startswith(("callbacks__", "iterator_"))
            },
        }
        return {k: repr(v) for k, v in config.items()}

    # The skorch net class; a model with its own data path subclasses it.
    _net_class = MultiTaskNet
    # The net class used with an accelerate.Accelerator (AccelerateMixin).
    _accelerated_net_class = AcceleratedMultiTaskNet

    def _net_kwargs(self) -> dict:
        """Extra keyword arguments for the net (e.g. iterator settings)."""
        return {}

    def _build_net(
        self,
        module_cls,
        module_params,
        specs,
        device,
        routed,
        checkpointer=None,
        held_out=None,
    ):
        kwargs = {f"module__{k}": v for k, v in module_params.items()}
        kwargs.update(self._net_kwargs())
        kwargs.update(
            (k, v)
            for k, v in routed.items()
            if k.partition("__")[0] not in self._module_prefixes
        )
        callbacks = self.callbacks
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"callbacks must be a list of skorch callbacks or None, got "
                f"{callbacks!r}."
            )
        callbacks = list(callbacks) if callbacks is not None else []
        train_split = self.train_split
        if held_out is not None:  # early stopping on its own held-out rows
            train_split = held_out
            # First among the user's callbacks, so that theirs can read the
            # epoch's valid_task_loss; lr_schedule's own scheduler comes next
            # (none when the user brings an LRScheduler).
            callbacks.insert(0, (CALLBACK_NAME, early_stopping_callback(self)))
            schedule = lr_schedule_callback(self)
            if schedule is not None:
                callbacks.insert(1, (SCHEDULE_NAME, schedule))
        accelerator = getattr(self, "accelerator", None)
        if (
            accelerator is None
            and resolve_optimizer(self.optimizer)
            in (torch.optim.Adam, torch.optim.AdamW)
            and not {
                "optimizer__fused",
                "optimizer__foreach",
                "optimizer__differentiable",  # which the fused kernel refuses
            }
            & set(kwargs)
        ):
            # The fused Adam kernel (CPU and CUDA) updates every parameter in
            # one pass instead of a dozen small ops per tensor: a model with
            # many small tensors (AutoTask) spent 14% of a fit in Adam.step.
            # Under accelerate the parameters move after the optimizer is
            # built, so its default stays.
            kwargs["optimizer__fused"] = True
        if accelerator is not None:
            # Placement is left to accelerate (skorch needs device=None).
            net_class, device = self._accelerated_net_class, None
            kwargs["accelerator"] = accelerator
        else:
            net_class = self._net_class
            kwargs["autocast"] = resolve_autocast(
                getattr(self, "autocast", False), torch.device(device).type
            )
        return net_class(
            module_cls,
            task_kinds=[s.kind for s in specs],
            task_names=[s.name for s in specs],
            loss_weighter=self.loss_weighter,
            optimizer=resolve_optimizer(self.optimizer),
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            callbacks=callbacks or None,
            train_split=train_split,
            warm_start=True,
            verbose=int(self.verbose),
            device=device,
            checkpointer=checkpointer,
            **kwargs,
        )

    def _train(self, X, Y: np.ndarray, specs: list[TaskSpec], input_spec: dict):
        """Build (or, with ``warm_start``, reuse) the net and train it.

        Returns ``(net, config)``; the caller stores them, so a failure before
        training leaves a fitted estimator unchanged. The checks and the
        seeding are shared; the training itself is one of three paths: a
        warm-start continuation of ``net_`` (``_continue_warm_start``), a fit
        that checkpoints to ``checkpoint_dir`` and resumes from it
        (``_resume_from_checkpoint``), or a fresh fit (``_train_fresh``).
        """
        routed = self._check_routed_params()
        self._check_training_params()
        accelerator = getattr(self, "accelerator", None)
        device = None if accelerator is not None else resolve_device(self.device)
        module_cls, module_params = self._build_module(specs, **input_spec)
        self._check_component_params(routed, module_cls)
        config = self._net_config(module_cls, module_params, routed, device)
        resume = self.warm_start and hasattr(self, "net_")
        if resume:
            if accelerator is not None:
                raise ValueError(
                    "warm_start=True continuation is not supported with an "
                    "accelerator; fit with warm_start=False."
                )
            self._check_warm_start_compatible(specs, config)
        # A continuation draws a new seed (offset by the epochs done), so it
        # does not replay the shuffles and dropout masks of the first fit.
        done = len(self.net_.history) if resume else 0
        place = torch.device(device if device is not None else accelerator.device)
        cuda = cuda_rng_devices(place)
        checkpoint_dir = getattr(self, "checkpoint_dir", None)
        checkpointer = None
        if checkpoint_dir is not None and not resume:
            # Before the seed is drawn (which advances a RandomState).
            key = fingerprint(self.get_params(deep=False), X, Y)
            checkpointer = Checkpointer(checkpoint_dir, key, cuda)
        first_seed = self._seed()
        seed = (first_seed + done) % np.iinfo(np.int32).max
        held_out = None
        if early_stopping_on(self, len(Y)):
            # From its own generator, so the torch and numpy draws of training
            # are the same as without it; seeded like the first fit (not
            # offset by the epochs done), so a continuation on the same data
            # holds out the same rows and validates on rows it never trained on.
            rows = validation_rows(
                Y, [s.kind for s in specs], float(self.validation_fraction), first_seed
            )
            held_out = HeldOutRows(rows)
        build = {
            "module_cls": module_cls,
            "module_params": module_params,
            "specs": specs,
            "device": device,
            "routed": routed,
            "held_out": held_out,
        }
        # numpy's and Python's global generators are seeded too (a random
        # train_split draws from numpy's), and put back after the fit.
        with torch.random.fork_rng(devices=cuda), seeded_global_generators(seed):
            torch.manual_seed(seed)
            if resume:
                net = self._continue_warm_start(X, Y, held_out)
            elif checkpointer is not None:
                net = self._resume_from_checkpoint(build, checkpointer, X, Y)
            else:
                net = self._train_fresh(build, X, Y)
        # The held-out rows are this fit's: a fitted net does not keep them
        # (they are drawn again for a continuation's data).
        net.train_split = self.train_split
        return net, config

    def _new_net(self, build: dict, Y: np.ndarray, checkpointer=None):
        """A new initialized net from ``build`` (``_build_net``'s arguments),
        its loss weighter prepared for the targets ``Y``."""
        net = self._build_net(**build, checkpointer=checkpointer)
        net.initialize()
        kinds = [s.kind for s in build["specs"]]
        # The weighter reads labels only: a weighted target's weight columns
        # are left out, and a label of weight 0 is as if missing.
        labels = counted_targets(Y, len(kinds))
        call_hook(net.loss_weighter_, "prepare", labels, kinds)
        self._check_accelerated_net(net)
        return net

    def _train_fresh(self, build: dict, X, Y: np.ndarray):
        """Train a new net for ``max_epochs`` epochs."""
        net = self._new_net(build, Y)
        net.partial_fit(X, Y)
        return net

    def _resume_from_checkpoint(self, build: dict, checkpointer, X, Y: np.ndarray):
        """Train a new net that writes a checkpoint after every epoch; when
        ``checkpointer`` finds one of this fit, start from it and train only
        the remaining epochs (none if it is complete)."""
        net = self._new_net(build, Y, checkpointer=checkpointer)
        try:
            state = checkpointer.load()
            epochs_done = 0
            if state is not None:
                epochs_done = checkpointer.restore(net, state)
                if state["complete"]:
                    return net
            # After an early stop no epoch is left, but partial_fit still
            # runs the callbacks' on_train_end (EarlyStopping's load_best).
            remaining = 0 if checkpointer.stopped else self.max_epochs
            net.partial_fit(X, Y, epochs=max(remaining - epochs_done, 0))
        finally:
            # A fitted net keeps no checkpointer (pickling, clone, joblib).
            net.checkpointer = None
        # Marked complete only if training really ended (not after a
        # KeyboardInterrupt): then the same fit later resumes.
        checkpointer.finish(net, self.max_epochs)
        return net

    def _continue_warm_start(self, X, Y: np.ndarray, held_out=None):
        """Train the fitted ``net_`` further (``warm_start=True``) with the
        current ``max_epochs``, ``verbose``, ``batch_size`` and ``lr``, and
        early stopping on ``held_out`` (rows of this call's data) or none."""
        net = self.net_
        done = len(net.history)
        # A continuation that fails part-way must leave the fitted model as
        # it was: keep its weights, optimizer state and settings to put back.
        saved = _net_state(net)
        callbacks = list(net.callbacks_)
        net.max_epochs = self.max_epochs
        net.verbose = int(self.verbose)
        net.batch_size = self.batch_size
        if net.lr != self.lr or SCHEDULE_NAME in dict(net.callbacks_):
            # Also after lr_schedule's cuts: a continuation starts at lr.
            net.set_params(lr=self.lr)
        self._set_continuation_early_stopping(net, held_out)
        try:
            net.partial_fit(X, Y)
        except BaseException:  # drop the unfinished epoch's rows, restore the rest
            del net.history[done:]
            _restore_net_state(net, saved)
            net.callbacks_[:] = callbacks
            raise
        return net

    def _set_continuation_early_stopping(self, net, held_out) -> None:
        """Point a continuation's early stopping (and ``lr_schedule``) at
        ``held_out`` with the current settings (adding the callbacks if the
        first fit had none), or make them inert when this continuation does
        not stop early."""
        net.train_split = held_out if held_out is not None else self.train_split
        named = dict(net.callbacks_)
        callback = named.get(CALLBACK_NAME)
        schedule = named.get(SCHEDULE_NAME)
        wanted = lr_schedule_callback(self) if held_out is not None else None
        if schedule is not None:
            schedule.active = wanted is not None
            if wanted is not None:
                schedule.set_params(threshold=wanted.threshold)
        if held_out is None:
            if callback is not None:
                callback.active = False
            return
        fresh = early_stopping_callback(self)
        if callback is None:
            fresh.initialize()
            # After skorch's own epoch bookkeeping (timer, losses), before
            # the user's callbacks and the epoch table, as in a fresh fit.
            names = [name for name, _ in net.callbacks_]
            builtin = {"epoch_timer", "train_loss", "valid_loss"}
            at = max((i + 1 for i, n in enumerate(names) if n in builtin), default=0)
            net.callbacks_.insert(at, (CALLBACK_NAME, fresh))
        else:
            callback.set_params(
                patience=fresh.patience, threshold=fresh.threshold, sink=fresh.sink
            )
            callback.active = True
        if wanted is not None and schedule is None:
            # Right after early stopping, which records the loss it reads.
            wanted.initialize()
            names = [name for name, _ in net.callbacks_]
            net.callbacks_.insert(
                names.index(CALLBACK_NAME) + 1, (SCHEDULE_NAME, wanted)
            )

    @staticmethod
    def _check_accelerated_net(net) -> None:
        if getattr(net, "accelerator", None) is None:
            return
        if getattr(net.loss_weighter_, "combine_gradients", None) is not None:
            raise ValueError(
                f"The loss weighter {type(net.loss_weighter_).__name__} combines "
                "per-task gradients itself, which accelerate's training step "
                "does not support; use a loss-level weighter (e.g. 'uniform', "
                "'uncertainty') with an accelerator, or accelerator=None."
            )
        processes = getattr(net.accelerator, "num_processes", 1)
        if processes > 1 and getattr(net.loss_weighter_, "step_end", None):
            raise ValueError(
                f"The loss weighter {type(net.loss_weighter_).__name__} updates "
                "its task weights after every step from this process's own "
                f"losses, so {processes} processes would end with different "
                "weights; use a loss-level weighter without step_end (e.g. "
                "'uniform', 'uncertainty', 'dwa') for multi-process training, "
                "or train it in one process."
            )

    def _check_warm_start_compatible(self, specs, config) -> None:
        old = getattr(self, "_train_specs_", self.task_specs_)
        same = len(old) == len(specs) and all(
            a.name == b.name
            and a.kind == b.kind
            and (a.classes is None) == (b.classes is None)
            and (a.classes is None or np.array_equal(a.classes, b.classes))
            for a, b in zip(old, specs)
        )
        if not same:
            raise ValueError(
                "warm_start=True continues training the fitted net, but the new "
                "y has different tasks or classes; fit with warm_start=False to "
                "start over."
            )
        changed = sorted(
            k
            for k in set(config) | set(self._net_config_)
            if config.get(k) != self._net_config_.get(k)
        )
        if changed:
            raise ValueError(
                "warm_start=True continues training the fitted net, but what it "
                f"is built from changed: {changed} (module__n_features is the "
                "number of columns of X). Fit with warm_start=False to build a "
                "new net, or restore those parameters."
            )

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Validate X and y, build the skorch net (``net_``) and train it.

        A call that fails before training leaves an already fitted estimator
        as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs, in the form the estimator takes.
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            Targets, in the form the estimator takes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row in the training loss (times the
            ``class_weight`` of its label in each task): each task's loss is
            the weighted mean over its labelled rows, so a row of weight 0
            contributes nothing and an integer weight counts like that many
            copies of the row. None weighs every row 1. In a ``Pipeline``
            pass it as ``<step>__sample_weight``; with metadata routing,
            request it with ``set_fit_request(sample_weight=True)``.
        **fit_params
            Extra arguments the estimator's training accepts; the tabular
            classifiers accept none and raise TypeError.

        Returns
        -------
        self
        """
        validate_params(self)
        saved = {k: v for k, v in vars(self).items() if k.endswith("_")}
        try:
            if sample_weight is not None:
                fit_params["sample_weight"] = sample_weight
            return self._fit(X, y, **fit_params)
        except BaseException:
            for key in [k for k in vars(self) if k.endswith("_")]:
                delattr(self, key)
            vars(self).update(saved)
            raise

    def __sklearn_clone__(self):
        # An Accelerator is a handle on this process's devices and process
        # group: a clone shares it rather than holding a deep copy.
        accelerator = getattr(self, "accelerator", None)
        if accelerator is None:
            return super().__sklearn_clone__()
        self.accelerator = None
        try:
            clone = super().__sklearn_clone__()
        finally:
            self.accelerator = accelerator
        clone.accelerator = accelerator
        return clone

    def __getstate__(self):
        state = super().__getstate__()
        if state.get("accelerator") is None:
            return state
        # A pickle does not carry the accelerator (it belongs to the running
        # process); the loaded estimator has accelerator=None, and its net
        # predicts on the device the model was trained on.
        state = dict(state, accelerator=None)
        net = state.get("net_")
        if getattr(net, "accelerator", None) is not None:
            # The estimator's plain net class, so that skorch's own methods
            # on the loaded net do not reach for the missing accelerator.
            twin = object.__new__(self._net_class)
            twin.__dict__.update(net.__dict__)
            twin.__dict__.pop("accelerator", None)
            # The model's own device, for loading (skorch warns on None).
            twin.__dict__["device"] = str(net.data_device())
            state["net_"] = twin
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
