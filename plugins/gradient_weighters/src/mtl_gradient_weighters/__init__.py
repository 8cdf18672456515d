"""Gradient-level loss weighters for mtlestimators.

Each is a :class:`mtlestimators.loss_weighters.GradientWeighter`: the net
hands it the per-task losses and the shared parameters instead of calling
``loss.backward()``. Their ``forward`` totals are linear in the losses
(GradNorm's for its current weights), and the shared update of every method
built on ``combine`` scales with the task gradients: ``combine(c G) = c
combine(G)`` for c > 0.

The aggregation of the (K', P) matrix of task gradients comes from TorchJD
(``torchjd.aggregation``) wherever TorchJD implements the same method:
:class:`TorchJDWeighter` is the one adapter, and ``pcgrad``, ``cagrad``,
``upgrad``, ``imtl_g``, ``aligned_mtl``, ``dualproj`` and ``mgda_params`` are
its registered forms. ``mgda`` (MGDA-UB, on the shared representation) uses
TorchJD's min-norm solver on the representation's gradients; ``gradnorm``
(learned weights, not an aggregation of a gradient matrix) has no TorchJD
counterpart and is written here.
"""

from __future__ import annotations

import numpy as np
import torch
import torchjd.aggregation as jd
from torch import nn

from mtlestimators.loss_weighters import GradientWeighter

__all__ = [
    "CAGrad",
    "AlignedMTL",
    "DualProj",
    "GradNorm",
    "IMTLG",
    "MGDA",
    "MGDAParams",
    "PCGrad",
    "TorchJDWeighter",
    "UPGrad",
    "min_norm_weights",
]
__version__ = "0.2.0"


