"""The graph cache's arrays for one Parquet row group.

Runs in the cache builder's worker processes, so it imports only numpy, pyarrow and pymatgen's
neighbour search (no torch): a worker starts in a fraction of a second.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from .neighbors import periodic_neighbors, triplet_pairs
from .schema import READ_COLUMNS, table_to_arrays


def row_group_graphs(task: tuple) -> tuple[dict[str, np.ndarray], list[str]]:
    """Graphs and targets of one row group, as the cache's arrays (runs in a worker process)."""
    path, group, cutoff, threebody_cutoff = task
    with pq.ParquetFile(path) as reader:
        table = reader.read_row_group(group, columns=READ_COLUMNS)
    a = table_to_arrays(table)
    offsets = a["atom_offsets"]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("edge_src", "edge_dst", "cell_offset",
                                                          "triplet_first", "triplet_second")}
    n_edges, n_triplets = [], []
    for k in range(table.num_rows):
        atoms = slice(offsets[k], offsets[k + 1])
        src, dst, offset, dist = periodic_neighbors(a["lattice"][k], a["positions"][atoms], cutoff)
        if np.abs(offset).max(initial=0) > np.iinfo(np.int16).max:
            raise ValueError(f"{path}: {a['mat_id'][k]} has a cell offset beyond int16 (cell far below the cutoff)")
        parts["edge_src"].append(src)
        parts["edge_dst"].append(dst)
        parts["cell_offset"].append(offset)
        n_edges.append(len(src))
        pairs = np.zeros((2, 0), np.int64) if threebody_cutoff is None else triplet_pairs(src, dist, threebody_cutoff)
        parts["triplet_first"].append(pairs[0])
        parts["triplet_second"].append(pairs[1])
        n_triplets.append(pairs.shape[1])
    chunk = {name: np.concatenate(values) for name, values in parts.items()}
    chunk.update(
        n_nodes=np.diff(offsets),
        n_edges=np.array(n_edges),
        n_triplets=np.array(n_triplets),
        z=a["atomic_numbers"],
        pos=a["positions"].reshape(-1, 3),
        cell=a["lattice"],
        eps=np.stack([a["eps_re"], a["eps_im"]], axis=-1),
        drude=a["drude"],
    )
    return chunk, list(a["mat_id"])
