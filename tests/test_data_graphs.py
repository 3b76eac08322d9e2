"""build_graph against brute-force enumeration of periodic images, and batching offsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from lightning_dielectric.data import CrystalGraph, build_graph
from lightning_dielectric.data.graphs import build_batch
from lightning_dielectric.data.neighbors import periodic_neighbors

CUTOFF = 5.5
TB_CUTOFF = 4.0


def heights(cell: np.ndarray) -> np.ndarray:
    return abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def brute_force(cell: np.ndarray, pos: np.ndarray, cutoff: float) -> dict[tuple, float]:
    """{(i, j, S): distance} over a cube of images wider than needed in every direction."""
    frac = np.linalg.solve(cell.T, pos.T).T
    spread = int(np.ceil(np.ptp(frac, axis=0).max())) if len(pos) > 1 else 0
    m = int(np.ceil(cutoff / heights(cell).min())) + spread + 2
    grid = np.array(list(itertools.product(range(-m, m + 1), repeat=3)))
    vec = pos[None, :, None] + (grid @ cell)[None, None] - pos[:, None, None]
    dist = np.linalg.norm(vec, axis=-1)
    out = {}
    for i, j, k in zip(*np.nonzero(dist <= cutoff)):
        if i == j and not grid[k].any():
            continue
        assert np.abs(grid[k]).max() < m, "brute-force image range too small"
        out[(int(i), int(j), *map(int, grid[k]))] = float(dist[i, j, k])
    return out


def random_cell(rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "cubic-ish":
        cell = np.eye(3) * rng.uniform(3.0, 7.0) + rng.normal(0, 0.3, (3, 3))
    elif kind == "small":  # much smaller than the cutoff in every direction
        cell = np.eye(3) * rng.uniform(1.2, 2.2) + rng.normal(0, 0.1, (3, 3))
    else:  # strongly skewed triclinic: later vectors lean far along the earlier ones
        a = rng.uniform(1.5, 4.0, 3)
        cell = np.diag(a)
        cell[1, 0] = rng.uniform(-3, 3) * a[0]
        cell[2, 0] = rng.uniform(-3, 3) * a[0]
        cell[2, 1] = rng.uniform(-3, 3) * a[1]
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    return cell @ rotation


def edges_of(g: CrystalGraph) -> dict[tuple, float]:
    src, dst = g.edge_index.numpy()
    off = g.cell_offset.numpy().astype(np.int64)
    vec = g.pos.double()[dst] + g.cell_offset.double() @ g.cell[0].double() - g.pos.double()[src]
    dist = vec.norm(dim=1).numpy()
    return {(int(i), int(j), *map(int, s)): float(d) for i, j, s, d in zip(src, dst, off, dist)}


@pytest.mark.parametrize("kind", ["cubic-ish", "small", "skewed"])
def test_edges_match_brute_force(kind):
    rng = np.random.default_rng({"cubic-ish": 1, "small": 2, "skewed": 3}[kind])
    for _ in range(12):
        cell = random_cell(rng, kind)
        n = int(rng.integers(1, 5))
        # positions anywhere, also outside the cell: offsets must refer to the given positions
        pos = rng.uniform(-1.5, 2.5, (n, 3)) @ cell
        z = rng.integers(1, 84, n)
        g = build_graph(cell.astype(np.float32), z, pos.astype(np.float32), CUTOFF, TB_CUTOFF)
        expected = brute_force(g.cell[0].double().numpy(), g.pos.double().numpy(), CUTOFF)
        got = edges_of(g)
        assert set(got) == set(expected)
        keys = sorted(got)
        np.testing.assert_allclose([got[k] for k in keys], [expected[k] for k in keys], atol=1e-5)
        assert torch.equal(g.z, torch.as_tensor(z, dtype=torch.long))
        # every edge has its reverse with the negated offset
        assert {(j, i, -a, -b, -c) for i, j, a, b, c in got} == set(got)


def brute_force_triplets(g: CrystalGraph, cutoff: float) -> set[tuple[int, int]]:
    src = g.edge_index[0].numpy()
    dist = np.array(list(edges_of(g).values()))  # insertion order = edge order
    short = [e for e in range(len(src)) if dist[e] <= cutoff]
    return {(a, b) for a in short for b in short if a != b and src[a] == src[b]}


@pytest.mark.parametrize("kind", ["cubic-ish", "small", "skewed"])
def test_triplets_match_brute_force(kind):
    rng = np.random.default_rng(10)
    for _ in range(6):
        cell = random_cell(rng, kind)
        n = int(rng.integers(1, 4))
        g = build_graph(cell, rng.integers(1, 84, n), rng.uniform(0, 1, (n, 3)) @ cell, CUTOFF, TB_CUTOFF)
        pairs = set(map(tuple, g.triplet_index.t().tolist()))
        assert g.triplet_index.shape[1] == len(pairs)  # no duplicates
        assert pairs == brute_force_triplets(g, TB_CUTOFF)
        assert g.triplet_index.dtype == torch.long


def test_no_threebody_cutoff_gives_empty_triplets():
    g = build_graph(np.eye(3) * 3.0, [26], [[0.0, 0.0, 0.0]], CUTOFF, None)
    assert g.triplet_index.shape == (2, 0)
    assert g.edge_index.shape[1] == 26  # simple cubic a=3: 6 + 12 + 8 images within 5.5 Å


def test_zero_neighbour_structure_is_a_valid_graph():
    g = build_graph(np.eye(3) * 12.0, [29, 47], [[0, 0, 0], [6, 6, 6]], CUTOFF, TB_CUTOFF)
    assert g.edge_index.shape == (2, 0) and g.edge_index.dtype == torch.long
    assert g.cell_offset.shape == (0, 3)
    assert g.triplet_index.shape == (2, 0)
    batch = Batch.from_data_list([g, build_graph(np.eye(3) * 3.0, [26], [[0, 0, 0]])])
    assert batch.edge_index.shape[1] == 26 and int(batch.edge_index.min()) == 2


def test_degenerate_lattice_is_rejected():
    with pytest.raises(ValueError, match="volume"):
        build_graph(np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), [26], [[0, 0, 0]])


def test_batching_offsets_edges_by_nodes_and_triplets_by_edges():
    rng = np.random.default_rng(5)
    graphs = []
    for n in (1, 3, 2):
        cell = random_cell(rng, "cubic-ish")
        graphs.append(build_graph(cell, rng.integers(1, 84, n), rng.uniform(0, 1, (n, 3)) @ cell))
    batch = Batch.from_data_list(graphs)
    node_start = np.cumsum([0] + [g.num_nodes for g in graphs])
    edge_start = np.cumsum([0] + [g.edge_index.shape[1] for g in graphs])
    trip_start = np.cumsum([0] + [g.triplet_index.shape[1] for g in graphs])
    assert batch.cell.shape == (3, 3, 3)
    for k, g in enumerate(graphs):
        e = slice(edge_start[k], edge_start[k + 1])
        t = slice(trip_start[k], trip_start[k + 1])
        assert torch.equal(batch.edge_index[:, e], g.edge_index + int(node_start[k]))
        assert torch.equal(batch.triplet_index[:, t], g.triplet_index + int(edge_start[k]))
        assert torch.equal(batch.cell_offset[e], g.cell_offset)
        assert torch.equal(batch.batch[node_start[k] : node_start[k + 1]], torch.full((g.num_nodes,), k))
    # edge vectors in the batch: pos[j] + S @ cell[graph of i] − pos[i]
    src, dst = batch.edge_index
    cell = batch.cell[batch.batch[src]]
    vec = batch.pos[dst] + torch.einsum("ek,ekc->ec", batch.cell_offset, cell) - batch.pos[src]
    assert float(vec.norm(dim=1).max()) <= CUTOFF + 1e-4


def test_build_batch_equals_pyg_collation():
    rng = np.random.default_rng(11)
    structures = []
    for n in (1, 3, 2):
        cell = random_cell(rng, "skewed")
        structures.append((cell, rng.integers(1, 84, n), rng.uniform(0, 1, (n, 3)) @ cell))
    structures.append((np.eye(3) * 12.0, np.array([3]), np.zeros((1, 3))))  # no edges
    eps = rng.normal(size=(4, 2001, 2)).astype(np.float32)
    drude = rng.uniform(1, 10, 4).astype(np.float32)
    mat_id = ["a", "b", "c", "d"]
    for tb in (TB_CUTOFF, None):
        graphs = []
        for k, s in enumerate(structures):
            g = build_graph(*s, CUTOFF, tb)
            g.eps, g.drude, g.mat_id = torch.from_numpy(eps[k : k + 1]), torch.from_numpy(drude[k : k + 1]), mat_id[k]
            graphs.append(g)
        ref = Batch.from_data_list(graphs)
        got = build_batch(structures, CUTOFF, tb, eps=eps, drude=drude, mat_id=mat_id)
        assert type(got) is type(ref) and got.num_graphs == ref.num_graphs == 4
        assert set(got.keys()) == set(ref.keys())
        for key in ref.keys():
            if key == "mat_id":
                assert got[key] == ref[key]
            else:
                assert got[key].dtype == ref[key].dtype and torch.equal(got[key], ref[key]), key
        for key, slices in ref._slice_dict.items():
            assert torch.equal(got._slice_dict[key], slices), key
            inc = ref._inc_dict[key]
            assert (got._inc_dict[key] is None) == (inc is None), key
            assert inc is None or torch.equal(got._inc_dict[key], inc), key
        for k, g in enumerate(graphs):  # round trip through get_example
            back = got.get_example(k)
            assert torch.equal(back.edge_index, g.edge_index) and torch.equal(back.triplet_index, g.triplet_index)
    with pytest.raises(ValueError, match="at least one"):
        build_batch([], CUTOFF)


def test_edges_at_exactly_the_cutoff_keep_their_reverse():
    """A cutoff equal to a computed length (to the last bit) keeps or drops an edge and its reverse
    together: the models pair every edge with its reverse. Before the symmetric length, about 1 in
    1,500 such structures kept one direction only."""
    rng = np.random.default_rng(0)
    for _ in range(3000):
        cell = rng.uniform(2.0, 4.0) * (np.eye(3) + rng.normal(0, 0.05, (3, 3)))
        pos = rng.random((int(rng.integers(1, 4)), 3)) @ cell
        *_, dist = periodic_neighbors(cell, pos, 6.0)
        src, dst, offset, _ = periodic_neighbors(cell, pos, float(dist[rng.integers(len(dist))]))
        edges = set(zip(src.tolist(), dst.tolist(), map(tuple, offset.tolist())))
        assert edges == {(j, i, (-a, -b, -c)) for i, j, (a, b, c) in edges}
