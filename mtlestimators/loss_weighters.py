"""Loss weighters: turn the (K,) vector of per-task losses into one scalar.

Every weighter is a :class:`torch.nn.Module` built as ``cls(n_tasks, **params)``
and registered under the entry-point group ``mtlestimators.loss_weighters``
(the built-ins below are registered by this package's own ``pyproject.toml``).
Its parameters, if any, train with the model.

``forward`` may take a keyword argument ``labelled``: a (K,) bool tensor,
True where the task has at least one labelled row in the batch. A task without
one has loss 0; weighters whose other terms would still act on it (such as
``uncertainty``'s ``log sigma``) use the mask to leave it out.

Optional hooks
--------------
``prepare(y, task_kinds)`` is called once at the start of a fresh fit with the
encoded training targets (float array (n, K), NaN where missing; class indices
for classification tasks) and the kind of each task. Statistics it keeps must
live in buffers so they follow device moves, ``state_dict`` and pickling.

``combine_gradients(losses, *, shared_parameters, task_parameters, labelled,
regularization, representation)`` replaces the backward pass of a training
step: a weighter that defines it (see :class:`GradientWeighter`) gets the
per-task losses with their graph and must leave ``.grad`` set on every
parameter; it returns the loss value to log.

``epoch_end()`` is called after every training epoch (``dwa`` uses it to turn
the epoch's mean task losses into the next epoch's weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "LossWeighter",
    "UniformWeighter",
    "PseudoUniformWeighter",
    "UncertaintyWeighter",
    "DWAWeighter",
    "RLWWeighter",
    "GradientWeighter",
    "FAMOWeighter",
]


class LossWeighter(nn.Module):
    """Base class: ``forward(losses)`` maps per-task losses (K,) to a scalar."""

    def __init__(self, n_tasks: int):
        super().__init__()
        if int(n_tasks) < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks!r}.")
        self.n_tasks = int(n_tasks)

    def prepare(self, y: np.ndarray, task_kinds: Sequence[str]) -> None:
        """Hook called at fit start with the training targets; no-op here.

        Parameters
        ----------
        y : ndarray of shape (n_samples, n_tasks)
            The encoded training targets, float, NaN where a label is missing
            (class indices for classification tasks).
        task_kinds : sequence of str
            Each task's kind: ``"binary"``, ``"multiclass"`` or
            ``"regression"``.
        """

    def _check(self, losses: torch.Tensor) -> None:
        assert losses.shape == (self.n_tasks,), (losses.shape, self.n_tasks)

    def extra_repr(self) -> str:
        return f"n_tasks={self.n_tasks}"


class UniformWeighter(LossWeighter):
    """Weighted sum ``sum_k w_k L_k`` with fixed weights (all 1 by default).

    The total is linear in the losses: ``total(c L) = c total(L)``.

    Parameters
    ----------
    n_tasks : int
    weights : sequence of float, optional
        The fixed task weights ``w_k`` (MSSM paper, eq. 4); default all ones.
    """

    def __init__(self, n_tasks: int, weights: Sequence[float] | None = None):
        super().__init__(n_tasks)
        if weights is None:
            weights = np.ones(self.n_tasks)
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (self.n_tasks,) or not np.all(np.isfinite(weights)):
            raise ValueError(
                f"weights must be {self.n_tasks} finite numbers (one per task), "
                f"got {weights.tolist()}."
            )
        self.register_buffer("weights", torch.from_numpy(weights))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """The weighted sum ``sum_k w_k L_k``.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        return (self.weights * losses).sum()


