"""Edge-level linear maps evaluated without materialising concatenated per-edge inputs.

A Linear layer applied to ``cat([X₁[idx₁], X₂[idx₂], …])`` equals ``Σ_k (X_k W_kᵀ)[idx_k] + b``
with W = [W₁ | W₂ | …] split by columns: each block multiplies the small, un-gathered tensor
(atoms instead of edges, edges instead of triplets, edge pairs instead of edges) and only the
result is gathered. Same parameters, same function, a fraction of the floating-point work.

The convolutions take edge features either per edge (``pairs=None``) or once per edge pair
(``edge_attr`` (P, ·) with ``pairs`` the :class:`~lightning_dielectric.models.pairs.EdgePairs`),
in which case their edge projections run once per pair. Edge features that are the output of a
Linear layer, e = W_l h + b_l, may be passed as ``(h, lin)``: a projection W e is then evaluated
as (W W_l) h + W b_l, so e itself is never formed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import CGConv, TransformerConv
from torch_geometric.utils import softmax

from lightning_dielectric.models.members import member_linear, member_matmul
from lightning_dielectric.models.pairs import EdgePairs, gather


def split_linear(weight: Tensor, bias: Tensor | None, parts: list[tuple[Tensor, Tensor | None]]) -> Tensor:
    """``F.linear(cat([X[idx] if idx is not None else X for X, idx in parts], -1), weight, bias)``,
    computed blockwise; with member-major parts (``models.members``) member k's blocks read
    member k's columns."""
    members = sum(x.size(-1) for x, _ in parts) // weight.size(1)
    out = None
    start = 0
    for x, index in parts:
        width = x.size(-1) // members
        y = member_linear(x, weight[:, start:start + width])
        start += width
        if index is not None:
            y = y.index_select(0, index)
        out = y if out is None else out + y
    return out if bias is None else out + bias


EdgeFeatures = Tensor | tuple[Tensor, torch.nn.Linear]


