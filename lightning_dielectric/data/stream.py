"""Streaming graph batches from Parquet shards, built inside DataLoader workers.

Rows are read one Parquet row group at a time (pyarrow) and turned into ``CrystalGraph`` batches
in the workers, so memory is bounded by the row group, the shuffle buffer and the prefetched
batches, whatever the dataset size. The order of samples is the ``EpochPlan`` (``epochs.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torch_geometric.data import Batch

from .epochs import EpochPlan
from .graphs import arrays_to_batch, batch_arrays
from .schema import READ_COLUMNS, table_to_arrays


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def row_groups(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """((U, 2) (file, row group) of every row group in stored order, (U + 1,) their stored-row bounds)."""
    groups, rows = [], [0]
    for f, path in enumerate(paths):
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowException) as err:
            raise ValueError(f"{path}: cannot read Parquet shard ({err})") from err
        for g in range(meta.num_row_groups):
            groups.append((f, g))
            rows.append(rows[-1] + meta.row_group(g).num_rows)
    return np.array(groups, dtype=np.int64).reshape(-1, 2), np.array(rows, dtype=np.int64)


def read_rows(paths: list[str], groups: np.ndarray, unit_starts: np.ndarray, rows: np.ndarray) -> Iterator[tuple]:
    """Yield (mat_id, lattice, z, pos, eps (2001, 2), drude) for ``rows`` (stored positions) in
    the given order, reading each run of rows of one row group with one read."""
    unit = np.searchsorted(unit_starts, rows, side="right") - 1
    cuts = np.flatnonzero(np.diff(unit)) + 1
    for run in np.split(np.arange(len(rows)), cuts) if len(rows) else []:
        u = int(unit[run[0]])
        f, g = (int(v) for v in groups[u])
        local = rows[run] - unit_starts[u]
        # a fresh reader per row group: an open reader keeps its last row group's buffers
        try:
            with pq.ParquetFile(paths[f]) as reader:
                table = reader.read_row_group(g, columns=READ_COLUMNS)
        except (OSError, pa.ArrowException) as err:
            raise ValueError(f"{paths[f]}: cannot read row group {g} ({err})") from err
        contiguous = bool(np.all(np.diff(local) == 1))
        table = table.slice(int(local[0]), len(local)) if contiguous else table.take(pa.array(local))
        a = table_to_arrays(table)
        offsets = a["atom_offsets"]
        for k in range(table.num_rows):
            atoms = slice(offsets[k], offsets[k + 1])
            yield (  # copies, so a buffered sample does not keep its row group alive
                a["mat_id"][k],
                a["lattice"][k].copy(),
                a["atomic_numbers"][atoms].copy(),
                a["positions"][atoms].copy(),
                np.stack([a["eps_re"][k], a["eps_im"][k]], axis=-1),
                float(a["drude"][k]),
            )


class ParquetGraphStream(IterableDataset):
    """Iterable of graph batches, as plain arrays, from the Parquet shards of one split.

    Each item is ``{"graphs": batch_arrays(...), "eps": (B, 2001, 2), "drude": (B,), "mat_id":
    [B]}``; ``payload_to_batch`` turns it into a ``CrystalGraph`` batch.

    Args:
        paths: shard files in stored order.
        batch_size: graphs per batch.
        cutoff, threebody_cutoff: graph cutoffs, Å (see ``build_graph``).
        rows: sorted stored-row positions to use (None: all rows).
        shuffle: permute row groups per epoch and pass samples through a shuffle buffer.
        seed: base seed of the per-epoch order.
        shuffle_buffer: samples held by each worker's shuffle buffer.

    ``epoch``, ``rank`` and ``world`` are set by the loader before workers start.
    """

    def __init__(self, paths: list[str], batch_size: int, cutoff: float, threebody_cutoff: float | None,
                 rows: np.ndarray | None = None, shuffle: bool = False, seed: int = 0, shuffle_buffer: int = 1024):
        self.paths = [str(p) for p in paths]
        self.cutoff = cutoff
        self.threebody_cutoff = threebody_cutoff
        self.groups, self.unit_starts = row_groups(self.paths)
        self.total_rows = int(self.unit_starts[-1])
        rows = np.arange(self.total_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        self.plan = EpochPlan(self.unit_starts, rows, batch_size, shuffle, seed, shuffle_buffer)
        self.epoch = 0
        self.rank, self.world = 0, 1

    @property
    def num_samples(self) -> int:
        return self.plan.num_samples

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        rank, world = distributed_rank_world()
        return self.plan.num_batches(rank, world)

    def __iter__(self) -> Iterator[dict]:
        """Yield this worker's batches as plain arrays (``payload_to_batch`` makes the ``Batch``)."""
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rows, sizes = self.plan.worker_rows(self.epoch, self.rank, self.world, worker, num_workers)
        samples = self.plan.shuffled(read_rows(self.paths, self.groups, self.unit_starts, rows),
                                     self.epoch, self.rank, worker)
        for size in sizes:
            mat_id, lattice, z, pos, eps, drude = zip(*(next(samples) for _ in range(size)))
            yield {
                "graphs": batch_arrays(list(zip(lattice, z, pos)), self.cutoff, self.threebody_cutoff),
                "eps": np.stack(eps),
                "drude": np.array(drude, dtype=np.float32),
                "mat_id": list(mat_id),
            }


def payload_to_batch(payload: dict) -> Batch:
    """The ``CrystalGraph`` batch of one stream item (cheap: wraps the arrays as tensors)."""
    return arrays_to_batch(
        payload["graphs"],
        eps=torch.from_numpy(payload["eps"]),
        drude=torch.from_numpy(payload["drude"]),
        mat_id=payload["mat_id"],
    )


class EpochLoader(DataLoader):
    """DataLoader over a ``ParquetGraphStream`` yielding ``Batch``es.

    Before workers start it hands the current epoch and DDP rank to the stream. Workers return
    plain numpy arrays (pickled through the pipe: one shared-memory segment per tensor would cost
    more than building the graphs); the ``Batch`` is assembled here in the main process.
    """

    def __init__(self, dataset: ParquetGraphStream, epoch_fn: Callable[[], int], pin: bool = False, **kwargs):
        super().__init__(dataset, batch_size=None, collate_fn=_identity, **kwargs)
        self.epoch_fn = epoch_fn
        self.pin = pin

    def __iter__(self) -> Iterator[Batch]:
        self.dataset.epoch = int(self.epoch_fn())
        self.dataset.rank, self.dataset.world = distributed_rank_world()
        for payload in super().__iter__():
            batch = payload_to_batch(payload)
            yield batch.pin_memory() if self.pin else batch


def _identity(item):
    return item
