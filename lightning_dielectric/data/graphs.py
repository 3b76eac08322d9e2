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

from torch_geometric.data import Data


class CrystalGraph(Data):
    """PyG ``Data`` whose ``triplet_index`` indexes edges, so batches offset it by edge counts."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "triplet_index":
            return self.edge_index.size(1)
        return super().__inc__(key, value, *args, **kwargs)