def project_edges(edge_attr: EdgeFeatures, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(e, weight, bias)`` for edge features ``e`` or ``(h, lin)`` with e = lin(h)."""
    if isinstance(edge_attr, Tensor):
        return member_linear(edge_attr, weight, bias)
    hidden, lin = edge_attr
    members = lin.weight.size(0) // weight.size(1)
    shift = member_matmul(weight, lin.bias, members)
    return member_linear(hidden, member_matmul(weight, lin.weight, members), shift if bias is None else shift + bias)


class FactorisedCGConv(CGConv):
    """``CGConv(w, dim=w, aggr="add")`` (same parameters and output) with the gate and core
    linears applied blockwise: atom features are projected once per atom, not once per edge.

    x'_i = x_i + Σ_{j→i} σ(W_f z_ij + b_f) ⊙ softplus(W_s z_ij + b_s), z_ij = x_i ‖ x_j ‖ e_ij.
    """

    def __init__(self, channels: int, dim: int):
        super().__init__(channels, dim=dim, aggr="add")

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: EdgeFeatures, pairs: EdgePairs | None = None) -> Tensor:
        src, dst = edge_index  # PyG flow source → target: messages from x_j = x[src] to x_i = x[dst]
        c = self.channels
        members = self.lin_f.weight.size(0) // c
        # per member: rows [W_f; W_s] (2c, 2c + dim), so that z holds (gate, core) of each member in turn
        weight = torch.stack([self.lin_f.weight.view(members, c, -1), self.lin_s.weight.view(members, c, -1)], 1)
        bias = torch.stack([self.lin_f.bias.view(members, c), self.lin_s.bias.view(members, c)], 1)
        weight, bias = weight.view(members * 2 * c, -1), bias.view(-1)
        edge = gather(project_edges(edge_attr, weight[:, 2 * c:], bias), None if pairs is None else pairs.pair)
        z = (edge + split_linear(weight[:, :2 * c], None, [(x, dst), (x, src)])).unflatten(-1, (members, 2, c))
        messages = (z[..., 0, :].sigmoid() * F.softplus(z[..., 1, :])).flatten(-2)
        return x.index_add(0, dst, messages.to(x.dtype))  # dtypes differ under autocast



class FactorisedTransformerConv(TransformerConv):
    """``TransformerConv(w, w/h, heads=h, concat=True, beta=True, edge_dim=w)`` (same parameters,
    state-dict keys and output) written as a few gathers and scatters instead of PyG's generic
    message passing.

    Per head (C = w/h channels): α_ij = softmax_{j→i}(q_i · (k_j + W_e e_ij) / √C),
    m_i = Σ_{j→i} α_ij (v_j + W_e e_ij); x'_i = β_i r_i + (1 − β_i) m_i with r_i = W_r x_i + b_r and
    β_i = σ(W_β (m_i ‖ r_i ‖ m_i − r_i)); q, k, v = W_{q,k,v} x + b.

    With edge features per edge pair (``pairs``), W_e e is computed once per pair and never
    gathered per edge: both edges of pair p (b_p → a_p and a_p → b_p) read the same row. With the
    pairing's atom pairs, the terms that depend on the atoms only, q_i · k_j and Σ α_ij v_j, are
    computed once per ordered atom pair (i, j) rather than once per periodic image.
    """

    def __init__(self, width: int, heads: int):
        if width % heads:
            raise ValueError(f"width {width} must be divisible by the number of heads {heads}")
        super().__init__(width, width // heads, heads=heads, concat=True, beta=True, edge_dim=width)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: EdgeFeatures, pairs: EdgePairs | None = None) -> Tensor:
        heads = (-1, self.out_channels)  # a fused network's K members make K·h heads
        edge = project_edges(edge_attr, self.lin_edge.weight).unflatten(-1, heads)  # (E or P, K·h, C)
        q, k, v = (member_linear(x, lin.weight, lin.bias).unflatten(-1, heads)
                   for lin in (self.lin_query, self.lin_key, self.lin_value))
        if pairs is None:
            out = self._attend_per_edge(q, k, v, edge, edge_index)
        else:
            out = self._attend_per_pair(q, k, v, edge, edge_index, pairs)
        out = out.flatten(1)
        root = member_linear(x, self.lin_skip.weight, self.lin_skip.bias)
        beta = split_linear(self.lin_beta.weight, None, [(out, None), (root, None), (out - root, None)]).sigmoid()
        members = (beta.size(-1), -1)  # one β per member and row
        beta, root, out = beta.unsqueeze(-1), root.unflatten(-1, members), out.unflatten(-1, members)
        return (beta * root + (1 - beta) * out).flatten(1)

    def _attend_per_edge(self, q: Tensor, k: Tensor, v: Tensor, edge: Tensor, edge_index: Tensor) -> Tensor:
        """m (n, h, C) from per-edge W_e e (E, h, C); messages from x_j = x[src] to x_i = x[dst]."""
        src, dst = edge_index
        score = (q.index_select(0, dst) * (k.index_select(0, src) + edge)).sum(-1)  # (E, h)
        alpha = softmax(score / math.sqrt(self.out_channels), dst, num_nodes=q.size(0))
        messages = (v.index_select(0, src) + edge) * alpha.unsqueeze(-1)
        return messages.new_zeros(q.shape).index_add_(0, dst, messages)

    def _attend_per_pair(self, q: Tensor, k: Tensor, v: Tensor, edge: Tensor, edge_index: Tensor,
                         pairs: EdgePairs) -> Tensor:
        """m (n, h, C) from per-pair W_e e (P, h, C); the edges listed pair by pair (``models.pairs``)."""
        b, a = edge_index.index_select(1, pairs.rep)  # pair p: b_p → a_p, then its reverse a_p → b_p
        dst, src = torch.cat([a, b]), torch.cat([b, a])
        on_edge = torch.cat([(q.index_select(0, a) * edge).sum(-1), (q.index_select(0, b) * edge).sum(-1)])
        atoms = pairs.atoms
        if atoms is None:
            on_atoms = (q.index_select(0, dst) * k.index_select(0, src)).sum(-1)  # q_i · k_j per edge
        else:
            on_atoms = (q.index_select(0, atoms.dst) * k.index_select(0, atoms.src)).sum(-1).index_select(0, atoms.index)
        alpha = softmax((on_atoms + on_edge) / math.sqrt(self.out_channels), dst, num_nodes=q.size(0))  # (E, h)
        to_a, to_b = alpha.unsqueeze(-1).chunk(2)
        out = q.new_zeros(q.shape, dtype=torch.promote_types(alpha.dtype, edge.dtype))  # dtypes differ under autocast
        out = out.index_add_(0, a, to_a * edge).index_add_(0, b, to_b * edge)
        if atoms is None:
            return out.index_add_(0, dst, alpha.unsqueeze(-1) * v.index_select(0, src))
        weight = alpha.new_zeros(atoms.dst.size(0), alpha.size(1)).index_add_(0, atoms.index, alpha)  # Σ α over images
        return out.index_add_(0, atoms.dst, weight.unsqueeze(-1) * v.index_select(0, atoms.src))
