"""Edge/triplet pairing and the paired computation: equal to the direct (per-edge) models.

The reference ``direct_forward`` (``models.reference``) is the models' forward as on commit 68e1f57:
every feature per edge and per triplet, PyG's own ``CGConv`` / ``TransformerConv`` message passing
and ``LayerNorm``. Models are
compared in float64, where rounding is far below the tolerance: in float32 the two edges of a pair
have lengths that differ by rounding, which training-mode batch norms amplify (~1e-5 relative).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import TransformerConv

from lightning_dielectric.data import build_graph
from lightning_dielectric.models import OptiMetal3B, build_model
from lightning_dielectric.models.blocks import mlp
from lightning_dielectric.models.convs import FactorisedTransformerConv
from lightning_dielectric.models.pairs import EdgePairs, edge_pairs, mlp_on_pairs, triplet_swap_pairs
from lightning_dielectric.models.reference import direct_forward

WIDTH = 16
TOL = {"atol": 1e-9, "rtol": 1e-9}


def structures() -> list:
    """A 1-atom fcc cell (all edges are self-images ±S), Cu3Au, a random 3-atom cell, an isolated atom."""
    rng = np.random.default_rng(0)
    fcc = np.array([[0.0, 1.8, 1.8], [1.8, 0.0, 1.8], [1.8, 1.8, 0.0]])
    cu3au = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cells = [
        (fcc, [29], np.zeros((1, 3))),
        (np.eye(3) * 3.75, [79, 29, 29, 29], cu3au),
        (np.diag([3.1, 3.3, 5.2]), [22, 13, 28], rng.uniform(0, 1, (3, 3))),
        (np.eye(3) * 12.0, [26], np.zeros((1, 3))),
    ]
    graphs = [build_graph(lat, np.array(z), frac @ lat, cutoff=5.5, threebody_cutoff=4.0) for lat, z, frac in cells]
    assert bool((graphs[0].edge_index[0] == graphs[0].edge_index[1]).all()) and graphs[-1].edge_index.size(1) == 0
    return graphs


def test_edge_pairs_partner_is_the_reverse_edge():
    batch = Batch.from_data_list(structures())
    rep, pair, _ = edge_pairs(batch.edge_index, batch.cell_offset, batch.num_nodes)
    num_edges = batch.edge_index.size(1)
    assert rep.shape == (num_edges // 2,) and pair.shape == (num_edges,)
    assert torch.equal(torch.bincount(pair, minlength=len(rep)), torch.full((len(rep),), 2))
    assert torch.equal(pair[rep], torch.arange(len(rep)))
    # partner of edge k: the other edge with the same pair id
    members = torch.argsort(pair, stable=True).view(-1, 2)
    a, b = members[:, 0], members[:, 1]
    assert torch.equal(batch.edge_index[:, a], batch.edge_index[:, b].flip(0))
    assert torch.equal(batch.cell_offset[a], -batch.cell_offset[b])
    self_image = batch.edge_index[0, a] == batch.edge_index[1, a]
    assert self_image.sum() >= 6  # the 1-atom cell pairs S with -S


def test_triplet_pairs_partner_is_the_swap():
    batch = Batch.from_data_list(structures())
    rep, pair = triplet_swap_pairs(batch.triplet_index, batch.edge_index.size(1))
    members = torch.argsort(pair, stable=True).view(-1, 2)
    assert torch.equal(batch.triplet_index[:, members[:, 0]], batch.triplet_index[:, members[:, 1]].flip(0))
    assert torch.equal(pair[rep], torch.arange(len(rep)))


def test_pairing_rejects_edges_without_reverse():
    batch = Batch.from_data_list(structures()[1:2])
    rep = edge_pairs(batch.edge_index, batch.cell_offset, batch.num_nodes).rep
    with pytest.raises(ValueError, match="needs its reverse"):
        edge_pairs(batch.edge_index[:, 1:], batch.cell_offset[1:], batch.num_nodes)
    keep = torch.ones(batch.edge_index.size(1), dtype=torch.bool)
    keep[rep[:2]] = False  # two edges of different pairs gone: even count, but unpaired
    with pytest.raises(RuntimeError, match="no reverse"):
        edge_pairs(batch.edge_index[:, keep], batch.cell_offset[keep], batch.num_nodes)


def trained_mlp(sync: bool = False):
    torch.manual_seed(0)
    net = mlp([5, 8, 8, 3]).train()
    if sync:  # what trainer.sync_batchnorm does (without a process group it computes local statistics)
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        assert isinstance(net.norms[0].module, torch.nn.SyncBatchNorm)
    for _ in range(2):  # non-trivial running statistics first
        net(torch.randn(9, 5))
    return net, copy.deepcopy(net)


def assert_same_buffers(a: torch.nn.Module, b: torch.nn.Module, **tol):
    for (name, x), (_, y) in zip(a.named_buffers(), b.named_buffers()):
        torch.testing.assert_close(x, y, msg=name, **tol)


@pytest.mark.parametrize("sync", [False, True])
def test_mlp_on_pairs_equals_mlp_on_both_copies(sync):
    paired, direct = trained_mlp(sync)
    rows = torch.randn(7, 5, requires_grad=True)
    weights = torch.randn(14, 3)  # different upstream gradients on the two copies
    out = torch.cat([mlp_on_pairs(paired, rows)] * 2)
    ref = direct(torch.cat([rows, rows]))
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad((out * weights).sum(), [rows, *paired.parameters()])
    ref_grads = torch.autograd.grad((ref * weights).sum(), [rows, *direct.parameters()])
    for g, h in zip(grads, ref_grads):
        torch.testing.assert_close(g, h)
    assert_same_buffers(paired, direct)  # running variance with the factor 14/13 of the 14 rows
    paired.eval(), direct.eval()
    torch.testing.assert_close(mlp_on_pairs(paired, rows), direct(rows))


def test_mlp_on_one_pair_uses_batch_statistics():
    """Two equal rows have zero batch variance: each normalised value is 0, so every batch norm
    outputs its bias (PyG's fallback to running statistics is for a single row, not one pair)."""
    paired, direct = trained_mlp()
    rows = torch.randn(1, 5, requires_grad=True)
    out = mlp_on_pairs(paired, rows)
    expected = paired.lins[2](torch.relu(paired.norms[1].module.bias)).unsqueeze(0)
    torch.testing.assert_close(out, expected)
    (grad,) = torch.autograd.grad(out.sum(), [rows])
    assert not grad.any()
    direct(torch.cat([rows, rows]))
    assert_same_buffers(paired, direct, atol=1e-6, rtol=1e-5)


def test_atom_pairs_group_the_images_of_each_bond():
    batch = Batch.from_data_list(structures())
    n = batch.num_nodes
    pairs = edge_pairs(batch.edge_index, batch.cell_offset, n).with_atom_pairs(batch.edge_index, n)
    listed = batch.edge_index[:, torch.cat([pairs.rep, partner_of(pairs)])]  # rep edges, then their reverses
    atoms = pairs.atoms
    assert torch.equal(atoms.dst[atoms.index], listed[1]) and torch.equal(atoms.src[atoms.index], listed[0])
    distinct = {(int(i), int(j)) for j, i in listed.t()}
    assert len(atoms.dst) == len(distinct) < listed.size(1)  # periodic images share their atom pair


def partner_of(pairs) -> torch.Tensor:
    """The other edge of each pair, in the order of ``pairs.rep``."""
    members = torch.argsort(pairs.pair, stable=True).view(-1, 2)
    return torch.where(members[:, 0] == pairs.rep, members[:, 1], members[:, 0])


@pytest.mark.parametrize("features", ["per edge", "per pair", "per pair, atom pairs"])
def test_factorised_transformer_conv_equals_pyg(features):
    torch.manual_seed(0)
    conv = FactorisedTransformerConv(8, heads=2).double()
    batch = Batch.from_data_list(structures())
    n = batch.num_nodes
    x = torch.randn(n, 8, dtype=torch.float64, requires_grad=True)
    pairs = edge_pairs(batch.edge_index, batch.cell_offset, n)
    e_pairs = torch.randn(len(pairs.rep), 8, dtype=torch.float64, requires_grad=True)
    reference = TransformerConv.forward(conv, x, batch.edge_index, e_pairs[pairs.pair])  # PyG's message passing
    if features == "per edge":
        ours = conv(x, batch.edge_index, e_pairs[pairs.pair])
    else:
        ours = conv(x, batch.edge_index, e_pairs,
                    pairs.with_atom_pairs(batch.edge_index, n) if "atom" in features else pairs)
    torch.testing.assert_close(ours, reference, **TOL)
    inputs = [x, e_pairs, *conv.parameters()]
    weights = torch.linspace(-1.0, 1.0, ours.numel(), dtype=torch.float64).view_as(ours)
    grads = torch.autograd.grad((ours * weights).sum(), inputs)
    ref_grads = torch.autograd.grad((reference * weights).sum(), inputs)
    scale = max(h.abs().max() for h in ref_grads)  # the key bias has no effect: its gradient is 0 up to rounding
    for g, h in zip(grads, ref_grads):
        torch.testing.assert_close(g, h, atol=1e-9 * scale, rtol=1e-9)


def float64_batch(graphs) -> Batch:
    data = Batch.from_data_list(graphs)
    data.pos, data.cell, data.cell_offset = data.pos.double(), data.cell.double(), data.cell_offset.double()
    return data


def loss(out) -> torch.Tensor:
    eps, drude = out
    weights = torch.linspace(-1.0, 2.0, eps.numel()).view_as(eps)
    return (eps * weights).sum() + drude.square().sum()


@pytest.mark.parametrize("family", ["2b-cgc", "2b-tc", "2b-tc, as on a GPU", "3b"])
@pytest.mark.parametrize("training", [True, False])
def test_paired_model_equals_direct_computation(family, training, monkeypatch):
    if family.endswith("as on a GPU"):  # off the CPU the model skips the atom pairs (a host sync on CUDA)
        monkeypatch.setattr(EdgePairs, "with_atom_pairs", lambda self, edge_index, num_nodes: self)
        family = family.split(",")[0]
    torch.manual_seed(0)
    model = build_model(family, WIDTH).double()
    data = float64_batch(structures())
    model.train()
    for _ in range(2):  # non-trivial running statistics
        model(data)
    model.train(training)
    reference = copy.deepcopy(model)
    out, ref = model(data), direct_forward(reference, data)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, **TOL)
    grads = torch.autograd.grad(loss(out), list(model.parameters()))
    ref_grads = torch.autograd.grad(loss(ref), list(reference.parameters()))
    scale = max(h.abs().max() for h in ref_grads)  # some gradients are 0 up to rounding (biases before a norm)
    for (name, _), g, h in zip(model.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(g, h, atol=1e-9 * scale, rtol=1e-9, msg=lambda m: f"{name}: {m}")
    assert_same_buffers(model, reference, **TOL)


@pytest.mark.parametrize("family", ["2b-cgc", "2b-tc", "3b"])
def test_old_state_dict_loads_with_unchanged_outputs(family, tmp_path):
    """A state dict as commit 68e1f57 wrote it (same keys and shapes) gives the direct outputs."""
    torch.manual_seed(3)
    old = build_model(family, WIDTH).double().train()
    data = float64_batch(structures())
    with torch.no_grad():
        direct_forward(old, data)  # running statistics as the direct computation leaves them
    torch.save(old.state_dict(), tmp_path / "old.pt")
    torch.manual_seed(4)
    new = build_model(family, WIDTH).double()
    new.load_state_dict(torch.load(tmp_path / "old.pt"))
    old.eval(), new.eval()
    with torch.no_grad():
        for a, b in zip(new(data), direct_forward(old, data)):
            torch.testing.assert_close(a, b, **TOL)


def test_threebody_first_block_only_is_paired():
    """Guards the paired path: the 3B model's first block really receives per-pair features."""
    model = OptiMetal3B(WIDTH)
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[1].size(0)))
    model.blocks[1].register_forward_pre_hook(lambda m, args: seen.append(args[1].size(0)))
    data = Batch.from_data_list(structures())
    model(data)
    assert seen == [data.edge_index.size(1) // 2, data.edge_index.size(1)]
