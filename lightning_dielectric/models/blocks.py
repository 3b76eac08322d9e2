"""Message-passing blocks of OptiMetal2B / OptiMetal3B."""

from __future__ import annotations

import torch
from torch import Tensor
import torch.nn.functional as F
import torch_geometric.nn

from lightning_dielectric.models.convs import EdgeFeatures, FactorisedCGConv, FactorisedTransformerConv, split_linear
from lightning_dielectric.models.members import member_linear
from lightning_dielectric.models.norms import GraphLayerNorm
from lightning_dielectric.models.pairs import EdgePairs, gather


class MLP(torch_geometric.nn.MLP):
    """``torch_geometric.nn.MLP`` (same parameters, keys and output) whose Linear layers also take
    the member-major features of a fused network (``models.members``).

    Linear → norm → activation → dropout per hidden layer, then the plain last Linear.
    """

    def hidden(self, x: Tensor) -> Tensor:
        """The input of the last Linear."""
        for lin, norm, p in zip(self.lins[:-1], self.norms, self.dropout):
            x = F.dropout(self.act(norm(member_linear(x, lin.weight, lin.bias))), p=p, training=self.training)
        return x

    def forward(self, x: Tensor) -> Tensor:
        last = self.lins[-1]
        return member_linear(self.hidden(x), last.weight, last.bias)


def mlp(channels: list[int]) -> MLP:
    """:class:`MLP` with ReLU, batch norm on hidden layers and a plain last layer.

    ``allow_single_element`` lets a batch of one row (e.g. a last batch of one graph) fall back to
    the running statistics instead of failing; it adds no parameters.
    """
    return MLP(channels, act="relu", plain_last=True, norm="batch_norm", norm_kwargs={"allow_single_element": True})


def make_conv(kind: str, width: int, heads: int = 2) -> torch.nn.Module:
    """Two-body convolution: ``"cgc"`` → CGConv(w, dim=w, aggr="add"); ``"tc"`` →
    TransformerConv(w, w/heads, heads, concat, beta, edge_dim=w) (both factorised, same parameters)."""
    if kind == "cgc":
        return FactorisedCGConv(width, dim=width)
    if kind == "tc":
        return FactorisedTransformerConv(width, heads)
    raise ValueError(f"unknown conv {kind!r}; expected 'cgc' or 'tc'")


class InteractionBlock(torch.nn.Module):
    """x ← conv(x, edge_index, e); x ← x + MLP(w → m·w → w)(x); x ← LayerNorm(w, mode="graph")(x).

    ``e`` is per edge, or per edge pair with ``pairs`` the graph's :class:`EdgePairs` (``models.pairs``).
    """

    def __init__(self, conv: torch.nn.Module, width: int, mlp_ratio: int = 6):
        super().__init__()
        self.conv = conv
        self.mlp = mlp([width, mlp_ratio * width, width])
        self.norm = GraphLayerNorm(width)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: EdgeFeatures, batch: Tensor, num_graphs: int,
                pairs: EdgePairs | None = None) -> Tensor:
        x = self.conv(x, edge_index, edge_attr, pairs)
        x = x + self.mlp(x)
        return self.norm(x, batch, num_graphs)


class TripletBlock(torch.nn.Module):
    """Three-body block on atoms x (n, w), edges e (E, w) and triplet angles a (T, w).

    1. e ← LN(e + Linear(3w → w)(x_src ‖ x_dst ‖ e))
    2. a ← LN(a + Linear(3w → w)(e₁ ‖ e₂ ‖ a)) for triplet (e₁, e₂)
    3. line graph (nodes = edges, edges = triplets, features a): e ← InteractionBlock(TC w/8 × 8 heads)
    4. atom graph with the updated e: x ← InteractionBlock(TC w/8 × 8 heads)

    All LayerNorms are PyG ``LayerNorm(w, mode="graph")`` over the rows of each structure
    (:class:`GraphLayerNorm`). The
    Linear(3w → w) maps are evaluated blockwise (:func:`split_linear`), identical in value. When
    ``e`` is given once per edge pair (``edge_pair`` (E,)) and ``a`` once per swapped-triplet pair
    (``triplet_pair`` (T,)) — the inputs of the first block — their residuals and their blocks of
    the Linear maps are computed per pair and gathered; the updated e and a are per edge/triplet.
    """

    def __init__(self, width: int, heads: int = 8, mlp_ratio: int = 6):
        super().__init__()
        self.edge_lin = torch.nn.Linear(3 * width, width)
        self.edge_norm = GraphLayerNorm(width)
        self.angle_lin = torch.nn.Linear(3 * width, width)
        self.angle_norm = GraphLayerNorm(width)
        self.line_block = InteractionBlock(make_conv("tc", width, heads), width, mlp_ratio)
        self.atom_block = InteractionBlock(make_conv("tc", width, heads), width, mlp_ratio)

    def forward(self, x, e, a, edge_index, triplet_index, batch, edge_batch, triplet_batch, num_graphs,
                edge_pair=None, triplet_pair=None):
        src, dst = edge_index
        e_update = split_linear(self.edge_lin.weight, self.edge_lin.bias, [(x, src), (x, dst), (e, edge_pair)])
        e = self.edge_norm(gather(e, edge_pair) + e_update, edge_batch, num_graphs)
        t1, t2 = triplet_index
        a_update = split_linear(self.angle_lin.weight, self.angle_lin.bias, [(e, t1), (e, t2), (a, triplet_pair)])
        a = self.angle_norm(gather(a, triplet_pair) + a_update, triplet_batch, num_graphs)
        e = self.line_block(e, triplet_index, a, edge_batch, num_graphs)
        x = self.atom_block(x, edge_index, e, batch, num_graphs)
        return x, e, a

