"""Edge-level linear maps evaluated without materialising concatenated per-edge inputs.

A Linear layer applied to ``cat([X₁[idx₁], X₂[idx₂], …])`` equals ``Σ_k (X_k W_kᵀ)[idx_k] + b``
with W = [W₁ | W₂ | …] split by columns: each block multiplies the small, un-gathered tensor
(atoms instead of edges, edges instead of triplets) and only the result is gathered. Same
parameters, same function, a fraction of the floating-point work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import CGConv


def split_linear(lin: torch.nn.Linear, parts: list[tuple[Tensor, Tensor | None]]) -> Tensor:
    """``lin(cat([X[idx] if idx is not None else X for X, idx in parts], -1))``, computed blockwise."""
    out = None
    start = 0
    for x, index in parts:
        y = F.linear(x, lin.weight[:, start:start + x.size(-1)])
        start += x.size(-1)
        if index is not None:
            y = y.index_select(0, index)
        out = y if out is None else out + y
    return out if lin.bias is None else out + lin.bias


class FactorisedCGConv(CGConv):
    """``CGConv(w, dim=w, aggr="add")`` (same parameters and output) with the gate and core
    linears applied blockwise: atom features are projected once per atom, not once per edge.

    x'_i = x_i + Σ_{j→i} σ(W_f z_ij + b_f) ⊙ softplus(W_s z_ij + b_s), z_ij = x_i ‖ x_j ‖ e_ij.
    """

    def __init__(self, channels: int, dim: int):
        super().__init__(channels, dim=dim, aggr="add")

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        src, dst = edge_index  # PyG flow source → target: messages from x_j = x[src] to x_i = x[dst]
        c = x.size(-1)
        weight = torch.cat([self.lin_f.weight, self.lin_s.weight], dim=0)  # (2c, 2c + dim)
        bias = torch.cat([self.lin_f.bias, self.lin_s.bias], dim=0)
        node_i = F.linear(x, weight[:, :c]).index_select(0, dst)
        node_j = F.linear(x, weight[:, c:2 * c]).index_select(0, src)
        gate, core = (F.linear(edge_attr, weight[:, 2 * c:], bias) + node_i + node_j).chunk(2, dim=-1)
        messages = gate.sigmoid() * F.softplus(core)
        return x.index_add(0, dst, messages.to(x.dtype))  # dtypes differ under autocast
