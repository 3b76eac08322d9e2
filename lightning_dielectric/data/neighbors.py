"""Periodic neighbour search (torch-free; used by graphs, ingest validation and the synthetic generator)."""

from __future__ import annotations

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

_PBC = np.ones(3, dtype=np.int64)


def periodic_neighbors(
    cell: np.ndarray, pos: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i, j, S) with |pos[j] + S @ cell − pos[i]| ≤ cutoff, except i = j at S = 0.

    Uses pymatgen's compiled cell-list search (``find_points_in_spheres``), which bounds the
    image range by the cell heights, so skewed cells and cells smaller than the cutoff are
    covered (checked against brute force in the tests); it was 2–5× faster than a vectorised
    numpy enumeration of the ceil(cutoff / height) image grid. Returns ``src`` (E,) int64,
    ``dst`` (E,) int64, ``offset`` (E, 3) int64 relative to the input positions and ``dist``
    (E,) Å, sorted by (src, dst).
    """
    volume = np.linalg.det(cell)
    if not abs(volume) > 1e-6:
        raise ValueError(f"degenerate lattice: volume {volume:.3g} Å^3")
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    src, dst, offset, dist = find_points_in_spheres(
        pos, pos, float(cutoff), _PBC, np.ascontiguousarray(cell, dtype=np.float64), tol=1e-8
    )
    keep = (src != dst) | np.any(offset != 0, axis=1)
    order = np.lexsort((dst[keep], src[keep]))
    return (
        src[keep][order],
        dst[keep][order],
        offset[keep][order].astype(np.int64),
        dist[keep][order],
    )
