"""The direct reference forward: every feature per edge and per triplet, PyG's own message passing.

This is the models' forward as on commit 68e1f57, before edge pairing and the factorised
convolutions (``models.pairs``, ``models.convs``): edge features from each edge's own length,
PyG ``CGConv`` / ``TransformerConv`` message passing and PyG ``LayerNorm``. It computes the same
function as ``model(data)`` with the same parameters (up to rounding) at several times the cost;
the tests compare the two, and ``benchmarks/bench_models.py`` times it as the baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import CGConv, LayerNorm, TransformerConv

from lightning_dielectric.models.geometry import edge_vectors, graph_batch, triplet_cosines
from lightning_dielectric.models.optimetal2b import OptiMetal2B


def direct_interaction(block, x: Tensor, edge_index: Tensor, e: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """An ``InteractionBlock`` with PyG's own convolution and ``LayerNorm``, e per edge."""
    pyg = CGConv if isinstance(block.conv, CGConv) else TransformerConv
    x = pyg.forward(block.conv, x, edge_index, e)
    x = x + block.mlp(x)
    return LayerNorm.forward(block.norm, x, batch, num_graphs)


def direct_forward(model: torch.nn.Module, data) -> tuple[Tensor, Tensor]:
    """``model(data)`` of an ``OptiMetal2B`` / ``OptiMetal3B`` computed directly (ε (B, 2001, 2), ω_D (B,) eV)."""
    batch, num_graphs = graph_batch(data)
    edge_index = data.edge_index
    vec = edge_vectors(data.pos, data.cell, data.cell_offset, edge_index, batch)
    x = model.node_mlp(model.elements(data.z))
    e = model.edge_mlp(model.rbf(vec.norm(dim=-1)))
    if isinstance(model, OptiMetal2B):
        for block in model.blocks:
            x = direct_interaction(block, x, edge_index, e, batch, num_graphs)
        return model.heads(model.pool(x, batch, num_graphs))
    triplet_index = data.triplet_index
    a = model.angle_mlp(model.angles(triplet_cosines(vec, triplet_index)))
    edge_batch = batch[edge_index[0]]
    triplet_batch = edge_batch[triplet_index[0]]
    (src, dst), (t1, t2) = edge_index, triplet_index
    for block in model.blocks:
        e = LayerNorm.forward(block.edge_norm, e + block.edge_lin(torch.cat([x[src], x[dst], e], -1)), edge_batch,
                              num_graphs)
        a = LayerNorm.forward(block.angle_norm, a + block.angle_lin(torch.cat([e[t1], e[t2], a], -1)),
                              triplet_batch, num_graphs)
        e = direct_interaction(block.line_block, e, triplet_index, a, edge_batch, num_graphs)
        x = direct_interaction(block.atom_block, x, edge_index, e, batch, num_graphs)
    return model.heads(model.pool(x, batch, num_graphs))
