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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._core.layers import TaskTower, mlp, out_width
from ..plugins import build_gate, gate_penalty
from ._base import FieldClassifierBase, field_input_width
from ._fields import FieldEmbedding


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
    cell_gates : bool
        One gate per cell of ``v_i`` (CSSM) instead of one per connection.
    routing : {"transform", "average"}
        ``W_ij u_j`` or ``u_j`` on each connection.
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
        self.n_tasks, self.n_specific = n_tasks, n_specific
        self.routing = routing
        if field_masks and n_specific:
            # g_ij of FSCM, one vector per (task, field); N(0, 1/d) gives
            # g . e of unit scale for unit-scale embeddings.
            scale = float(embedding_dim) ** -0.5
            self.mask_vectors = nn.Parameter(
                torch.randn(n_tasks, n_fields, embedding_dim) * scale
            )
        else:
            self.register_parameter("mask_vectors", None)
        self.subnets = nn.ModuleList(
            mlp(width_in, subnet_units, dropout) for _ in range(n_specific + n_shared)
        )
        width = out_width(width_in, subnet_units)
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

    def field_mask_weights(self, e: torch.Tensor) -> torch.Tensor:
        """FSCM weights ``relu(tanh(g_ij . e_i))``, shape (B, n_tasks, n_fields)."""
        scores = torch.einsum("bfd,kfd->bkf", e, self.mask_vectors)  # (B, K, F)
        return F.relu(torch.tanh(scores))

    def lower(self, categorical, numeric):
        """Outputs of the lower sub-networks, and the FSCM weights (or None)."""
        e = self.fields(categorical, numeric)  # (B, F, d)
        shared_in = e.flatten(1)  # (B, F*d)
        masks = None
        if self.mask_vectors is not None:
            masks = self.field_mask_weights(e)  # (B, K, F)
            specific_in = [
                (e * masks[:, k, :, None]).flatten(1) for k in range(self.n_tasks)
            ]
        else:
            specific_in = [shared_in] * self.n_specific
        u = [self.subnets[j](specific_in[j]) for j in range(self.n_specific)]
        u += [net(shared_in) for net in self.subnets[self.n_specific :]]
        return u, masks

    def forward(self, categorical, numeric) -> tuple[torch.Tensor, ...]:
        u, _ = self.lower(categorical, numeric)
        v = [0.0] * self.n_tasks
        for (i, j), transform, gate in zip(
            self.connections, self.transforms, self.gates
        ):
            v[i] = v[i] + gate(u[j]) * transform(u[j])  # (B, H)
        return tuple(tower(v_i) for tower, v_i in zip(self.towers, v))

    def regularization(self) -> torch.Tensor:
        """``l2_penalty * L2(weights) + l0_penalty * L0(gates)`` (eq. 4)."""
        total = torch.zeros((), device=self.fields.offsets.device)
        if self.l2_penalty:
            weights = [
                p
                for name, p in self.named_parameters()
                if not name.startswith(("gates.", "mask_vectors"))
            ]
            total = total + self.l2_penalty * sum(p.pow(2).sum() for p in weights)
        if self.l0_penalty:
            total = total + self.l0_penalty * sum(gate_penalty(g) for g in self.gates)
        return total

    @torch.no_grad()
    def sparsity_statistics(self, categorical, numeric) -> tuple[np.ndarray, float]:
        """Mean FSCM weight per (task, field) over the batch and the share of
        gate cells that are exactly 0, both in the module's current mode."""
        u, masks = self.lower(categorical, numeric)
        closed = total = 0
        for (_, j), gate in zip(self.connections, self.gates):
            values = gate(u[j])
            closed += (values == 0).float().mean(dim=0).sum().item()
            total += values.shape[-1]
        mean_masks = masks.mean(dim=0).cpu().numpy() if masks is not None else None
        return mean_masks, closed / max(total, 1)


def _batched_statistics(module, inputs, batch_size=4096):
    """Average ``sparsity_statistics`` over the training inputs, in eval mode."""
    was_training = module.training
    module.eval()
    n = len(inputs["numeric"])
    device = module.fields.offsets.device
    mask_sum, sparsity_sum = None, 0.0
    try:
        for start in range(0, n, batch_size):
            batch = {
                k: torch.as_tensor(v[start : start + batch_size], device=device)
                for k, v in inputs.items()
            }
            masks, sparsity = module.sparsity_statistics(**batch)
            size = len(batch["numeric"])
            sparsity_sum += sparsity * size
            if masks is not None:
                mask_sum = masks * size if mask_sum is None else mask_sum + masks * size
    finally:
        module.train(was_training)
    n = max(n, 1)
    return (None if mask_sum is None else mask_sum / n), sparsity_sum / n


class _SparseRoutingClassifier(FieldClassifierBase):
    def _fitted_extras(self, net, inputs) -> dict:
        masks, sparsity = _batched_statistics(net.module_, inputs)
        extras = {"connection_sparsity_": float(sparsity)}
        if masks is not None:
            extras["field_masks_"] = masks
        elif hasattr(self, "field_masks_"):  # left by an earlier fit with masks
            del self.field_masks_
        return extras
