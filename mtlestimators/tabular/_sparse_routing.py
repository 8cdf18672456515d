"""MSSM: Multiple-level Sparse Sharing Model (Ding, Dong et al., SIGIR 2021),
and SNR (Ma et al., AAAI 2019), which MSSM reduces to without its two sparse
modules.

One routing module serves both. Lower sub-networks ``u_j`` feed the task
representations ``v_i = sum_j m_ij (.) W_ij u_j`` (eq. 3), each followed by a
task tower:

- MSSM: one task-specific lower sub-network per task plus ``n_shared`` shared
  ones; task i reads its own specific sub-network and the shared ones, never
  another task's (``m_12 = m_21 = 0``). FSCM (section 2.1) masks every field
  embedding before task j's specific sub-network with
  ``w_ij = relu(tanh(g_ij . e_i))``. CSSM (section 2.2) makes ``m_ij`` a vector
  of hard-concrete gates, one per cell of ``v_i``; without CSSM ``m_ij`` is one
  gate per connection, SNR's coding variable.
- SNR: ``n_subnetworks`` lower sub-networks all read the field embeddings and
  connect to every task, with one coding variable per connection;
  ``routing="transform"`` uses ``W_ij u_j`` (SNR-Trans), ``"average"`` uses
  ``u_j`` itself (SNR-Aver).

Sparsity control (see docs/tabular.md, "MSSM's sparsity"): MSSM's L0 term is
the *mean* open probability of the gate cells (not their sum, which grows with
the model and, under Adam, closed 96-98% of the cells at the old defaults),
steered to a ``target_sparsity`` by a proportional controller; every task keeps
its strongest cell open (``keep_open``). SNR keeps the summed L0 term and no
floor. In eval mode, closed cells and connections are pruned away
(``pruned_serving``), which is exact because the hard-concrete gates are
deterministic there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from skorch.callbacks import Callback
from torch import nn

from .._core.layers import TaskTower, mlp, out_width
from .._core.net import (
    AcceleratedMultiTaskNet,
    MultiTaskNet,
    bare_module,
    decayed_parameters,
)
from ..gates import HardConcreteGate
from ..plugins import build_gate, gate_penalty
from ._base import FieldClassifierBase, field_input_width
from ._fields import FieldEmbedding

# Lower bound on the log_alpha of each task's strongest cell when ``keep_open``:
# sigmoid(0) = 0.5 gives the eval-mode gate value 0.5 * (zeta - gamma) + gamma
# = 0.5 with the default stretch, and P(z > 0) = 0.83 in training.
_KEEP_OPEN_FLOOR = 0.0
# Gain of the ``target_sparsity`` controller: the extra L0 weight per unit of
# missing sparsity. On Adult (target 0.6, 12 epochs): gain 1 reached 0.55,
# gain 4 0.56 at the dense model's AUC, gain 16 overshot to 0.79 and lost
# 0.01 AUC.
_CONTROL_GAIN = 4.0


class SparseRoutingModule(nn.Module):
    """Field embeddings -> lower sub-networks -> gated routing -> towers.

    Parameters
    ----------
    cardinalities, n_numeric, field_order
        The field embedding's input description.
    output_dims : list of int
        One output width per task.
    n_specific : int
        Task-specific lower sub-networks (0 or the number of tasks).
    n_shared : int
        Shared lower sub-networks, read by every task.
    field_masks : bool
        FSCM masks on the inputs of the task-specific sub-networks.
    shared_field_mask : bool
        Also an FSCM mask (one per shared sub-network) on the shared
        sub-networks' input, Algorithm 1's line 11 read for ``j = s``.
    cell_gates : bool
        One gate per cell of ``v_i`` (CSSM) instead of one per connection.
    routing : {"transform", "average"}
        ``W_ij u_j`` or ``u_j`` on each connection.
    target_sparsity : float or None
        None: the L0 term is weighted by ``l0_penalty``. A float: by
        ``l0_penalty + (target_sparsity - closed share)+``, recomputed every
        training step from the share of cells closed at eval (the
        ``l0_multiplier`` buffer holds the extra weight).
    keep_open : bool
        Each task's strongest cell (largest log_alpha over its connections)
        has its log_alpha floored at 0, so no task is ever cut off its inputs.
    l0_reduction : {"sum", "mean"}
        The L0 term: the expected L0 norm (sum of the cells' open
        probabilities, SNR's and the paper's) or that sum divided by the
        number of cells (MSSM here), which does not grow with the model.
    """

    def __init__(
        self,
        cardinalities,
        n_numeric: int,
        field_order,
        output_dims: Sequence[int],
        embedding_dim: int = 8,
        n_specific: int = 2,
        n_shared: int = 1,
        subnet_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32, 16),
        field_masks: bool = True,
        cell_gates: bool = True,
        routing: str = "transform",
        gate="hard_concrete",
        gate_params: dict | None = None,
        l2_penalty: float = 1e-3,
        l0_penalty: float = 1e-2,
        dropout: float = 0.0,
        numeric_embedding: str = "linear",
        numeric_options: dict | None = None,
        shared_field_mask: bool = False,
        target_sparsity: float | None = None,
        keep_open: bool = False,
        l0_reduction: str = "sum",
    ):
        super().__init__()
        n_tasks = len(output_dims)
        assert n_specific in (0, n_tasks), "one specific sub-network per task"
        assert routing in ("transform", "average")
        self.fields = FieldEmbedding(
            cardinalities,
            n_numeric,
            embedding_dim,
            field_order,
            numeric_embedding,
            numeric_options,
        )
        n_fields, width_in = (
            len(field_order),
            field_input_width(field_order, embedding_dim),
        )
        self.n_tasks, self.n_specific, self.n_shared = n_tasks, n_specific, n_shared
        self.routing = routing
        # g_ij of FSCM, one vector per (task, field); N(0, 1/d) gives g . e of
        # unit scale for unit-scale embeddings.
        scale = float(embedding_dim) ** -0.5
        if field_masks and n_specific:
            self.mask_vectors = nn.Parameter(
                torch.randn(n_tasks, n_fields, embedding_dim) * scale
            )
        else:
            self.register_parameter("mask_vectors", None)
        if shared_field_mask and n_shared:
            self.shared_mask_vectors = nn.Parameter(
                torch.randn(n_shared, n_fields, embedding_dim) * scale
            )
        else:
            self.register_parameter("shared_mask_vectors", None)
        self.subnets = nn.ModuleList(
            mlp(width_in, subnet_units, dropout) for _ in range(n_specific + n_shared)
        )
        width = out_width(width_in, subnet_units)
        self.width = width
        shared = list(range(n_specific, n_specific + n_shared))
        # (task i, lower sub-network j): task i never reads task k's specific one.
        self.connections = [
            (i, j) for i in range(n_tasks) for j in ([i] if n_specific else []) + shared
        ]
        self.transforms = nn.ModuleList(
            nn.Linear(width, width, bias=False)
            if routing == "transform"
            else nn.Identity()
            for _ in self.connections
        )
        gate_params = gate_params or {}
        self.gates = nn.ModuleList(
            build_gate(gate, width, width if cell_gates else 1, **gate_params)
            for _ in self.connections
        )
        self.towers = nn.ModuleList(
            TaskTower(width, tower_units, d, dropout) for d in output_dims
        )
        self.l2_penalty = float(l2_penalty)
        self.l0_penalty = float(l0_penalty)
        self.target_sparsity = (
            None if target_sparsity is None else float(target_sparsity)
        )
        self.keep_open = bool(keep_open)
        assert l0_reduction in ("sum", "mean")
        self.l0_reduction = l0_reduction
        # Extra L0 weight of target_sparsity: a buffer, so it is saved with
        # the state_dict (checkpoints, warm_start) and moves with the device.
        self.register_buffer("l0_multiplier", torch.zeros(()))
        # Eval-mode pruning (see ``pruned_plan``); an attribute, not a
        # parameter, so a benchmark can compare with the unpruned pass.
        self.pruned_serving = True
        object.__setattr__(self, "_plan_cache", None)

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        # The pruned plan is derived data, rebuilt lazily after unpickling.
        state = self.__dict__.copy()
        state["_plan_cache"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        # Modules pickled before these attributes existed.
        self.__dict__.setdefault("_plan_cache", None)
        self.__dict__.setdefault("pruned_serving", True)
        self.__dict__.setdefault("keep_open", False)
        self.__dict__.setdefault("target_sparsity", None)
        self.__dict__.setdefault("l0_reduction", "sum")
        self.__dict__.setdefault("n_shared", len(self.subnets) - self.n_specific)
        if "width" not in self.__dict__:  # the towers' input width
            self.width = int(self.gates[0].n_inputs)
        if "shared_mask_vectors" not in self._parameters:
            self.register_parameter("shared_mask_vectors", None)
        if "l0_multiplier" not in self._buffers:
            self.register_buffer("l0_multiplier", torch.zeros(()))

    def train(self, mode: bool = True):
        # Training resumes: the gates will change, drop the pruned copy. Not
        # on train(False): skorch calls it before every predict batch, and the
        # copy's key (the parameters' versions) already catches any change.
        if mode:
            object.__setattr__(self, "_plan_cache", None)
        return super().train(mode)

    # ---------------------------------------------------------------- gates
    def _hard_concrete(self) -> bool:
        return all(isinstance(g, HardConcreteGate) for g in self.gates)

    def effective_log_alphas(self) -> list[torch.Tensor] | None:
        """Each connection's log_alpha after the ``keep_open`` floor (None for
        gates without one). Connection order: ``self.connections``."""
        if not self._hard_concrete():
            return None
        alphas = [g.log_alpha for g in self.gates]
        if not self.keep_open:
            return alphas
        out = list(alphas)
        for i in range(self.n_tasks):
            idx = [c for c, (t, _) in enumerate(self.connections) if t == i]
            flat = torch.cat([alphas[c] for c in idx])
            best = torch.zeros_like(flat, dtype=torch.bool)
            best[int(flat.detach().argmax())] = True
            flat = torch.where(best, flat.clamp(min=_KEEP_OPEN_FLOOR), flat)
            for c, part in zip(idx, flat.split([alphas[c].numel() for c in idx])):
                out[c] = part
        return out

    def gate_values(self, u=None) -> list[torch.Tensor]:
        """Each connection's gate values in the current mode, (1 or B, width
        or 1). ``u``: the lower outputs, for input-dependent gate plugins."""
        alphas = self.effective_log_alphas()
        if alphas is not None:
            return [g.values(a) for g, a in zip(self.gates, alphas)]
        return [g(u[j]) for (_, j), g in zip(self.connections, self.gates)]

    def eval_cell_values(self) -> np.ndarray | None:
        """Eval-mode gate values, (n_connections, width) (a connection gate is
        repeated over the width); None for input-dependent gate plugins."""
        if not self._hard_concrete():
            return None
        was = self.training
        self.train(False)
        try:
            with torch.no_grad():
                rows = [v.expand(1, self.width)[0] for v in self.gate_values()]
        finally:
            self.train(was)
        return torch.stack(rows).cpu().numpy()

    # ------------------------------------------------------------ sub-nets
    def field_mask_weights(self, e: torch.Tensor, vectors=None) -> torch.Tensor:
        """FSCM weights ``relu(tanh(g_ij . e_i))``, shape (B, n_masks, n_fields)."""
        vectors = self.mask_vectors if vectors is None else vectors
        scores = torch.einsum("bfd,kfd->bkf", e, vectors)  # (B, K, F)
        return F.relu(torch.tanh(scores))

    def lower(self, categorical, numeric, which=None):
        """Outputs of the lower sub-networks (a dict j -> u_j, only the ``which``
        ones when given), and the FSCM weights of the specific sub-networks and
        of the shared ones (each None when off)."""
        e = self.fields(categorical, numeric)  # (B, F, d)
        which = range(len(self.subnets)) if which is None else which
        masks = shared_masks = None
        if self.mask_vectors is not None:
            masks = self.field_mask_weights(e)  # (B, K, F)
        if self.shared_mask_vectors is not None:
            shared_masks = self.field_mask_weights(e, self.shared_mask_vectors)
        u = {}
        for j in which:
            if j < self.n_specific and masks is not None:
                x = (e * masks[:, j, :, None]).flatten(1)
            elif j >= self.n_specific and shared_masks is not None:
                x = (e * shared_masks[:, j - self.n_specific, :, None]).flatten(1)
            else:
                x = e.flatten(1)
            u[j] = self.subnets[j](x)
        return u, masks, shared_masks

    # -------------------------------------------------------------- forward
    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        if not self.training and self.pruned_serving:
            pruned = self.pruned_plan()
            if pruned is not None:
                return pruned(categorical, numeric)
        u, _, _ = self.lower(categorical, numeric)
        v = [0.0] * self.n_tasks
        for (i, j), transform, g in zip(
            self.connections, self.transforms, self.gate_values(u)
        ):
            v[i] = v[i] + g * transform(u[j])  # (B, H)
        return tuple(tower(v_i) for tower, v_i in zip(self.towers, v))

    # -------------------------------------------------------------- pruning
    def _plan_key(self):
        # In-place updates (optimizer steps, load_state_dict) bump _version,
        # so a pruned copy built from older weights is never reused.
        return tuple((id(p), p._version) for p in self.parameters())

    def pruned_plan(self):
        """The cached :class:`PrunedRoutingModule` of the current weights, or
        None when the gates are not the input-independent hard-concrete ones.
        Rebuilt when a parameter changed or after training mode."""
        cache = self.__dict__.get("_plan_cache")
        key = self._plan_key()
        if cache is not None and cache[0] == key:
            return cache[1]
        pruned = self.pruned_copy()
        # object.__setattr__: a plain attribute, not a registered submodule,
        # so it stays out of state_dict, parameters() and the optimizer.
        object.__setattr__(self, "_plan_cache", (key, pruned))
        return pruned

    @torch.no_grad()
    def pruned_copy(self):
        """The eval-mode forward pass without its closed cells and
        connections, as a module of its own (what ``export_onnx`` traces), or
        None when the gates are not the input-independent hard-concrete ones.

        For each task: the cells of ``v_i`` open in at least one connection
        (``open``); one matrix ``[g_i1 (.) W_i1 | g_i2 (.) W_i2 | ...][open]``
        over the connections with an open cell (a connection closed on every
        cell is dropped); the first layer of its tower restricted to the
        ``open`` columns (a closed cell is exactly 0, so its column adds
        nothing). Lower sub-networks read by no open connection are not
        computed. The sub-networks, embeddings and the rest of the towers are
        shared with this module, not copied.
        """
        if not self._hard_concrete():
            return None
        was = self.training
        nn.Module.train(self, False)  # not self.train: it clears the cache
        try:
            values = [v.expand(1, self.width)[0] for v in self.gate_values()]
        finally:
            nn.Module.train(self, was)
        tasks, used = [], set()
        for i in range(self.n_tasks):
            conns = [c for c, (t, _) in enumerate(self.connections) if t == i]
            opened = torch.stack([values[c] != 0 for c in conns]).any(0)
            open_idx = torch.nonzero(opened).flatten()
            blocks, subnets = [], []
            for c in conns:
                g = values[c]
                if not bool((g[open_idx] != 0).any()):
                    continue
                transform = self.transforms[c]
                weight = (
                    transform.weight
                    if isinstance(transform, nn.Linear)
                    else torch.eye(self.width, device=g.device)
                )
                blocks.append(g[open_idx, None] * weight[open_idx])
                subnets.append(self.connections[c][1])
            used.update(subnets)
            tower = self.towers[i]
            first = tower.hidden[0] if len(tower.hidden) else tower.out
            # Built at width 1 then given the sliced weight: nn.Linear(0, ...)
            # warns about initializing an empty tensor.
            sliced = nn.Linear(1, first.out_features, bias=first.bias is not None)
            sliced.weight = nn.Parameter(first.weight[:, open_idx].detach().clone())
            sliced.in_features = len(open_idx)
            if first.bias is not None:
                sliced.bias = nn.Parameter(first.bias.detach().clone())
            sliced.requires_grad_(False)
            route = (
                torch.cat(blocks, 1)
                if blocks
                else torch.zeros(len(open_idx), 0, device=first.weight.device)
            )
            rest = tower.hidden[1:] if len(tower.hidden) else None
            tasks.append(
                (subnets, route, sliced, rest, tower.out if rest is not None else None)
            )
        return PrunedRoutingModule(self, sorted(used), tasks)

    def serving_flops(self, pruned: bool = True) -> int:
        """Multiply-adds of one row's eval-mode forward pass: the linear
        layers, the FSCM scores and products and the gate products (the
        embedding lookups and activations are not counted)."""
        if pruned:
            module = self.pruned_plan()
            if module is not None:
                return module.serving_flops()
        n_fields, dim = self.fields_shape()
        total = sum(_linear_flops(net) for net in self.subnets)
        if self.mask_vectors is not None:
            total += self.n_tasks * n_fields * dim * 2  # g . e, then w * e
        if self.shared_mask_vectors is not None:
            total += self.n_shared * n_fields * dim * 2
        total += sum(_linear_flops(t) for t in self.transforms)
        total += len(self.connections) * self.width  # m_ij (.) W_ij u_j
        total += sum(_linear_flops(t) for t in self.towers)
        return int(total)

    def fields_shape(self) -> tuple[int, int]:
        """(number of fields, embedding width)."""
        return self.fields.n_fields, int(self.fields.embedding_dim)

    # -------------------------------------------------------------- penalty
    def regularization(self) -> torch.Tensor:
        """``l2_penalty * L2(weights) + lambda * L0(gates)`` (eq. 4), L0 the
        expected L0 norm or (``l0_reduction="mean"``) the mean open
        probability of the gate cells; lambda is ``l0_penalty`` plus the
        ``target_sparsity`` multiplier."""
        total = torch.zeros((), device=self.fields.offsets.device)
        if self.l2_penalty:
            # The paper's L_reg_w, on the weights: the linear layers'
            # matrices, as the family's weight decay (decayed_parameters),
            # not the embeddings, biases, gates or FSCM vectors. On the
            # embeddings too, it shrank the piecewise-linear fields' 48 bins a
            # field: MSSM on CPS1988 scored 0.7419 / 0.7467 mean ROC AUC
            # (seeds 0, 1) that way, 0.7442 / 0.7486 with this.
            weights = decayed_parameters(self)
            total = total + self.l2_penalty * sum(p.pow(2).sum() for p in weights)
        if self.l0_penalty or self.target_sparsity is not None:
            alphas = self.effective_log_alphas()
            if alphas is not None:
                probs = torch.cat(
                    [g.prob_nonzero(a) for g, a in zip(self.gates, alphas)]
                )
                expected_l0, n_cells = probs.sum(), probs.numel()
            else:  # other gate plugins: their own penalty
                # A plugin need not say how many values it gives (the
                # protocol asks only for forward); 1 each then.
                n_cells = sum(getattr(g, "n_outputs", 1) for g in self.gates)
                expected_l0 = sum(gate_penalty(g) for g in self.gates)
            open_share = expected_l0 / n_cells
            term = open_share if self.l0_reduction == "mean" else expected_l0
            weight = self.l0_penalty
            if self.target_sparsity is not None:
                if self.training and torch.is_grad_enabled():
                    # A proportional controller on the share of cells closed
                    # at eval: lambda = l0_penalty + gain * (target - closed)+.
                    # Measured on the eval-mode gates, not on P(z > 0): a cell
                    # closed at eval (log_alpha <= -2.4) still has P(z > 0)
                    # ~ 0.3, so a budget on the expected L0 norm overshoots
                    # (0.84 closed for a 0.6 target on Adult). Not an
                    # integrating (Lagrangian) multiplier: under Adam the
                    # gates close at about lr per step whatever the weight, so
                    # an integral winds up while they travel and overshoots
                    # (0.93 for 0.6 on Adult).
                    gap = self.target_sparsity - self._eval_closed_share()
                    self.l0_multiplier.fill_(_CONTROL_GAIN * max(gap, 0.0))
                weight = weight + self.l0_multiplier
            total = total + weight * term
        return total

    @torch.no_grad()
    def _eval_closed_share(self) -> float:
        alphas = self.effective_log_alphas()
        if alphas is None:
            return 0.0
        closed = torch.cat(
            [(g.deterministic(a) == 0).flatten() for g, a in zip(self.gates, alphas)]
        )
        return float(closed.float().mean())

    # ----------------------------------------------------------- statistics
    @torch.no_grad()
    def sparsity_statistics(self, categorical, numeric):
        """Over the batch, in the module's current mode: the mean FSCM weight
        per (task, field), per (shared sub-network, field) (each None when
        off), and per connection the share of rows with each cell closed,
        (n_connections, width)."""
        u, masks, shared_masks = self.lower(categorical, numeric)
        rows = []
        for values in self.gate_values(u):
            closed = (values == 0).float().mean(dim=0)
            rows.append(closed.expand(self.width))
        mean = lambda m: None if m is None else m.mean(dim=0).cpu().numpy()  # noqa: E731
        return mean(masks), mean(shared_masks), torch.stack(rows).cpu().numpy()


def _linear_flops(module) -> int:
    return sum(
        m.in_features * m.out_features
        for m in module.modules()
        if isinstance(m, nn.Linear)
    )


class PrunedRoutingModule(nn.Module):
    """Eval-mode :class:`SparseRoutingModule` without its closed cells and
    connections (built by :meth:`SparseRoutingModule.pruned_copy`).
    Same inputs and outputs; the gate values are folded into the routing
    matrices, so the module has no gates."""

    def __init__(self, source: SparseRoutingModule, used, tasks):
        super().__init__()
        self.fields = source.fields
        self.n_specific = source.n_specific
        self.used = [int(j) for j in used]
        self.subnets = nn.ModuleDict({str(j): source.subnets[j] for j in self.used})
        specific = [j for j in self.used if j < source.n_specific]
        shared = [j - source.n_specific for j in self.used if j >= source.n_specific]
        # Only the masks of the sub-networks that are still read.
        self.mask_rows = {}
        if source.mask_vectors is not None and specific:
            self.register_buffer(
                "mask_vectors", source.mask_vectors[specific].detach().clone()
            )
            self.mask_rows.update({j: k for k, j in enumerate(specific)})
        else:
            self.mask_vectors = None
        if source.shared_mask_vectors is not None and shared:
            self.register_buffer(
                "shared_mask_vectors",
                source.shared_mask_vectors[shared].detach().clone(),
            )
            self.shared_rows = {j + source.n_specific: k for k, j in enumerate(shared)}
        else:
            self.shared_mask_vectors = None
            self.shared_rows = {}
        self.task_subnets = [list(t[0]) for t in tasks]
        for i, (_, route, _, _, _) in enumerate(tasks):
            self.register_buffer(f"route_{i}", route.detach().clone())
        self.firsts = nn.ModuleList(t[2] for t in tasks)
        self.rests = nn.ModuleList(
            nn.Identity() if t[3] is None else t[3] for t in tasks
        )
        self.outs = nn.ModuleList(
            nn.Identity() if t[4] is None else t[4] for t in tasks
        )
        self.n_open = [int(t[1].shape[0]) for t in tasks]
        self.eval()

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        e = self.fields(categorical, numeric)  # (B, F, d)
        # One einsum per mask family, as in the unpruned module (an einsum
        # per sub-network ran slower in onnxruntime).
        masks = shared = None
        if self.mask_vectors is not None:
            masks = F.relu(
                torch.tanh(torch.einsum("bfd,kfd->bkf", e, self.mask_vectors))
            )
        if self.shared_mask_vectors is not None:
            shared = F.relu(
                torch.tanh(torch.einsum("bfd,kfd->bkf", e, self.shared_mask_vectors))
            )
        u = {}
        for j in self.used:
            if j in self.mask_rows:
                x = (e * masks[:, self.mask_rows[j], :, None]).flatten(1)
            elif j in self.shared_rows:
                x = (e * shared[:, self.shared_rows[j], :, None]).flatten(1)
            else:
                x = e.flatten(1)
            u[j] = self.subnets[str(j)](x)
        outputs = []
        for i, subnets in enumerate(self.task_subnets):
            route = getattr(self, f"route_{i}")
            if subnets:
                v = F.linear(torch.cat([u[j] for j in subnets], 1), route)
            else:  # no open cell: the tower sees only its bias
                v = e.new_zeros(e.shape[0], 0)
            out = self.outs[i](self.rests[i](self.firsts[i](v)))
            outputs.append(out.squeeze(-1) if out.shape[-1] == 1 else out)
        return tuple(outputs)

    def serving_flops(self) -> int:
        """Multiply-adds of one row (as :meth:`SparseRoutingModule.serving_flops`)."""
        n_fields, dim = self.fields.n_fields, int(self.fields.embedding_dim)
        total = sum(_linear_flops(self.subnets[str(j)]) for j in self.used)
        total += (len(self.mask_rows) + len(self.shared_rows)) * n_fields * dim * 2
        total += sum(
            getattr(self, f"route_{i}").numel() for i in range(len(self.firsts))
        )
        for first, rest, out in zip(self.firsts, self.rests, self.outs):
            total += _linear_flops(first) + _linear_flops(rest) + _linear_flops(out)
        return int(total)


def _batched_statistics(module, inputs, batch_size=4096):
    """Average ``sparsity_statistics`` over the training inputs, in eval mode:
    (field masks, shared field masks, closed share per connection and cell)."""
    was_training = module.training
    module.eval()
    n = len(inputs["numeric"])
    device = module.fields.offsets.device
    sums = [None, None, None]
    try:
        for start in range(0, n, batch_size):
            batch = {
                k: torch.as_tensor(v[start : start + batch_size], device=device)
                for k, v in inputs.items()
            }
            size = len(batch["numeric"])
            for k, stat in enumerate(module.sparsity_statistics(**batch)):
                if stat is not None:
                    sums[k] = stat * size if sums[k] is None else sums[k] + stat * size
    finally:
        module.train(was_training)
    n = max(n, 1)
    return tuple(None if s is None else s / n for s in sums)


class SparsityLog(Callback):
    """Records ``connection_sparsity`` (share of gate cells exactly 0 in eval
    mode) in the history at the end of every epoch. Only for the
    input-independent hard-concrete gates; other gate plugins record NaN."""

    def on_epoch_end(self, net, **kwargs):
        # The bare module: under accelerate with several processes module_ is
        # wrapped in DistributedDataParallel.
        cells = bare_module(net.module_).eval_cell_values()
        value = float("nan") if cells is None else float((cells == 0).mean())
        net.history.record("connection_sparsity", value)


class _SparsityLogMixin:
    """Adds :class:`SparsityLog` to a net's default callbacks, before the
    epoch table is printed, so that it is one of its columns."""

    def get_default_callbacks(self):
        callbacks = list(super().get_default_callbacks())
        names = [name for name, _ in callbacks]
        at = names.index("print_log") if "print_log" in names else len(callbacks)
        callbacks.insert(at, ("connection_sparsity", SparsityLog()))
        return callbacks


class SparseRoutingNet(_SparsityLogMixin, MultiTaskNet):
    """MultiTaskNet that logs the gates' sparsity every epoch."""


class AcceleratedSparseRoutingNet(_SparsityLogMixin, AcceleratedMultiTaskNet):
    """The same under an ``accelerate.Accelerator``."""


class _SparseRoutingClassifier(FieldClassifierBase):
    _net_class = SparseRoutingNet
    _accelerated_net_class = AcceleratedSparseRoutingNet

    def _fitted_extras(self, net, inputs) -> dict:
        module = net.module_
        masks, shared_masks, closed = _batched_statistics(module, inputs)
        n_tasks = module.n_tasks
        task_of = np.array([i for i, _ in module.connections])
        extras = {
            "connection_sparsity_": float(closed.mean()),
            "task_sparsity_": np.array(
                [closed[task_of == i].mean() for i in range(n_tasks)], dtype=np.float64
            ),
            "cell_map_": closed,
            "cell_map_connections_": np.array(module.connections, dtype=np.int64),
        }
        for name, value in (
            ("field_masks_", masks),
            ("shared_field_masks_", shared_masks),
        ):
            if value is not None:
                extras[name] = value
            elif hasattr(self, name):  # left by an earlier fit with masks
                delattr(self, name)
        return extras
