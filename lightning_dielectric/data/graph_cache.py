"""On-disk cache of a split's periodic graphs and targets, built once and memory-mapped.

A cache directory holds one split's structures in stored order as raw little-endian arrays
(``meta.json`` gives each file's dtype and shape), so any process can ``np.memmap`` them:

- ``n_nodes``, ``n_edges``, ``n_triplets``: (S,) int64 counts per structure;
- ``z`` (N,) int8 atomic numbers; ``pos`` (N, 3) float32 Cartesian positions, Å;
- ``cell`` (S, 3, 3) float32 lattice vectors as rows, Å;
- ``edge_src``, ``edge_dst`` (E,) int32 per-structure atom indices of edge i → j (as ``build_graph``);
- ``cell_offset`` (E, 3) int16 integer image offsets S;
- ``triplet_first``, ``triplet_second`` (T,) int32 per-structure edge indices (T = 0 without a
  three-body cutoff);
- ``eps`` (S, 2001, 2) float32 (Re, Im of Tr ε_inter/3); ``drude`` (S,) float32 ω_D, eV;
- ``mat_id.json``: the S material ids.

The cache is keyed by the split's shard checksums (``dataset.json``), both cutoffs and
``GRAPH_FORMAT_VERSION``: a changed dataset or cutoff gets a new directory, an unchanged one is
reused. Building happens under an exclusive file lock into a temporary directory that is renamed
into place when complete, so concurrent processes (sweep trials, DDP ranks) build it once: the
first builds, the others wait on the lock and then reuse it. A killed builder leaves only a
temporary directory, which the next builder removes. ``flock`` needs a filesystem that honours
it (local disks do; on NFS put ``cache_dir`` on a local disk per node).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..processes import default_workers, ordered_map
from .graph_rows import row_group_graphs
from .ingest import progress_bar
from .schema import N_ENERGIES
from .stream_worker import row_groups
from .writer import read_metadata, shard_paths

GRAPH_FORMAT_VERSION = 2  # 2: an edge and its reverse are kept together at the cutoff (data.neighbors)
SERIAL_ROWS = 4096  # below this many structures (under a second) one process builds: no pool to start
# name: (dtype, shape after the first axis); every array concatenates along its first axis
ARRAYS = {
    "n_nodes": (np.int64, []), "n_edges": (np.int64, []), "n_triplets": (np.int64, []),
    "z": (np.int8, []), "pos": (np.float32, [3]), "cell": (np.float32, [3, 3]),
    "edge_src": (np.int32, []), "edge_dst": (np.int32, []), "cell_offset": (np.int16, [3]),
    "triplet_first": (np.int32, []), "triplet_second": (np.int32, []),
    "eps": (np.float32, [N_ENERGIES, 2]), "drude": (np.float32, []),
}


def cache_key(root: str | Path, split: str, cutoff: float, threebody_cutoff: float | None) -> str:
    """Hex digest naming the cache of ``split`` of the dataset at ``root`` for these cutoffs (Å)."""
    meta = read_metadata(root)
    shards = [(s["path"], s["sha256"]) for s in meta["shards"] if s["path"].startswith(f"{split}/")]
    spec = {"version": GRAPH_FORMAT_VERSION, "split": split, "shards": shards, "cutoff": float(cutoff),
            "threebody_cutoff": None if threebody_cutoff is None else float(threebody_cutoff)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass
class GraphCache:
    """Memory-mapped arrays of one cached split (see the module docstring); ``arrays[name]``."""

    path: Path
    arrays: dict[str, np.ndarray]
    mat_id: list[str]

    @property
    def num_structures(self) -> int:
        return len(self.mat_id)


def open_graph_cache(root: str | Path, split: str, cutoff: float, threebody_cutoff: float | None,
                     cache_dir: str | Path | None = None, workers: int | None = None,
                     progress: bool = True) -> GraphCache:
    """The cache of ``split``, built first (in parallel, with a progress bar) when missing.

    ``cache_dir`` defaults to ``ROOT/graph_cache``; ``workers`` to the usable CPUs (one process for
    splits under ``SERIAL_ROWS`` structures).
    """
    base = Path(cache_dir) if cache_dir is not None else Path(root) / "graph_cache"
    final = base / f"{split}-{cache_key(root, split, cutoff, threebody_cutoff)[:24]}"
    if not (final / "meta.json").is_file():
        try:
            base.mkdir(parents=True, exist_ok=True)
            lock = open(base / f"{final.name}.lock", "a")
        except OSError as err:
            raise ValueError(f"cannot write the graph cache under {base} ({err.strerror}); set data.cache_dir "
                             "to a writable directory or data.cache: off") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            if not (final / "meta.json").is_file():
                for stale in base.glob(f".{final.name}.tmp-*"):
                    shutil.rmtree(stale, ignore_errors=True)
                tmp = base / f".{final.name}.tmp-{os.getpid()}"
                _build(root, split, cutoff, threebody_cutoff, tmp, workers, progress)
                os.rename(tmp, final)
    return _load(final)


def _load(path: Path) -> GraphCache:
    meta = json.loads((path / "meta.json").read_text())
    arrays = {}
    for name, (dtype, shape) in meta["arrays"].items():
        if 0 in shape:
            arrays[name] = np.zeros(shape, dtype=dtype)
        else:
            arrays[name] = np.memmap(path / f"{name}.bin", dtype=dtype, mode="r", shape=tuple(shape))
    return GraphCache(path, arrays, json.loads((path / "mat_id.json").read_text()))


def _build(root, split, cutoff, threebody_cutoff, tmp: Path, workers: int | None, progress: bool) -> None:
    paths = [str(p) for p in shard_paths(root, split)]
    groups, unit_starts = row_groups(paths)
    if workers is None:
        workers = 1 if unit_starts[-1] < SERIAL_ROWS else default_workers()
    tmp.mkdir(parents=True)
    files = {name: open(tmp / f"{name}.bin", "wb") for name in ARRAYS}
    arrays = {name: (np.dtype(dtype).str, [0, *shape]) for name, (dtype, shape) in ARRAYS.items()}
    mat_ids: list[str] = []
    tasks = ((paths[f], int(g), cutoff, threebody_cutoff) for f, g in groups)
    try:
        with progress_bar(int(unit_starts[-1]), enabled=progress, label=f"graphs {split}") as advance:
            for chunk, ids in ordered_map(row_group_graphs, tasks, workers):
                for name, value in chunk.items():
                    files[name].write(np.ascontiguousarray(value, dtype=arrays[name][0]).tobytes())
                    arrays[name][1][0] += len(value)
                mat_ids.extend(ids)
                advance(len(ids))
    finally:
        for f in files.values():
            f.close()
    (tmp / "mat_id.json").write_text(json.dumps(mat_ids))
    meta = {"format_version": GRAPH_FORMAT_VERSION, "split": split, "cutoff": cutoff,
            "threebody_cutoff": threebody_cutoff, "num_structures": len(mat_ids), "arrays": arrays,
            "dataset": str(Path(root).resolve())}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks the cache complete
