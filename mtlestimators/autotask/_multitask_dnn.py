"""The AutoTask paper's production baseline (section 4.2.1): a multi-task DNN
with shared fully connected layers, one branch per task trained on that
task's rows, and a general branch trained on every row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._core.base import class_probabilities
from .._core.layers import mlp, out_width
from .._core.params import Options, Real, Units, check_param
from .._core.targets import TaskSpec
from ._scenario import UNSEEN_TASK, ScenarioClassifierBase

BRANCHES = ("task", "general")


class BranchLayer(nn.Module):
    """One linear layer per branch, applied to each row with its own branch's
    weights (a gathered batched matmul, not a loop over branches)."""

    # Stacked linear weights, decayed like nn.Linear's (_core/net.py).
    decayed_parameters = ("weight",)

    def __init__(self, n_branches: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / in_features**0.5
        self.weight = nn.Parameter(
            torch.empty(n_branches, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(
            torch.empty(n_branches, out_features).uniform_(-bound, bound)
        )

    def forward(self, h: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        # Rows pick their branch's weights through a one-hot matmul rather
        # than indexing: indexing's backward accumulates with index_put,
        # whose order is not deterministic on several threads.
        n_branches, n_in, n_out = self.weight.shape
        onehot = torch.nn.functional.one_hot(branch, n_branches).to(h.dtype)
        weight = (onehot @ self.weight.view(n_branches, -1)).view(-1, n_in, n_out)
        out = torch.bmm(h.unsqueeze(1), weight).squeeze(1)
        return out + onehot @ self.bias


class MultiTaskDNNModule(nn.Module):
    """Shared layers, then N + 1 branches (branch 0 is the general one).

    ``forward(features, task)`` returns ``(task_branch, general_branch)``
    outputs: the branch of each row's task (the general branch for code 0,
    an unseen task) and the general branch.
    """

    def __init__(
        self,
        n_features: int,
        n_tasks: int,
        output_dim: int = 1,
        shared_units: Sequence[int] = (128, 64),
        branch_units: Sequence[int] = (32,),
        dropout: float = 0.0,
    ):
        super().__init__()
        self.shared = mlp(n_features, shared_units, dropout)
        widths = [out_width(n_features, shared_units), *branch_units, output_dim]
        self.branch_layers = nn.ModuleList(
            BranchLayer(n_tasks + 1, a, b) for a, b in zip(widths[:-1], widths[1:])
        )
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def branch(self, h: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.branch_layers):
            if i:
                h = self.drop(self.act(h))
            h = layer(h, branch)
        return h.squeeze(-1) if h.shape[-1] == 1 else h

    def forward(self, features: torch.Tensor, task: torch.Tensor):
        h = self.shared(features)
        general = torch.full_like(task, UNSEEN_TASK)
        return self.branch(h, task), self.branch(h, general)


class MultiTaskDNNClassifier(ScenarioClassifierBase):
    """Multi-task DNN baseline of the AutoTask paper (section 4.2.1).

    Shared fully connected layers feed one branch per task, trained on that
    task's rows, and a general branch trained on the rows of every task. The
    task id (``task_column`` of X) selects the branch and is not a feature.
    ``branch="task"`` predicts with each row's task branch (the general
    branch for a task not seen in fit); ``branch="general"`` uses the general
    branch for every row. ``branch`` only affects prediction, so it can be
    changed on a fitted model.

    The loss is the mean over rows of the task branches' loss plus the mean
    over rows of the general branch's loss.

    Parameters
    ----------
    task_column : int or str, default=-1
    branch : {"task", "general"}, default="task"
    shared_units : tuple of int, default=(128, 64)
    branch_units : tuple of int, default=(32,)
        Hidden widths of each branch before its output layer.
    dropout : float, default=0.0
    standardize : bool, default=True
    lr : float, default=1e-3
    max_epochs : int, default=100
    batch_size : int, default=256
    optimizer, callbacks, warm_start, verbose, device, random_state, train_split,
    checkpoint_dir, autocast, accelerator, early_stopping, validation_fraction,
    n_iter_no_change, tol, class_weight
        As for every estimator of the library.
    **kwargs
        Routed parameters: ``optimizer__*``, ``module__*``, ...

    Attributes
    ----------
    tasks_, n_tasks_, classes_, class_weight_, feature_mean_, feature_scale_,
    net_, history_
        As for :class:`~mtlestimators.AutoTaskClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlestimators import MultiTaskDNNClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = np.column_stack([rng.normal(size=(300, 3)), rng.randint(3, size=300)])
    >>> y = (X[:, 0] > 0).astype(int)
    >>> dnn = MultiTaskDNNClassifier(max_epochs=3, verbose=0, random_state=0)
    >>> dnn.fit(X, y).set_params(branch="general").predict(X[:4]).shape
    (4,)
    """

    _parameter_constraints = {
        "branch": [Options(BRANCHES)],
        "shared_units": [Units()],
        "branch_units": [Units()],
        "dropout": [Real(0, 1, closed="left")],
    }

    def __init__(
        self,
        task_column=-1,
        branch: str = "task",
        shared_units: Sequence[int] = (128, 64),
        branch_units: Sequence[int] = (32,),
        dropout: float = 0.0,
        standardize: bool = True,
        lr: float = 1e-3,
        max_epochs: int = 100,
        batch_size: int = 256,
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
        class_weight=None,
        **kwargs,
    ):
        self.task_column = task_column
        self.branch = branch
        self.shared_units = shared_units
        self.branch_units = branch_units
        self.dropout = dropout
        self.standardize = standardize
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
        self.class_weight = class_weight
        vars(self).update(kwargs)

    def _check_branch(self) -> None:
        # Read at predict too, where it may have been set after fit.
        check_param("branch", self.branch, self._parameter_constraints["branch"])

    def _export_output(self) -> tuple[int, dict[str, str]]:
        """The module output an exported graph serves (0: task branch, 1:
        general branch) and the metadata that says which."""
        self._check_branch()
        return BRANCHES.index(self.branch), {"mtlestimators.branch": self.branch}

    def _build_module(self, specs, n_features, n_tasks):
        return MultiTaskDNNModule, {
            "n_features": n_features,
            "n_tasks": n_tasks,
            "output_dim": specs[0].output_dim,
            "shared_units": tuple(int(u) for u in self.shared_units),
            "branch_units": tuple(int(u) for u in self.branch_units),
            "dropout": float(self.dropout),
        }

    def _fit_targets(self, Y, specs, inputs, keep, fit_params):
        Y, specs = super()._fit_targets(Y, specs, inputs, keep, fit_params)
        label = Y[:, 0]
        seen = inputs["task"] != UNSEEN_TASK
        own = np.where(seen, label, np.nan).astype(np.float32)
        (spec,) = specs
        train_specs = [
            TaskSpec("task_branch", spec.kind, spec.classes),
            TaskSpec("general_branch", spec.kind, spec.classes),
        ]
        return np.column_stack([own, label]), train_specs

    def _fit_weights(self, W, specs, train_specs, inputs):
        # Both branches train on the row's one label: each gets its weight
        # (the task branch none on the rows of unseen tasks, which it skips).
        seen = inputs["task"] != UNSEEN_TASK
        own = np.where(seen, W[:, 0], 0.0).astype(np.float32)
        return np.column_stack([own, W[:, 0]])

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, n_classes) from the branch ``branch`` selects.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The features and the task id column ``task_column``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        self._check_branch()
        check_is_fitted(self)
        own, general = self.net_.task_outputs(
            self._predict_inputs(X), batch_size=self.batch_size
        )
        return class_probabilities(own if self.branch == "task" else general)

    def predict(self, X) -> np.ndarray:
        """Labels from ``classes_`` (n,), from the branch ``branch`` selects.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The features and the task id column ``task_column``.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