class PseudoUniformWeighter(LossWeighter):
    """Pseudo-uniform scaling (gallery paper, section 3.3).

    Weight 1 for classification tasks and ``1 / var(y_k)`` for regression
    task k, with ``var`` the sample variance (ddof=1) of the task's labelled
    training targets, so every regression loss is on the scale of a unit
    variance target. With those statistics fixed (by ``prepare``), the total
    is linear in the losses: ``total(c L) = c total(L)``.

    Parameters
    ----------
    n_tasks : int
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.register_buffer("scale", torch.ones(self.n_tasks))

    def prepare(self, y: np.ndarray, task_kinds: Sequence[str]) -> None:
        """Set each regression task's weight to ``1 / var`` of its labelled
        targets; raises ValueError for a regression task of zero variance.

        Parameters
        ----------
        y : ndarray of shape (n_samples, n_tasks)
            The encoded training targets, float, NaN where a label is missing
            (class indices for classification tasks).
        task_kinds : sequence of str
            Each task's kind: ``"binary"``, ``"multiclass"`` or
            ``"regression"``.
        """
        scale = np.ones(self.n_tasks, dtype=np.float32)
        for k, kind in enumerate(task_kinds):
            if kind != "regression":
                continue
            values = y[:, k][~np.isnan(y[:, k])]
            variance = float(np.var(values, ddof=1)) if values.size > 1 else 0.0
            if not variance > 0.0:
                raise ValueError(
                    f"Regression task {k} has zero variance in the training "
                    "labels, so pseudo-uniform weighting (1/variance) is "
                    "undefined; drop the constant task or use "
                    "loss_weighter='uniform'."
                )
            scale[k] = 1.0 / variance
        self.scale.copy_(torch.from_numpy(scale))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """The scaled sum ``sum_k scale_k L_k``.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        return (self.scale * losses).sum()