class TorchJDWeighter(GradientWeighter):
    """A TorchJD aggregator (``torchjd.aggregation``) as a gradient weighter.

    :meth:`combine` hands the (K', P) matrix of the labelled tasks' shared
    gradients to the aggregator and returns its (P,) vector times
    :attr:`scale`'s factor. The matrix is divided by its Frobenius norm
    first and the result multiplied back: every aggregator registered here
    is positively homogeneous of degree 1, so this changes nothing in exact
    arithmetic, but TorchJD's solvers have absolute thresholds
    (``norm_eps=1e-4`` on the squared norm) below which small gradients
    (late in training) would give a zero update.

    Parameters
    ----------
    n_tasks : int
    aggregator : str
        The name of a class in ``torchjd.aggregation`` (``"UPGrad"``,
        ``"IMTLG"``, ``"AlignedMTL"``, ``"DualProj"``, ``"MGDA"``,
        ``"PCGrad"``, ``"CAGrad"``, ...).
    scale : {"sum", "count"}, default="count"
        ``"count"`` multiplies the aggregator's result by K' (the number of
        tasks in the matrix): for the aggregators whose weights sum to 1
        (a mean of non-conflicting gradients), the update is then on the
        scale of the plain sum of the task gradients, like ``uniform``'s.
        ``"sum"`` keeps the result as it is (PCGrad already sums).
    **params
        Keyword arguments of the TorchJD aggregator.
    """

    def __init__(self, n_tasks: int, aggregator: str, scale: str = "count", **params):
        super().__init__(n_tasks)
        if scale not in ("sum", "count"):
            raise ValueError(f"scale must be 'sum' or 'count', got {scale!r}.")
        cls = getattr(jd, str(aggregator), None)
        if not (isinstance(cls, type) and issubclass(cls, jd.Aggregator)):
            raise ValueError(
                f"aggregator must name an Aggregator of torchjd.aggregation, "
                f"got {aggregator!r}."
            )
        self.aggregator = str(aggregator)
        self.scale = scale
        self.params = dict(params)
        # Built once: TorchJD checks its optional dependencies (quadprog,
        # cvxpy...) here, so a missing one fails at fit start.
        self.aggregator_ = cls(**self.params)

    def factor(self, n_rows: int) -> float:
        """The factor applied to the aggregator's result for ``n_rows`` tasks.

        Parameters
        ----------
        n_rows : int
            K', the number of rows of the gradient matrix.

        Returns
        -------
        float
        """
        return float(n_rows) if self.scale == "count" else 1.0

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The aggregator's direction for the task gradients, rescaled.

        Parameters
        ----------
        grads : Tensor of shape (K', P)
            Flattened gradients of the shared parameters, one row per task
            labelled in the batch.
        losses : Tensor of shape (K',)
            Those tasks' losses, detached (not used).

        Returns
        -------
        Tensor of shape (P,)
        """
        norm = torch.linalg.matrix_norm(grads)
        if not bool(norm > 0) or not bool(torch.isfinite(norm)):
            return torch.zeros_like(grads[0])
        direction = self.aggregator_(grads / norm)
        return self.factor(len(grads)) * norm * direction.to(grads.dtype)

    def extra_repr(self) -> str:
        # the aggregator shows as the submodule ``aggregator_``
        return f"n_tasks={self.n_tasks}, scale={self.scale!r}"


class PCGrad(TorchJDWeighter):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020, Algorithm 1),
    computed by TorchJD's ``PCGrad``.

    For each task i, in turn for every other task j in a random order: if
    ``g_i . g_j < 0``, ``g_i`` loses its component along ``g_j``. The update
    of the shared parameters is the sum of the projected gradients. The
    order is drawn from torch's generator (seeded by ``random_state``), one
    ``torch.randperm(K')`` per task, as the hand-written version before it
    did (the same draws give the same update).

    Parameters
    ----------
    n_tasks : int
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks, aggregator="PCGrad", scale="sum")


class CAGrad(TorchJDWeighter):
    """Conflict-Averse Gradient descent (Liu et al., NeurIPS 2021,
    Algorithm 1), computed by TorchJD's ``CAGrad``.

    With ``g0`` the average gradient, the update maximizes the worst task's
    improvement ``min_i g_i . d`` within ``|| d - g0 || <= c || g0 ||``;
    the dual over the simplex gives ``d = g0 + c ||g0|| / ||g_w|| g_w``.
    TorchJD solves the dual with cvxpy (Clarabel) and returns ``d``; it is
    divided by ``1 + c^2`` as in the authors' code and multiplied by K so
    that c = 0 gives the plain sum of the task gradients.

    Parameters
    ----------
    n_tasks : int
    c : float, default=0.5
    """

    def __init__(self, n_tasks: int, c: float = 0.5):
        if not float(c) >= 0:
            raise ValueError(f"c must be a number >= 0, got {c!r}.")
        super().__init__(n_tasks, aggregator="CAGrad", c=float(c))
        self.c = float(c)

    def factor(self, n_rows: int) -> float:
        """K' / (1 + c^2).

        Parameters
        ----------
        n_rows : int
            K', the number of rows of the gradient matrix.

        Returns
        -------
        float
        """
        return n_rows / (1.0 + self.c**2)

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The CAGrad direction; c = 0 or one task: the plain sum.

        Parameters
        ----------
        grads : Tensor of shape (K', P)
            Flattened gradients of the shared parameters.
        losses : Tensor of shape (K',)
            Those tasks' losses (not used).

        Returns
        -------
        Tensor of shape (P,)
        """
        if self.c == 0 or len(grads) == 1:
            return grads.sum(dim=0)
        return super().combine(grads, losses)


class UPGrad(TorchJDWeighter):
    """Unconflicting Projection of Gradients (Quinton & Rey, 2024; TorchJD's
    ``UPGrad``): each task gradient is projected onto the dual cone of all
    of them (so no task's loss increases to first order) and the projections
    are averaged; times K', the plain sum when gradients do not conflict.

    Parameters
    ----------
    n_tasks : int
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks, aggregator="UPGrad")


class DualProj(TorchJDWeighter):
    """The mean gradient projected onto the dual cone of the task gradients
    (TorchJD's ``DualProj``; Lopez-Paz & Ranzato's GEM projection), times K'.

    Parameters
    ----------
    n_tasks : int
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks, aggregator="DualProj")


class IMTLG(TorchJDWeighter):
    """IMTL-G (Liu et al., ICLR 2021; TorchJD's ``IMTLG``): the combination of
    the task gradients, weights summing to 1, whose projection on every unit
    task gradient is the same; times K'.

    Parameters
    ----------
    n_tasks : int
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks, aggregator="IMTLG")


class AlignedMTL(TorchJDWeighter):
    """Aligned-MTL (Senushkin et al., CVPR 2023; TorchJD's ``AlignedMTL``):
    the task gradients are made orthogonal with equal norms (the smallest
    singular value's, by default) before being averaged; times K'.

    Parameters
    ----------
    n_tasks : int
    scale_mode : {"min", "median", "rmse"}, default="min"
        Which singular value sets the common norm.
    """

    def __init__(self, n_tasks: int, scale_mode: str = "min"):
        super().__init__(n_tasks, aggregator="AlignedMTL", scale_mode=scale_mode)


class MGDAParams(TorchJDWeighter):
    """MGDA on the *parameter* gradients (TorchJD's ``MGDA``, Frank-Wolfe of
    Sener & Koltun's Algorithm 2): the min-norm point of the convex hull of
    the shared parameters' task gradients, times K'.

    ``mgda`` (:class:`MGDA`) is MGDA-UB instead: its weights come from the
    gradients with respect to the shared *representation* (section 3.3 of
    the paper, the variant the paper trains with), a different direction
    from this one whenever the representation's Jacobian is not a multiple
    of an orthogonal matrix; so ``mgda`` keeps that reading and this is the
    parameter-space one.

    Parameters
    ----------
    n_tasks : int
    """

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks, aggregator="MGDA", epsilon=1e-8, max_iters=250)


def min_norm_weights(gram: np.ndarray, iterations: int = 250, tol: float = 1e-8):
    """Weights w on the simplex minimizing ``|| sum_k w_k g_k ||^2`` given
    the Gram matrix ``gram[i, j] = g_i . g_j`` (Sener & Koltun 2018,
    Algorithm 2: Frank-Wolfe with the exact line search), solved by
    TorchJD's ``MGDAWeighting``.

    Parameters
    ----------
    gram : ndarray of shape (K, K)
        The Gram matrix of the task gradients.
    iterations : int, default=250
        The most Frank-Wolfe steps.
    tol : float, default=1e-8
        Stop once a step moves less than this (TorchJD's ``epsilon``).

    Returns
    -------
    ndarray of shape (K,)
    """
    gram = np.asarray(gram, dtype=np.float64)
    if len(gram) == 1:
        return np.ones(1)
    weighting = jd.MGDAWeighting(epsilon=tol, max_iters=iterations)
    return weighting(torch.from_numpy(gram)).numpy()


class MGDA(GradientWeighter):
    """Multiple-gradient descent (Sener & Koltun, NeurIPS 2018).

    The shared update is ``K sum_k w_k g_k`` with w the min-norm point of the
    convex hull of the task gradients (a Pareto-stationary direction; the
    factor K keeps the scale of the plain sum). With
    ``representation=True`` (MGDA-UB, section 3.3) the weights come from the
    gradients with respect to the shared representation the towers read
    (B x H per task instead of the shared parameter count), and the shared
    parameters get one backward pass of ``sum_k w_k L_k``. Models that do
    not expose that representation fall back to parameter gradients (then
    the same update as ``mgda_params``, :class:`MGDAParams`). The min-norm
    weights come from TorchJD's Frank-Wolfe solver (:func:`min_norm_weights`);
    TorchJD has no MGDA-UB, which needs the representation, so the step is
    written here.

    Parameters
    ----------
    n_tasks : int
    representation : bool, default=True
    """

    def __init__(self, n_tasks: int, representation: bool = True):
        super().__init__(n_tasks)
        self.representation = bool(representation)
        self.register_buffer("last_weights", torch.full((n_tasks,), 1.0 / n_tasks))

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        gram = (grads @ grads.T).double().cpu().numpy()
        w = torch.as_tensor(
            min_norm_weights(gram), dtype=grads.dtype, device=grads.device
        )
        return len(w) * (w @ grads)

    def combine_gradients(
        self,
        losses,
        *,
        shared_parameters,
        task_parameters,
        labelled,
        regularization,
        representation=None,
    ):
        if not self.representation or representation is None:
            return super().combine_gradients(
                losses,
                shared_parameters=shared_parameters,
                task_parameters=task_parameters,
                labelled=labelled,
                regularization=regularization,
            )
        total, tasks = self.backward_plain_parts(
            losses, shared_parameters, task_parameters, labelled, regularization
        )
        if not tasks or not shared_parameters:
            return total.detach()
        z_grads = [
            torch.autograd.grad(losses[k], representation, retain_graph=True)[0]
            for k in tasks
        ]
        flat = torch.stack([g.reshape(-1) for g in z_grads])
        gram = (flat @ flat.T).double().cpu().numpy()
        w = torch.as_tensor(
            min_norm_weights(gram), dtype=flat.dtype, device=flat.device
        )
        self.last_weights.zero_()
        self.last_weights[tasks] = w
        upstream = len(tasks) * sum(wk * g for wk, g in zip(w, z_grads))
        representation.backward(upstream, inputs=list(shared_parameters))
        return total.detach()


class GradNorm(GradientWeighter):
    """GradNorm (Chen et al., ICML 2018).

    Learned task weights ``w_k`` (sum K); the network trains on
    ``sum_k w_k L_k``. The weights train on
    ``L_grad = sum_k | G_k - mean(G) r_k^alpha |`` where ``G_k`` is the norm
    of the gradient of ``w_k L_k`` with respect to the last shared weight
    matrix and ``r_k`` task k's inverse training rate
    ``(L_k / L_k(0)) / mean_j (L_j / L_j(0))`` (the targets are constants).
    The weights are renormalized to sum K before every step. For the current
    weights, ``forward`` is linear in the losses.

    Parameters
    ----------
    n_tasks : int
    alpha : float, default=1.5
        Asymmetry; the paper's value for its NYUv2 experiments.
    """

    def __init__(self, n_tasks: int, alpha: float = 1.5):
        super().__init__(n_tasks)
        self.alpha = float(alpha)
        self.weights = nn.Parameter(torch.ones(n_tasks))
        self.register_buffer("initial_losses", torch.full((n_tasks,), float("nan")))

    def forward(self, losses: torch.Tensor, labelled=None) -> torch.Tensor:
        self._check(losses)
        return (self.weights.detach() * losses).sum()

    def combine_gradients(
        self,
        losses,
        *,
        shared_parameters,
        task_parameters,
        labelled,
        regularization,
        representation=None,
    ):
        self._check(losses)
        with torch.no_grad():
            self.weights.clamp_(min=1e-4)
            self.weights.mul_(self.n_tasks / self.weights.sum())
            first = torch.isnan(self.initial_losses) & labelled
            self.initial_losses[first] = losses.detach()[first]
        w = self.weights.detach()
        total = (w * losses).sum() + regularization
        weighted = [p for p in [*task_parameters, *shared_parameters]]
        self._backward(total, weighted)
        tasks = [k for k in range(self.n_tasks) if bool(labelled[k])]
        matrices = [p for p in shared_parameters if p.dim() >= 2]
        if len(tasks) < 2 or not matrices:
            return total.detach()
        last = matrices[-1]
        norms = torch.stack(
            [
                torch.autograd.grad(losses[k], last, retain_graph=True)[0].norm()
                for k in tasks
            ]
        )  # ||grad L_k||, so G_k = w_k * norms_k
        G = self.weights[tasks] * norms
        ratio = losses.detach()[tasks] / self.initial_losses[tasks].clamp(min=1e-12)
        inverse_rate = ratio / ratio.mean()
        target = (G.mean() * inverse_rate**self.alpha).detach()
        grad_loss = (G - target).abs().sum()
        (self.weights.grad,) = torch.autograd.grad(grad_loss, self.weights)
        return total.detach()
