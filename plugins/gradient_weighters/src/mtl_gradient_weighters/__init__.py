"""Gradient-level loss weighters for mtlestimators.

Each is a :class:`mtlestimators.loss_weighters.GradientWeighter`: the net
hands it the per-task losses and the shared parameters instead of calling
``loss.backward()``. Their ``forward`` totals are linear in the losses
(GradNorm's for its current weights), and the shared update of PCGrad, MGDA
and CAGrad scales with the task gradients: ``combine(c G) = c combine(G)``
for c > 0.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from mtlestimators.loss_weighters import GradientWeighter

__all__ = ["CAGrad", "GradNorm", "MGDA", "PCGrad", "min_norm_weights"]
__version__ = "0.1.0"


class PCGrad(GradientWeighter):
    """Projecting Conflicting Gradients (Yu et al., NeurIPS 2020, Algorithm 1).

    For each task i, in turn for every other task j in a random order: if
    ``g_i . g_j < 0``, ``g_i`` loses its component along ``g_j``. The update
    of the shared parameters is the sum of the projected gradients. The
    order is drawn from torch's generator (seeded by ``random_state``).
    """

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        return self.project(grads).sum(dim=0)

    @staticmethod
    def project(grads: torch.Tensor) -> torch.Tensor:
        """The projected gradients (K, P)."""
        projected = grads.clone()
        K = len(grads)
        for i in range(K):
            for j in torch.randperm(K).tolist():
                if j == i:
                    continue
                dot = projected[i] @ grads[j]
                if dot < 0:
                    projected[i] -= (
                        dot / (grads[j] @ grads[j]).clamp(min=1e-20) * grads[j]
                    )
        return projected


def min_norm_weights(gram: np.ndarray, iterations: int = 250, tol: float = 1e-8):
    """Weights w on the simplex minimizing ``|| sum_k w_k g_k ||^2`` given
    the Gram matrix ``gram[i, j] = g_i . g_j`` (Sener & Koltun 2018,
    Algorithm 2: Frank-Wolfe with the exact 2-point line search)."""
    K = len(gram)
    if K == 1:
        return np.ones(1)
    if K == 2:
        return _two_point(gram[0, 0], gram[0, 1], gram[1, 1])
    w = np.full(K, 1.0 / K)
    for _ in range(iterations):
        t = int(np.argmin(gram @ w))
        # line search between the current point and vertex t
        v_w = w @ gram @ w
        v_t = gram[t, t]
        v_wt = gram[t] @ w
        gamma = _two_point(v_t, v_wt, v_w)[0]
        new = (1 - gamma) * w
        new[t] += gamma
        if np.abs(new - w).sum() < tol:
            return new
        w = new
    return w


def _two_point(aa: float, ab: float, bb: float) -> np.ndarray:
    """(w, 1 - w) minimizing ||w a + (1 - w) b||^2 for w in [0, 1]."""
    denominator = aa - 2 * ab + bb
    if denominator <= 1e-20:
        return np.array([0.5, 0.5])
    w = float(np.clip((bb - ab) / denominator, 0.0, 1.0))
    return np.array([w, 1.0 - w])


class MGDA(GradientWeighter):
    """Multiple-gradient descent (Sener & Koltun, NeurIPS 2018).

    The shared update is ``K sum_k w_k g_k`` with w the min-norm point of the
    convex hull of the task gradients (a Pareto-stationary direction; the
    factor K keeps the scale of the plain sum). With
    ``representation=True`` (MGDA-UB, section 3.3) the weights come from the
    gradients with respect to the shared representation the towers read
    (B x H per task instead of the shared parameter count), and the shared
    parameters get one backward pass of ``sum_k w_k L_k``. Models that do
    not expose that representation fall back to parameter gradients.

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


class CAGrad(GradientWeighter):
    """Conflict-Averse Gradient descent (Liu et al., NeurIPS 2021, Algorithm 1).

    With ``g0`` the average gradient, the update maximizes the worst task's
    improvement ``min_i g_i . d`` within ``|| d - g0 || <= c || g0 ||``. Its
    dual is solved over the simplex, ``min_w g_w . g0 + c ||g0|| ||g_w||``,
    giving ``d = g0 + c ||g0|| / ||g_w|| g_w``, divided by ``1 + c^2`` as in
    the authors' code; the result is multiplied by K so that c = 0 gives
    the plain sum of the task gradients.

    Parameters
    ----------
    n_tasks : int
    c : float, default=0.5
    """

    def __init__(self, n_tasks: int, c: float = 0.5):
        super().__init__(n_tasks)
        if not float(c) >= 0:
            raise ValueError(f"c must be a number >= 0, got {c!r}.")
        self.c = float(c)

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        K = len(grads)
        g0 = grads.mean(dim=0)
        if self.c == 0 or K == 1:
            return K * g0
        gram = (grads @ grads.T).double().cpu().numpy()
        g0_norm = float(np.sqrt(gram.mean() + 1e-20))
        radius = self.c * g0_norm
        # The dual is solved on the Gram matrix divided by the mean squared
        # gradient norm: the same minimizer, but SLSQP's stopping tolerance is
        # absolute, so small gradients (objective below it) would stop it at
        # the starting point w = 1/K.
        unit = gram / (float(np.diag(gram).mean()) or 1.0)
        unit_radius = self.c * np.sqrt(max(unit.mean(), 0.0))
        b = unit.mean(axis=1)  # g_i . g0, in the same units

        def objective(w):
            gw_norm = np.sqrt(max(w @ unit @ w, 0.0) + 1e-20)
            return w @ b + unit_radius * gw_norm

        result = minimize(
            objective,
            np.full(K, 1.0 / K),
            bounds=[(0.0, 1.0)] * K,
            constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0},
            method="SLSQP",
        )
        w = torch.as_tensor(result.x, dtype=grads.dtype, device=grads.device)
        gw = w @ grads
        d = g0 + radius / gw.norm().clamp(min=1e-20) * gw
        return K * d / (1.0 + self.c**2)
