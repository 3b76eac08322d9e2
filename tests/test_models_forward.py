"""Forward/backward and exact invariances of the graph models and the Magpie baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from lightning_dielectric.data import CrystalGraph, build_graph
from lightning_dielectric.models import FAMILIES, MagpieBaseline, OptiMetal2B, OptiMetal3B, build_model

WIDTH = 16


def structures() -> list[CrystalGraph]:
    """Three small intermetallic-like cells (with triplets) and one isolated atom (no edges)."""
    rng = np.random.default_rng(0)
    out = []
    cu3au = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    for lattice, z, frac in [
        (np.eye(3) * 3.75, [79, 29, 29, 29], cu3au),  # L1_2 Cu3Au
        (np.eye(3) * 2.95 + rng.normal(0, 0.05, (3, 3)), [29, 30], np.array([[0, 0, 0], [0.5, 0.5, 0.5]])),
        (np.diag([3.1, 3.3, 5.2]), [22, 13, 28], rng.uniform(0, 1, (3, 3))),
        (np.eye(3) * 12.0, [26], np.zeros((1, 3))),  # nearest image at 12 Å > cutoff: no edges
    ]:
        out.append(build_graph(lattice, np.array(z), frac @ lattice, cutoff=5.5, threebody_cutoff=4.0))
    assert out[-1].edge_index.size(1) == 0 and all(g.triplet_index.size(1) > 0 for g in out[:3])
    return out


def rotate(g: CrystalGraph, rot: torch.Tensor, shift: torch.Tensor) -> CrystalGraph:
    h = g.clone()
    h.pos = g.pos @ rot.T + shift
    h.cell = g.cell @ rot.T
    return h


def permute(g: CrystalGraph, atoms: torch.Tensor, edges: torch.Tensor) -> CrystalGraph:
    """Reorder atoms (new atom k = old atom atoms[k]), edges (new edge k = old edge edges[k]) and
    triplets (a seeded shuffle)."""
    atom_new = torch.empty_like(atoms)
    atom_new[atoms] = torch.arange(len(atoms))
    edge_new = torch.empty_like(edges)
    edge_new[edges] = torch.arange(len(edges))
    h = g.clone()
    h.z, h.pos = g.z[atoms], g.pos[atoms]
    h.edge_index = atom_new[g.edge_index[:, edges]]
    h.cell_offset = g.cell_offset[edges]
    triplets = torch.randperm(g.triplet_index.size(1), generator=torch.Generator().manual_seed(len(edges)))
    h.triplet_index = edge_new[g.triplet_index[:, triplets]]
    return h


def predict(model, graphs):
    with torch.no_grad():
        return model(Batch.from_data_list(graphs))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_forward_backward_with_zero_edge_graph(family):
    torch.manual_seed(0)
    model = build_model(family, WIDTH).train()
    batch = Batch.from_data_list(structures())
    eps, drude = model(batch)
    assert eps.shape == (4, 2001, 2) and drude.shape == (4,)
    assert torch.isfinite(eps).all() and torch.isfinite(drude).all() and (drude >= 0).all()
    (eps.abs().mean() + drude.mean() + eps.pow(2).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # every weight matrix takes part (the ReLU'd Drude output may be clamped, so check the spectra path)
    missing = [n for n, p in model.named_parameters() if p.dim() > 1 and "drude" not in n and p.grad.abs().sum() == 0]
    assert not missing


@pytest.mark.parametrize("family", list(FAMILIES))
def test_invariance_rotation_translation_atom_order(family):
    torch.manual_seed(1)
    model = build_model(family, WIDTH)
    graphs = structures()
    model.train()
    for _ in range(3):  # give the batch norms non-trivial running statistics
        model(Batch.from_data_list(graphs))
    model.eval()
    ref_eps, ref_drude = predict(model, graphs)

    rot, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2)))
    moved = [rotate(g, rot, torch.tensor([1.3, -7.2, 0.4])) for g in graphs]
    gen = torch.Generator().manual_seed(3)
    shuffled = [
        permute(g, torch.randperm(g.num_nodes, generator=gen), torch.randperm(g.edge_index.size(1), generator=gen))
        for g in graphs
    ]
    same, reverse = torch.arange(len(graphs)), torch.arange(len(graphs) - 1, -1, -1)
    for variant, order in ((moved, same), (shuffled, same), (graphs[::-1], reverse)):
        eps, drude = predict(model, variant)
        torch.testing.assert_close(eps[order], ref_eps, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(drude[order], ref_drude, atol=2e-4, rtol=1e-4)
    # a structure predicted alone equals its prediction inside the batch (per-graph cells, norms, pooling)
    alone_eps, alone_drude = predict(model, graphs[2:3])
    torch.testing.assert_close(alone_eps[0], ref_eps[2], atol=2e-4, rtol=1e-4)


def test_predictions_depend_on_geometry_and_species():
    """Guards the invariance test against a model that ignores its input."""
    torch.manual_seed(0)
    graphs = structures()
    for model in (OptiMetal2B(WIDTH, conv="tc"), OptiMetal3B(WIDTH)):
        model.eval()
        ref, _ = predict(model, graphs)
        squeezed = [g.clone() for g in graphs]
        squeezed[0].pos = squeezed[0].pos * 0.97
        squeezed[0].cell = squeezed[0].cell * 0.97
        eps, _ = predict(model, squeezed)
        assert (eps[0] - ref[0]).abs().max() > 1e-4
        torch.testing.assert_close(eps[1:], ref[1:])
    magpie = MagpieBaseline(WIDTH).eval()
    ref, _ = predict(magpie, graphs)
    swapped = [g.clone() for g in graphs]
    swapped[1].z = torch.tensor([47, 30])
    eps, _ = predict(magpie, swapped)
    assert (eps[1] - ref[1]).abs().max() > 1e-4


def test_threebody_model_needs_triplets():
    g = structures()[0]
    del g.triplet_index
    with pytest.raises(ValueError, match="threebody_cutoff"):
        OptiMetal3B(WIDTH)(Batch.from_data_list([g, g]))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_degenerate_batches_train(family):
    """A batch of one structure, and a batch without any edge, run in training mode."""
    model = build_model(family, WIDTH).train()
    graphs = structures()
    for batch in (Batch.from_data_list(graphs[:1]), Batch.from_data_list([graphs[-1], graphs[-1].clone()])):
        eps, drude = model(batch)
        assert eps.shape == (batch.num_graphs, 2001, 2) and torch.isfinite(eps).all()
        (eps.mean() + drude.mean()).backward()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_bf16_autocast_forward_backward(family):
    """The ``bf16-mixed`` path (mixed float32/bfloat16 tensors inside the blocks) runs and trains."""
    torch.manual_seed(0)
    model = build_model(family, WIDTH).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps, drude = model(Batch.from_data_list(structures()))
    assert eps.shape == (4, 2001, 2) and torch.isfinite(eps.float()).all()
    (eps.float().abs().mean() + drude.float().mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
