"""Batch-aware periodic geometry computed inside ``forward`` (so predictions are exactly invariant
to rotations and translations of the input, and no per-structure Python runs in the loop)."""

from __future__ import annotations

import torch
from torch import Tensor


def graph_batch(data) -> tuple[Tensor, int]:
    """Per-atom graph index (n,) and the number of graphs, for a ``Batch`` or a single graph."""
    batch = getattr(data, "batch", None)
    if batch is None:
        return torch.zeros(data.z.size(0), dtype=torch.long, device=data.z.device), 1
    return batch, int(data.num_graphs)


def edge_vectors(pos: Tensor, cell: Tensor, cell_offset: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
    """Edge vectors (E, 3), Å: pos[j] + S @ cell[b(i)] − pos[i] for edge (i, j) with image offset S.

    ``cell`` is (B, 3, 3) with lattice vectors as rows; b(i) is the graph of the source atom.
    """
    src, dst = edge_index
    shift = torch.bmm(cell_offset.unsqueeze(1), cell.index_select(0, batch.index_select(0, src))).squeeze(1)
    return pos.index_select(0, dst) - pos.index_select(0, src) + shift


def triplet_cosines(vec: Tensor, triplet_index: Tensor) -> Tensor:
    """cos θ (T,) between the two edges (e1, e2) of each triplet; both edges leave the same atom."""
    unit = vec / vec.norm(dim=-1, keepdim=True)
    cos = (unit.index_select(0, triplet_index[0]) * unit.index_select(0, triplet_index[1])).sum(-1)
    return cos.clamp(-1.0, 1.0)
