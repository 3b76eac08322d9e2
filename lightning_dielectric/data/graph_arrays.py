"""A batch of periodic graphs as concatenated numpy arrays (torch-free).

Built in the streaming loader's worker processes, which import only numpy, pyarrow and pymatgen's
neighbour search (see ``stream_worker.py``); ``graphs.arrays_to_batch`` wraps the arrays as a PyG
``Batch`` in the main process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .neighbors import periodic_neighbors, triplet_pairs

DEFAULT_CUTOFF = 5.5
"""Edge cutoff of the paper's graphs, Å (its ``twobody_cutoff``)."""
DEFAULT_THREEBODY_CUTOFF = 4.0
"""Three-body (triplet) cutoff of the paper's OptiMetal3B graphs, Å (its ``graph_setup`` default)."""


def batch_arrays(
    structures: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    cutoff: float = DEFAULT_CUTOFF,
    threebody_cutoff: float | None = DEFAULT_THREEBODY_CUTOFF,
) -> dict[str, np.ndarray]:
    """The graphs of ``structures`` as concatenated numpy arrays (see ``arrays_to_batch``).

    Keys: ``z`` (N,), ``pos`` (N, 3) float32 Å, ``cell`` (B, 3, 3) float32 Å, ``edge_index``
    (2, E) offset by node counts, ``cell_offset`` (E, 3) float32, ``triplet_index`` (2, T)
    offset by edge counts, and the per-graph counts ``n_nodes``, ``n_edges``, ``n_triplets`` (B,).
    Plain arrays pickle cheaply, so the stream's worker processes return these rather than tensors.
    """
    if not structures:
        raise ValueError("batch_arrays needs at least one structure")
    z, pos, cells, src, dst, offset, triplets = [], [], [], [], [], [], []
    for lattice, numbers, positions in structures:
        cell = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
        p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        s, d, o, dist = periodic_neighbors(cell, p, cutoff)
        z.append(np.asarray(numbers, dtype=np.int64).reshape(-1))
        pos.append(p)
        cells.append(cell)
        src.append(s)
        dst.append(d)
        offset.append(o)
        if threebody_cutoff is not None:
            triplets.append(triplet_pairs(s, dist, threebody_cutoff))
    n_nodes = np.array([len(a) for a in z], dtype=np.int64)
    n_edges = np.array([len(a) for a in src], dtype=np.int64)
    n_triplets = np.array([a.shape[1] for a in triplets] or [0] * len(z), dtype=np.int64)
    node_start = np.cumsum(n_nodes) - n_nodes
    edge_start = np.cumsum(n_edges) - n_edges
    edge_index = np.stack([np.concatenate(src), np.concatenate(dst)]) + np.repeat(node_start, n_edges)
    if triplets:
        triplet_index = np.concatenate(triplets, axis=1) + np.repeat(edge_start, n_triplets)
    else:
        triplet_index = np.zeros((2, 0), dtype=np.int64)
    return {
        "z": np.concatenate(z),
        "pos": np.concatenate(pos).astype(np.float32),
        "cell": np.stack(cells).astype(np.float32),
        "edge_index": edge_index,
        "cell_offset": np.concatenate(offset).astype(np.float32),
        "triplet_index": triplet_index,
        "n_nodes": n_nodes,
        "n_edges": n_edges,
        "n_triplets": n_triplets,
    }
