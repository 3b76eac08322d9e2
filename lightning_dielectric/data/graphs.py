"""Periodic crystal graphs.

A ``CrystalGraph`` holds one structure (or a batch of them):

- ``z``: (n,) long, atomic numbers.
- ``pos``: (n, 3) float32, Cartesian positions, Å.
- ``cell``: (1, 3, 3) float32, lattice vectors as rows, Å (batched: (B, 3, 3)).
- ``edge_index``: (2, E) long, directed edge i → j as column (i, j): the source i is the centre
  atom, the target j is the neighbour; one edge to every periodic image of j within the cutoff
  (the atom itself at zero offset excluded). Every edge i → j (offset S) has its reverse
  j → i (offset −S).
- ``cell_offset``: (E, 3) float32 integer-valued cell offsets S of the neighbour image; the edge
  vector is ``pos[j] + S @ cell - pos[i]`` (Å).
- ``triplet_index``: (2, T) long, ordered pairs (e1, e2) of distinct edges sharing the source atom,
  both no longer than the three-body cutoff; empty when no three-body cutoff is given.
- ``eps``: (1, 2001, 2) float32 targets (Re, Im of Tr ε_inter/3; Re includes the vacuum 1).
- ``drude``: (1,) float32 target, RMS Drude frequency, eV.
- ``mat_id``: str.

Batching (PyG ``Batch``) offsets ``edge_index`` by node counts and ``triplet_index`` by edge counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from .graph_arrays import DEFAULT_CUTOFF, DEFAULT_THREEBODY_CUTOFF, batch_arrays
from .neighbors import periodic_neighbors, triplet_pairs

__all__ = ["DEFAULT_CUTOFF", "DEFAULT_THREEBODY_CUTOFF", "CrystalGraph", "arrays_to_batch", "batch_arrays",
           "build_batch", "build_graph"]


class CrystalGraph(Data):
    """PyG ``Data`` whose ``triplet_index`` indexes edges, so batches offset it by edge counts."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "triplet_index":
            return self.edge_index.size(1)
        return super().__inc__(key, value, *args, **kwargs)


def build_graph(
    lattice: np.ndarray,
    atomic_numbers: np.ndarray,
    positions: np.ndarray,
    cutoff: float = DEFAULT_CUTOFF,
    threebody_cutoff: float | None = DEFAULT_THREEBODY_CUTOFF,
) -> CrystalGraph:
    """Periodic radius graph of one crystal.

    Args:
        lattice: (3, 3) or (9,) lattice vectors as rows, Å.
        atomic_numbers: (n,) atomic numbers.
        positions: (n, 3) Cartesian positions, Å (need not lie inside the cell).
        cutoff: edge cutoff radius, Å (edges with length ≤ cutoff).
        threebody_cutoff: both edges of a triplet are ≤ this, Å; None gives an empty (2, 0) index.

    Returns a ``CrystalGraph`` with ``z``, ``pos``, ``cell``, ``edge_index``, ``cell_offset``
    and ``triplet_index`` (see the module docstring); edges are sorted by source atom.
    """
    cell = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    src, dst, offset, dist = periodic_neighbors(cell, pos, cutoff)
    if threebody_cutoff is None:
        triplets = np.zeros((2, 0), dtype=np.int64)
    else:
        triplets = triplet_pairs(src, dist, threebody_cutoff)
    return CrystalGraph(
        z=torch.from_numpy(np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)),
        pos=torch.from_numpy(pos.astype(np.float32)),
        cell=torch.from_numpy(cell.astype(np.float32)).unsqueeze(0),
        edge_index=torch.from_numpy(np.stack([src, dst])),
        cell_offset=torch.from_numpy(offset.astype(np.float32)),
        triplet_index=torch.from_numpy(triplets),
    )


def build_batch(
    structures: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    cutoff: float = DEFAULT_CUTOFF,
    threebody_cutoff: float | None = DEFAULT_THREEBODY_CUTOFF,
    **graph_attrs,
) -> Batch:
    """The batch ``Batch.from_data_list([build_graph(*s, cutoff, threebody_cutoff) for s in structures])``.

    Built from numpy arrays concatenated once, without per-graph ``Data`` objects (several
    times faster for small cells); the result, ``get_example`` included, equals PyG's collation.

    Args:
        structures: (lattice, atomic_numbers, positions) per graph, as for ``build_graph``.
        graph_attrs: per-graph attributes stacked along a first axis of length B, e.g.
            ``eps`` (B, 2001, 2), ``drude`` (B,), or lists of length B such as ``mat_id``.
    """
    return arrays_to_batch(batch_arrays(structures, cutoff, threebody_cutoff), **graph_attrs)


def arrays_to_batch(arrays: dict, **graph_attrs) -> Batch:
    """A PyG ``Batch`` of ``CrystalGraph`` from ``batch_arrays``-style arrays plus per-graph attributes.

    The graph arrays may be numpy arrays or tensors on any device (they are used as they are);
    the counts ``n_nodes``, ``n_edges``, ``n_triplets`` are host numpy arrays. Records the slices
    and increments that PyG's collation would, so ``get_example`` and ``to_data_list`` work.
    """
    n_nodes = arrays["n_nodes"]
    n_graphs = len(n_nodes)
    node_slices, edge_slices = _slices(n_nodes), _slices(arrays["n_edges"])
    per_graph = torch.arange(n_graphs + 1)
    zeros = torch.zeros(n_graphs, dtype=torch.long)
    fields = {  # attribute: (value, slices, increments) as PyG's collate records them
        "z": (arrays["z"], node_slices, zeros),
        "pos": (arrays["pos"], node_slices, zeros),
        "cell": (arrays["cell"], per_graph, zeros),
        "edge_index": (arrays["edge_index"], edge_slices, node_slices[:-1]),
        "cell_offset": (arrays["cell_offset"], edge_slices, zeros),
        "triplet_index": (arrays["triplet_index"], _slices(arrays["n_triplets"]), edge_slices[:-1]),
    }
    for key, value in graph_attrs.items():
        fields[key] = (value, per_graph, None) if isinstance(value, list) else (value, per_graph, zeros)
    out = Batch(_base_cls=CrystalGraph)
    for key, (value, _, _) in fields.items():
        out[key] = value if isinstance(value, list) else torch.as_tensor(value)
    device = out.z.device
    out.batch = torch.repeat_interleave(torch.arange(n_graphs, device=device),
                                        torch.as_tensor(n_nodes, device=device), output_size=int(node_slices[-1]))
    out.ptr = node_slices.to(device)
    # PyG has no public way to build a Batch from concatenated arrays: ``Batch.from_data_list`` needs
    # one ``Data`` per graph, several times slower on this hot path (every training batch). So the
    # three fields its collation records are written here; tests/test_data_graphs.py
    # (test_build_batch_equals_pyg_collation) compares them with PyG's own and fails if PyG changes them.
    out._num_graphs = n_graphs
    out._slice_dict = {key: slices for key, (_, slices, _) in fields.items()}
    out._inc_dict = {key: incs for key, (_, _, incs) in fields.items()}
    return out


def _slices(counts: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