class UncertaintyWeighter(LossWeighter):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018),
    in the form the gallery paper writes it (section 3.3, eq. 2)::

        L = sum_{classification} L_k / sigma_k^2
          + sum_{regression} L_k / (2 sigma_k^2)
          + sum_k log sigma_k

    The learned parameter is ``log_variance = log sigma^2`` (the stable
    parametrization of Kendall et al., section 3.2), so
    ``1/sigma^2 = exp(-log_variance)`` and ``log sigma = log_variance / 2``.

    For a fixed ``log_variance`` the total is affine, not homogeneous, in the
    losses: ``total(c L) - total(0) = c (total(L) - total(0))`` for c > 0,
    where ``total(0) = sum_k log sigma_k`` (over the tasks marked in
    ``labelled`` when it is given).

    Parameters
    ----------
    n_tasks : int
    init_log_variance : float, default=0.0
        Starting value of every ``log sigma_k^2`` (0 means weight 1).
    """

    def __init__(self, n_tasks: int, init_log_variance: float = 0.0):
        super().__init__(n_tasks)
        self.log_variance = nn.Parameter(
            torch.full((self.n_tasks,), float(init_log_variance))
        )
        self.register_buffer("factor", torch.ones(self.n_tasks))

    def prepare(self, y: np.ndarray, task_kinds: Sequence[str]) -> None:
        """Set the factor of each task's loss: 1/2 for a regression task
        (``L_k / (2 sigma_k^2)``), 1 for the others.

        Parameters
        ----------
        y : ndarray of shape (n_samples, n_tasks)
            The encoded training targets, float, NaN where a label is missing
            (class indices for classification tasks).
        task_kinds : sequence of str
            Each task's kind: ``"binary"``, ``"multiclass"`` or
            ``"regression"``.
        """
        factor = [0.5 if kind == "regression" else 1.0 for kind in task_kinds]
        self.factor.copy_(torch.tensor(factor))

    def forward(
        self, losses: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The uncertainty-weighted total (eq. 2 of the gallery paper).

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.
        labelled : bool Tensor of shape (n_tasks,), optional
            True where the task has a labelled row in the batch; the terms of
            the other tasks, ``log sigma_k`` included, are left out. None
            keeps every task.

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        precision = torch.exp(-self.log_variance)
        terms = self.factor * precision * losses + 0.5 * self.log_variance
        if labelled is not None:
            # A task with no label in the batch has loss 0; its log sigma term
            # alone would push sigma to 0 and inflate the task's weight.
            terms = terms * labelled.to(terms.dtype)
        return terms.sum()


class DWAWeighter(LossWeighter):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, eq. 7)::

        w_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T),
        r_k(t-1) = L_k(t-1) / L_k(t-2)

    with ``L_k(t)`` the mean training loss of task k over epoch t (its
    labelled batches). The first two epochs use w_k = 1. A task whose loss
    falls more slowly gets more weight. Weights change only between epochs
    (the :meth:`epoch_end` hook); evaluation uses the current ones.

    For the current weights the total is linear in the losses; the weights
    depend only on loss ratios, so scaling every loss by c > 0 leaves them
    unchanged and scales every total by c.

    Parameters
    ----------
    n_tasks : int
    temperature : float, default=2.0
        T; the paper uses 2. Larger T gives weights closer to uniform.
    """

    def __init__(self, n_tasks: int, temperature: float = 2.0):
        super().__init__(n_tasks)
        if not float(temperature) > 0:
            raise ValueError(
                f"temperature must be a positive number, got {temperature!r}."
            )
        self.temperature = float(temperature)
        self.register_buffer("weights", torch.ones(self.n_tasks))
        # Mean loss of the last two finished epochs (row 0 older), and the
        # running sum and count of the current one.
        self.register_buffer("history", torch.full((2, self.n_tasks), float("nan")))
        self.register_buffer("running", torch.zeros(self.n_tasks))
        self.register_buffer("count", torch.zeros(self.n_tasks))

    def forward(
        self, losses: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The weighted sum with the current epoch's weights; in training
        mode, also adds the losses to the epoch's running means.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.
        labelled : bool Tensor of shape (n_tasks,), optional
            True where the task has a labelled row in the batch; only those
            tasks' losses count towards the epoch's means. None counts every
            task.

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        if self.training:
            seen = (
                torch.ones_like(losses)
                if labelled is None
                else labelled.to(losses.dtype)
            )
            self.running += losses.detach() * seen
            self.count += seen
        return (self.weights * losses).sum()

    def epoch_end(self) -> None:
        """Close the epoch: store its mean losses and update the weights."""
        if not bool((self.count > 0).any()):
            return
        mean = torch.where(
            self.count > 0, self.running / self.count.clamp(min=1), self.history[1]
        )
        self.history[0] = self.history[1]
        self.history[1] = mean
        self.running.zero_()
        self.count.zero_()
        if bool(torch.isnan(self.history).any()):
            return  # fewer than two epochs: keep w = 1
        ratio = self.history[1] / self.history[0].clamp(min=1e-12)
        # A loss that jumps from ~0 to a huge value overflows the ratio (or
        # the ratio over a temperature below 1) to inf, and softmax to NaN;
        # the largest finite logit gives the same weights.
        logits = (ratio / self.temperature).clamp(max=torch.finfo(ratio.dtype).max)
        self.weights.copy_(self.n_tasks * torch.softmax(logits, dim=0))

    def extra_repr(self) -> str:
        return f"n_tasks={self.n_tasks}, temperature={self.temperature}"


class RLWWeighter(LossWeighter):
    """Random Loss Weighting (Lin et al., TMLR 2022): at every training step
    the weights are ``softmax(z)`` with ``z ~ N(0, I_K)``, a fresh draw per
    batch; ``L = sum_k w_k L_k``. The weights sum to 1, as in the paper (so
    the total is K times smaller than ``uniform``'s; scale ``lr`` if you
    compare the two). Draws come from torch's generator, which the
    estimators seed from ``random_state``. In evaluation the expected
    weights 1/K are used, so validation losses are deterministic. For a given
    draw (and in evaluation) the total is linear in the losses.

    Parameters
    ----------
    n_tasks : int
    """

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """The sum weighted by a fresh ``softmax(z)`` draw in training mode,
        by 1/K in evaluation.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        if self.training:
            z = torch.randn(self.n_tasks, device=losses.device)
            weights = torch.softmax(z, dim=0).to(losses.dtype)
        else:
            weights = torch.full_like(losses, 1.0 / self.n_tasks)
        return (weights * losses).sum()


class GradientWeighter(LossWeighter):
    """Base of the gradient-level methods (PCGrad, MGDA, GradNorm, CAGrad...).

    The net calls :meth:`combine_gradients` instead of ``loss.backward()``
    with the per-task losses (K,), the *shared* parameters (used by several
    tasks: everything outside the module's ``towers``, or the module's own
    ``shared_parameters()``), the *task* parameters (the rest), the (K,)
    mask of tasks labelled in the batch, the module's regularization term
    and, when the module exposes it, the shared representation the towers
    read (``shared_representation``, for methods that work on it).

    The default does what most methods need: task parameters get the plain
    gradient of ``sum_k L_k + regularization`` (a tower only sees its own
    task); for the shared parameters, the per-task gradients ``g_k`` of the
    labelled tasks are stacked into a (K', P) matrix that :meth:`combine`
    turns into one update direction (P,), to which the regularization's
    gradient is added. That matrix is the known memory cost of these
    methods: K' times the shared parameter count. Subclasses implement
    :meth:`combine`, or override :meth:`combine_gradients` (MGDA-UB works
    on the representation instead).

    ``forward`` (used for validation losses and logging) is the plain sum,
    linear in the losses.
    """

    def forward(self, losses: torch.Tensor, labelled=None) -> torch.Tensor:
        """The plain sum of the losses.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.
        labelled : bool Tensor of shape (n_tasks,), optional
            Accepted for the common interface and not used (a task with no
            labelled row has loss 0).

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        return losses.sum()

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """One direction (P,) from per-task gradients (K', P) and losses (K',).

        Subclasses implement it; the base raises NotImplementedError.

        Parameters
        ----------
        grads : Tensor of shape (K', P)
            Flattened gradients of the shared parameters, one row per task
            labelled in the batch.
        losses : Tensor of shape (K',)
            Those tasks' losses, detached.

        Returns
        -------
        Tensor of shape (P,)
            The update direction of the shared parameters.
        """
        raise NotImplementedError

    @staticmethod
    def _backward(value: torch.Tensor, inputs) -> None:
        inputs = list(inputs)
        if inputs and value.requires_grad:
            value.backward(inputs=inputs, retain_graph=True)

    def backward_plain_parts(
        self, losses, shared_parameters, task_parameters, labelled, regularization
    ):
        """The gradients every method shares: task parameters get those of
        ``sum_k L_k + regularization``, shared parameters those of the
        regularization. Returns that total (for logging) and the indices of
        the tasks labelled in the batch; the shared parameters' task
        gradients are left to the method.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.
        shared_parameters : list of Parameter
            Parameters used by several tasks.
        task_parameters : list of Parameter
            The other parameters (each task's own).
        labelled : bool Tensor of shape (n_tasks,)
            True where the task has a labelled row in the batch.
        regularization : Tensor
            The module's scalar regularization term.

        Returns
        -------
        total : Tensor
            ``sum_k L_k + regularization``.
        tasks : list of int
            Indices of the labelled tasks.
        """
        self._check(losses)
        total = losses.sum() + regularization
        self._backward(total, task_parameters)
        self._backward(regularization, shared_parameters)
        tasks = [k for k in range(self.n_tasks) if bool(labelled[k])]
        return total, tasks

    @staticmethod
    def task_gradients(losses, parameters, tasks) -> torch.Tensor:
        """Flattened gradients of ``losses[k]`` for each k in ``tasks``, (K', P).

        A parameter a loss does not reach gets a zero gradient.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.
        parameters : list of Parameter
            The parameters to differentiate, P values in all.
        tasks : list of int
            The task indices, one row each.

        Returns
        -------
        Tensor of shape (len(tasks), P)
        """
        rows = []
        for k in tasks:
            grads = torch.autograd.grad(
                losses[k], parameters, retain_graph=True, allow_unused=True
            )
            rows.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if g is None else g).reshape(-1)
                        for g, p in zip(grads, parameters)
                    ]
                )
            )
        return torch.stack(rows)

    @staticmethod
    def add_to_grad(parameters, direction: torch.Tensor) -> None:
        """Accumulate a flat direction (P,) into the parameters' ``.grad``.

        Parameters
        ----------
        parameters : list of Parameter
            The parameters, in the order ``direction`` was flattened.
        direction : Tensor of shape (P,)
            The values to add, P being the parameters' total size.
        """
        start = 0
        for p in parameters:
            n = p.numel()
            piece = direction[start : start + n].view_as(p)
            p.grad = piece.clone() if p.grad is None else p.grad + piece
            start += n

    def combine_gradients(
        self,
        losses,
        *,
        shared_parameters,
        task_parameters,
        labelled,
        regularization,
        representation=None,
    ) -> torch.Tensor:
        """Replace the training step's backward pass and set ``.grad`` on every
        parameter.

        :meth:`backward_plain_parts` gives the task parameters their plain
        gradients; the shared parameters get the regularization's gradient
        plus the direction :meth:`combine` returns for the labelled tasks'
        gradients.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch, with their graph.
        shared_parameters, task_parameters, labelled, regularization
            As in :meth:`backward_plain_parts`.
        representation : Tensor, optional
            The shared representation the towers read, when the module
            exposes it; not used here (for subclasses that work on it).

        Returns
        -------
        Tensor
            ``sum_k L_k + regularization``, detached, to log.
        """
        total, tasks = self.backward_plain_parts(
            losses, shared_parameters, task_parameters, labelled, regularization
        )
        if shared_parameters and tasks:
            grads = self.task_gradients(losses, shared_parameters, tasks)
            direction = self.combine(grads, losses[tasks].detach())
            self.add_to_grad(shared_parameters, direction.detach())
        return total.detach()


