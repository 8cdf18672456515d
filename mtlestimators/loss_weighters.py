"""Loss weighters: turn the (K,) vector of per-task losses into one scalar.

Every weighter is a :class:`torch.nn.Module` built as ``cls(n_tasks, **params)``
and registered under the entry-point group ``mtlestimators.loss_weighters``
(the built-ins below are registered by this package's own ``pyproject.toml``).
Its parameters, if any, train with the model.

``forward`` may take a keyword argument ``labelled``: a (K,) bool tensor,
True where the task has at least one labelled row in the batch. A task without
one has loss 0; weighters whose other terms would still act on it (such as
``uncertainty``'s ``log sigma``) use the mask to leave it out.

Optional hook
-------------
``prepare(y, task_kinds)`` is called once at the start of a fresh fit with the
encoded training targets (float array (n, K), NaN where missing; class indices
for classification tasks) and the kind of each task. Statistics it keeps must
live in buffers so they follow device moves, ``state_dict`` and pickling.
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
]


class LossWeighter(nn.Module):
    """Base class: ``forward(losses)`` maps per-task losses (K,) to a scalar."""

    def __init__(self, n_tasks: int):
        super().__init__()
        if int(n_tasks) < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks!r}.")
        self.n_tasks = int(n_tasks)

    def prepare(self, y: np.ndarray, task_kinds: Sequence[str]) -> None:
        """Hook called at fit start with the training targets; no-op here."""

    def _check(self, losses: torch.Tensor) -> None:
        assert losses.shape == (self.n_tasks,), (losses.shape, self.n_tasks)

    def extra_repr(self) -> str:
        return f"n_tasks={self.n_tasks}"


class UniformWeighter(LossWeighter):
    """Weighted sum ``sum_k w_k L_k`` with fixed weights (all 1 by default).

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
        self._check(losses)
        return (self.weights * losses).sum()


class PseudoUniformWeighter(LossWeighter):
    """Pseudo-uniform scaling (gallery paper, section 3.3).

    Weight 1 for classification tasks and ``1 / var(y_k)`` for regression
    task k, with ``var`` the sample variance (ddof=1) of the task's labelled
    training targets, so every regression loss is on the scale of a unit
    variance target.
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.register_buffer("scale", torch.ones(self.n_tasks))

    def prepare(self, y: np.ndarray, task_kinds: Sequence[str]) -> None:
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
        factor = [0.5 if kind == "regression" else 1.0 for kind in task_kinds]
        self.factor.copy_(torch.tensor(factor))

    def forward(
        self, losses: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        self._check(losses)
        precision = torch.exp(-self.log_variance)
        terms = self.factor * precision * losses + 0.5 * self.log_variance
        if labelled is not None:
            # A task with no label in the batch has loss 0; its log sigma term
            # alone would push sigma to 0 and inflate the task's weight.
            terms = terms * labelled.to(terms.dtype)
        return terms.sum()
