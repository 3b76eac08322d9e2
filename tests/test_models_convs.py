"""The blockwise (factorised) edge linears, the graph LayerNorm and the output heads equal their PyG definitions."""

from __future__ import annotations

import torch
from torch_geometric.nn import CGConv, LayerNorm

from lightning_dielectric.models.convs import FactorisedCGConv, split_linear
from lightning_dielectric.models.heads import DielectricHeads
from lightning_dielectric.models.norms import GraphLayerNorm
from lightning_dielectric.models.reference import direct_heads


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


def test_heads_equal_their_pyg_mlps():
    """The spectra head's last layer as (W xᵀ + b)ᵀ (``wide_linear``) against the PyG MLPs as they are,
    in training mode (batch norm on batch statistics), outputs and all gradients, and under bf16 autocast."""
    torch.manual_seed(0)
    heads = DielectricHeads(8, spectra_width=12).double().train()
    h = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    ours, reference = heads(h), direct_heads(heads, h)
    inputs = [h, *heads.parameters()]
    loss = lambda out: (out[0] - 0.3).abs().sum() + out[1].square().sum()  # noqa: E731
    for a, b in zip(ours, reference):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(loss(ours), inputs), torch.autograd.grad(loss(reference), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    heads = heads.float().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, low_ref = heads(h.float())[0], direct_heads(heads, h.float())[0]
    assert low.dtype == low_ref.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), low_ref.float(), atol=0.05, rtol=0.02)