class FAMOWeighter(LossWeighter):
    """Fast Adaptive Multitask Optimization (Liu, Feng, Stone & Liu,
    NeurIPS 2023, Algorithm 1): task weights from learned logits ``xi``,
    ``z = softmax(xi)``, at O(1) cost per step (no per-task backward pass).

    The model follows the gradient of ``c sum_k z_k log(L_k + eps)`` with
    ``c = 1 / sum_k (z_k / (L_k + eps))`` held constant: each task gradient
    is weighted by ``c z_k / (L_k + eps)``, which decreases every loss at
    the rate its weight asks for, whatever its scale. Those weights sum to
    1 in the paper; here they are multiplied by K' (the tasks labelled in
    the batch; the others are left out), so equal weights and losses give
    ``uniform``'s update and its learning rate applies unchanged.

    After the optimizer step, the net calls :meth:`step_end` with the same
    batch's losses at the new parameters, and the logits take one step of
    ``xi <- xi - lr (grad_xi (z . delta) + gamma xi)`` with
    ``delta_k = log(L_k(before) + eps) - log(L_k(after) + eps)`` (a task
    whose loss fell more gets less weight). The paper's Algorithm 1 writes
    this as a plain gradient step (``optimizer="sgd"``); the authors' code,
    which made the paper's results, feeds the same gradient (with the decay
    term) to Adam (``optimizer="adam"``, the default: the per-step changes
    of log losses are small, so a plain step of 0.025 barely moves the
    logits). The defaults ``lr`` (beta) 0.025 and ``gamma`` 0.001 are the
    paper's.

    ``forward``'s value is the plain sum ``sum_k L_k`` (linear in the
    losses: what is logged and what validation compares), with FAMO's
    gradient in training mode; in evaluation, the plain sum and its own
    gradient. The logits are a buffer: they follow ``state_dict``, pickling
    and ``warm_start``, and the net's optimizer does not touch them.

    Parameters
    ----------
    n_tasks : int
    lr : float, default=0.025
        Step size of the logits (the paper's beta).
    gamma : float, default=0.001
        Weight decay of the logits (the paper's gamma).
    eps : float, default=1e-8
        Added to every loss before its logarithm (a loss of 0 stays finite).
    optimizer : {"adam", "sgd"}, default="adam"
        How the logits step: Adam (betas 0.9, 0.999; the decay added to the
        gradient) as in the authors' code, or Algorithm 1's plain step.
    """

    def __init__(
        self,
        n_tasks: int,
        lr: float = 0.025,
        gamma: float = 0.001,
        eps: float = 1e-8,
        optimizer: str = "adam",
    ):
        super().__init__(n_tasks)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}.")
        self.optimizer = optimizer
        for name, value in (("lr", lr), ("gamma", gamma)):
            if not float(value) >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if not float(eps) > 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}.")
        self.lr, self.gamma, self.eps = float(lr), float(gamma), float(eps)
        self.register_buffer("logits", torch.zeros(self.n_tasks))
        # The last training step's losses (NaN: none yet) and labelled tasks.
        self.register_buffer("step_losses", torch.full((self.n_tasks,), float("nan")))
        self.register_buffer("step_labelled", torch.zeros(self.n_tasks, dtype=bool))
        # Adam's moment estimates of the logits' gradient and its step count,
        # kept as buffers rather than in a torch.optim.Adam: buffers are in
        # the state_dict, so checkpoints, pickles and warm starts carry the
        # weighter's whole state (a nested optimizer's state would be lost).
        self.register_buffer("adam_m", torch.zeros(self.n_tasks))
        self.register_buffer("adam_v", torch.zeros(self.n_tasks))
        self.register_buffer("adam_t", torch.zeros(()))

    @property
    def weights(self) -> torch.Tensor:
        """The current task weights ``z = softmax(logits)`` (sum 1)."""
        return torch.softmax(self.logits, dim=0)

    def forward(
        self, losses: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The plain sum of the losses, with FAMO's gradient in training mode.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the batch.
        labelled : bool Tensor of shape (n_tasks,), optional
            True where the task has a labelled row in the batch; the others
            get no weight. None keeps every task.

        Returns
        -------
        Tensor
            The scalar total.
        """
        self._check(losses)
        total = losses.sum()
        if not self.training:
            return total
        mask = (
            torch.ones(self.n_tasks, dtype=torch.bool, device=losses.device)
            if labelled is None
            else labelled.to(device=losses.device, dtype=torch.bool)
        )
        self.step_losses.copy_(losses.detach())
        self.step_labelled.copy_(mask)
        if not bool(mask.any()):
            return total
        shifted = losses[mask] + self.eps
        z = self.weights.to(losses.dtype)[mask]
        c = 1.0 / (z / shifted.detach()).sum()
        objective = int(mask.sum()) * c * (z * torch.log(shifted)).sum()
        # value: the plain sum; gradient: FAMO's alone (the second term is 0)
        return total.detach() + (objective - objective.detach())

    @torch.no_grad()
    def step_end(self, losses: torch.Tensor, labelled: torch.Tensor | None = None):
        """Update the logits with the change in log losses of the step.

        Parameters
        ----------
        losses : Tensor of shape (n_tasks,)
            The per-task losses of the step's batch after the optimizer step.
        labelled : bool Tensor of shape (n_tasks,), optional
            True where the task has a labelled row in the batch; a task
            without one in both evaluations has ``delta = 0``.
        """
        self._check(losses)
        losses = losses.detach().to(self.logits.dtype)
        seen = self.step_labelled & torch.isfinite(self.step_losses)
        seen = seen & torch.isfinite(losses)
        if labelled is not None:
            seen = seen & labelled.to(seen.device, torch.bool)
        delta = torch.where(
            seen,
            torch.log(self.step_losses.clamp(min=0) + self.eps)
            - torch.log(losses.clamp(min=0) + self.eps),
            torch.zeros_like(losses),
        )
        z = self.weights
        # gradient of z . delta with respect to the logits (softmax Jacobian)
        grad = z * (delta - (z * delta).sum()) + self.gamma * self.logits
        if self.optimizer == "sgd":
            self.logits.sub_(self.lr * grad)
        else:
            beta1, beta2 = 0.9, 0.999
            self.adam_t += 1
            self.adam_m.mul_(beta1).add_((1 - beta1) * grad)
            self.adam_v.mul_(beta2).add_((1 - beta2) * grad * grad)
            m_hat = self.adam_m / (1 - beta1**self.adam_t)
            v_hat = self.adam_v / (1 - beta2**self.adam_t)
            self.logits.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))
        self.step_losses.fill_(float("nan"))

    def extra_repr(self) -> str:
        return (
            f"n_tasks={self.n_tasks}, lr={self.lr}, gamma={self.gamma}, "
            f"eps={self.eps}, optimizer={self.optimizer!r}"
        )
