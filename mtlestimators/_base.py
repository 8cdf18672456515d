"""The estimator base shared by every model: a scikit-learn estimator whose
``fit`` builds and trains a skorch net (:class:`MultiTaskNet`) stored as
``net_``."""

from __future__ import annotations

import difflib
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._net import MultiTaskNet
from ._targets import (
    TaskSpec,
    drop_unlabelled_rows,
    encode_targets,
    missing_mask,
    resolve_tasks,
    task_names_of,
)

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
            raise ValueError(
                f"device={device!r} but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
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


class NetEstimatorBase(BaseEstimator):
    """Base of the skorch-backed estimators.

    Subclasses define ``__init__`` (storing arguments only, with a trailing
    ``**kwargs`` for double-underscore routed parameters) and
    ``_build_module(n_features, specs) -> (module_class, module_params)``.

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

    # ------------------------------------------------------------------ params
    def _routed_params(self) -> dict:
        names = set(self._get_param_names())
        return {
            k: v
            for k, v in vars(self).items()
            if k not in names and not k.startswith("_") and not k.endswith("_")
        }

    def get_params(self, deep: bool = True) -> dict:
        params = super().get_params(deep=deep)
        params.update(self._routed_params())
        return params

    def set_params(self, **params):
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
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            if (
                not isinstance(value, numbers.Integral)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.lr, numbers.Real) or not self.lr > 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")

    def _build_net(self, module_cls, module_params, specs, device, routed):
        kwargs = {f"module__{k}": v for k, v in module_params.items()}
        kwargs.update(routed)
        callbacks = self.callbacks
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"callbacks must be a list of skorch callbacks or None, got "
                f"{callbacks!r}."
            )
        return MultiTaskNet(
            module_cls,
            task_kinds=[s.kind for s in specs],
            loss_weighter=self.loss_weighter,
            optimizer=resolve_optimizer(self.optimizer),
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            callbacks=list(callbacks) if callbacks is not None else None,
            warm_start=True,
            verbose=int(self.verbose),
            device=device,
            **kwargs,
        )

    def _train(self, X: np.ndarray, Y: np.ndarray, specs: list[TaskSpec]):
        """Build (or, with ``warm_start``, reuse) the net and train it.

        Returns the trained net; the caller stores it, so a failure before
        training leaves a fitted estimator unchanged.
        """
        routed = self._check_routed_params()
        self._check_training_params()
        device = resolve_device(self.device)
        resume = self.warm_start and hasattr(self, "net_")
        if resume:
            self._check_warm_start_compatible(X, specs)
        seed = self._seed()
        cuda = [torch.device(device).index or 0] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            if resume:
                net = self.net_
                net.max_epochs = self.max_epochs
                net.verbose = int(self.verbose)
                net.batch_size = self.batch_size
                if net.lr != self.lr:
                    net.set_params(lr=self.lr)
            else:
                module_cls, module_params = self._build_module(X.shape[1], specs)
                net = self._build_net(module_cls, module_params, specs, device, routed)
                net.initialize()
                net.loss_weighter_.prepare(Y, [s.kind for s in specs])
            net.partial_fit(X, Y)
        return net

    def _check_warm_start_compatible(self, X, specs) -> None:
        old = self.task_specs_
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

    def _task_outputs(self, X) -> tuple[torch.Tensor, ...]:
        return self.net_.task_outputs(X)

    def fit(self, X, y, **fit_params):
        """Validate X and y, build the skorch net (``net_``) and train it.

        Returns self. A call that fails before training leaves an already
        fitted estimator as it was.
        """
        saved = {k: v for k, v in vars(self).items() if k.endswith("_")}
        try:
            return self._fit(X, y, **fit_params)
        except BaseException:
            for key in [k for k in vars(self) if k.endswith("_")]:
                delattr(self, key)
            vars(self).update(saved)
            raise

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class MultiTaskClassifierBase(ClassifierMixin, NetEstimatorBase):
    """Base of the tabular multi-task classifiers.

    ``y`` is 1-D (one task: binary or multiclass, any label type) or 2-D
    (n, K) with one binary task per column and NaN/None as a missing label.
    ``predict_proba`` returns (n, n_classes) for one task and (n, K) positive
    class probabilities for K > 1 tasks.
    """

    def _validate_xy(self, X, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target "
                "y is None."
            )
        X, y = validate_data(
            self,
            X,
            y,
            validate_separately=(
                {"dtype": [np.float32, np.float64], "ensure_min_features": 1},
                {
                    "dtype": None,
                    "ensure_2d": False,
                    "ensure_all_finite": "allow-nan",
                    "ensure_min_samples": 1,
                },
            ),
        )
        if len(X) != len(y):
            raise ValueError(
                f"X has {len(X)} rows but y has {len(y)}; give one label row per "
                "sample."
            )
        return X.astype(np.float32, copy=False), y

    def _fit(self, X, y_input, **fit_params):
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit got unexpected arguments "
                f"{sorted(fit_params)}."
            )
        X, y = self._validate_xy(X, y_input)
        multi = y.ndim == 2 and y.shape[1] > 1
        y2 = y.reshape(len(y), -1)
        if y2.ndim != 2 or y2.shape[1] == 0:
            raise ValueError(f"y must be 1-D or 2-D (n, n_tasks), got {y.shape}.")
        keep = drop_unlabelled_rows(y2)
        X, y2 = X[keep], y2[keep]
        names = task_names_of(y_input, y2.shape[1]) if multi else ["task_0"]
        missing = missing_mask(y2)
        for k, name in enumerate(names):
            labelled = y2[~missing[:, k], k]
            if multi and labelled.size == 0:
                continue  # resolve_tasks names the empty task
            try:
                check_classification_targets(labelled)
            except ValueError as exc:
                raise ValueError(
                    f"Task {name!r}: {exc} A classifier needs class labels; "
                    "regression targets belong to a regression task."
                ) from None
        specs = resolve_tasks(y2, names)
        if multi:
            for spec in specs:
                if spec.kind != "binary":
                    raise ValueError(
                        f"Task {spec.name!r} has {len(spec.classes)} classes; "
                        "with several tasks (2-D y) every task must be binary. "
                        "Fit a multiclass task alone as 1-D y."
                    )
        Y = encode_targets(y2, specs)
        net = self._train(X, Y, specs)

        self.net_ = net
        self.history_ = net.history
        self.task_specs_ = specs
        self.n_tasks_ = len(specs)
        self.task_names_ = np.asarray(names, dtype=object)
        self.classes_ = [s.classes for s in specs] if multi else specs[0].classes
        return self

    def _multi(self) -> bool:
        return isinstance(self.classes_, list)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities: (n, n_classes) for one task, (n, K) positive
        class probabilities for K tasks."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        outputs = self._task_outputs(X.astype(np.float32, copy=False))
        if self._multi():
            return np.column_stack([torch.sigmoid(o.double()).numpy() for o in outputs])
        (out,) = outputs
        if out.ndim == 1:
            p = torch.sigmoid(out.double()).numpy()
            return np.column_stack([1.0 - p, p])
        return torch.softmax(out.double(), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_``: (n,) for one task, (n, K) for K tasks."""
        proba = self.predict_proba(X)
        if self._multi():
            index = (proba > 0.5).astype(int)
            return np.column_stack(
                [c[index[:, k]] for k, c in enumerate(self.classes_)]
            )
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy; with K > 1 tasks, the mean over tasks of each task's
        accuracy on its labelled rows (missing labels are skipped)."""
        if not self._multi():
            return super().score(X, y, sample_weight=sample_weight)
        y = np.asarray(y, dtype=object).reshape(len(y), -1)
        pred = self.predict(X)
        weights = None if sample_weight is None else np.asarray(sample_weight)
        missing = missing_mask(y)
        accuracies = []
        for k in range(y.shape[1]):
            rows = ~missing[:, k]
            hits = (pred[rows, k] == y[rows, k]).astype(float)
            w = None if weights is None else weights[rows]
            accuracies.append(np.average(hits, weights=w) if rows.any() else np.nan)
        return float(np.nanmean(accuracies))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.classifier_tags.multi_label = True
        return tags
