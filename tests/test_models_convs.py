"""The blockwise (factorised) edge linears and the graph LayerNorm equal their PyG definitions."""

from __future__ import annotations

import torch
from torch_geometric.nn import CGConv, LayerNorm

from lightning_dielectric.models.convs import FactorisedCGConv, split_linear
from lightning_dielectric.models.norms import GraphLayerNorm


def test_factorised_cgconv_equals_pyg_cgconv():
    torch.manual_seed(0)
    conv = FactorisedCGConv(8, dim=8)
    x, e = torch.randn(5, 8, requires_grad=True), torch.randn(12, 8)
    edge_index = torch.randint(0, 5, (2, 12))
    ours = conv(x, edge_index, e)
    reference = CGConv.forward(conv, x, edge_index, e)  # PyG's message-passing implementation
    torch.testing.assert_close(ours, reference)
    g_ours = torch.autograd.grad(ours.square().sum(), [x, conv.lin_f.weight])
    g_ref = torch.autograd.grad(reference.square().sum(), [x, conv.lin_f.weight])
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)
    assert sum(p.numel() for p in conv.parameters()) == 2 * (24 * 8 + 8)


def test_split_linear_equals_concatenation():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3 * 4, 4)
    atoms, edges = torch.randn(6, 4), torch.randn(9, 4)
    src, dst = torch.randint(0, 6, (2, 9))
    expected = lin(torch.cat([atoms[src], atoms[dst], edges], dim=-1))
    torch.testing.assert_close(split_linear(lin.weight, lin.bias, [(atoms, src), (atoms, dst), (edges, None)]), expected)
    empty = torch.zeros(0, dtype=torch.long)
    assert split_linear(lin.weight, lin.bias, [(atoms, empty), (atoms, empty), (edges[:0], None)]).shape == (0, 4)


def test_graph_layer_norm_equals_pyg_layer_norm():
    torch.manual_seed(0)
    norm = GraphLayerNorm(6)
    torch.nn.init.normal_(norm.weight), torch.nn.init.normal_(norm.bias)
    x = (3.0 * torch.randn(11, 6) + 1.0).requires_grad_()
    batch = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2, 3, 3, 3])  # graph 1 has no rows
    ours, reference = norm(x, batch, 4), LayerNorm.forward(norm, x, batch, 4)
    torch.testing.assert_close(ours, reference)
    inputs = [x, norm.weight, norm.bias]
    for a, b in zip(torch.autograd.grad(ours.square().sum(), inputs), torch.autograd.grad(reference.square().sum(), inputs)):
        torch.testing.assert_close(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 rows, as inside the blocks under bf16-mixed
        low = norm(x.bfloat16(), batch, 4)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, reference, atol=0.05, rtol=0.02)
