"""The Parquet stream's batches as plain arrays, and the worker process that builds them (torch-free).

``stream_payloads`` reads a worker's rows of an epoch (``EpochPlan``) one Parquet row group at a
time, passes them through the worker's shuffle buffer and builds each batch's graphs
(``batch_arrays``). ``EpochLoader`` (``stream.py``) runs it in worker processes that run ``main``:
each a fresh interpreter (``sys.executable``) that imports only numpy,
pyarrow and pymatgen's neighbour search, about 65 MB resident after its imports, where a forked
DataLoader worker carries the ~350 MB of heap that torch, PyG and Lightning left in the main
process.

Protocol: the loader writes one pickled task (the keyword arguments of ``stream_payloads``) to
the worker's stdin; the worker writes pickled ``("batch", payload)`` messages to its stdout, in
order, then ``("done", None)``, or ``("error", (exception, traceback text))`` when it fails.
The process's own stdout is pointed at stderr, so a print in a library cannot corrupt the stream.
A worker whose loader stops reading (the loop broke, the process died) blocks on its pipe or
fails on it and exits.
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import threading
import traceback
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .epochs import EpochPlan
from .graph_arrays import batch_arrays
from .schema import READ_COLUMNS, table_to_arrays

PREFETCH = 2
"""Pickled batches a worker holds ready beyond the one being written (torch's ``prefetch_factor``)."""


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
        del table, a, offsets  # the yielded samples are copies: the row group can go before the next is read


def stream_payloads(paths: list[str], groups: np.ndarray, unit_starts: np.ndarray, plan: EpochPlan,
                    cutoff: float, threebody_cutoff: float | None, epoch: int, rank: int, world: int,
                    worker: int, num_workers: int) -> Iterator[dict]:
    """Worker ``worker`` of ``num_workers``'s batches of an epoch, in order, as plain arrays:
    ``{"graphs": batch_arrays(...), "eps": (B, 2001, 2), "drude": (B,), "mat_id": [B]}``."""
    rows, sizes = plan.worker_rows(epoch, rank, world, worker, num_workers)
    samples = plan.shuffled(read_rows(paths, groups, unit_starts, rows), epoch, rank, worker)
    for size in sizes:
        mat_id, lattice, z, pos, eps, drude = zip(*(next(samples) for _ in range(size)))
        yield {
            "graphs": batch_arrays(list(zip(lattice, z, pos)), cutoff, threebody_cutoff),
            "eps": np.stack(eps),
            "drude": np.array(drude, dtype=np.float32),
            "mat_id": list(mat_id),
        }


def _error_message(err: BaseException) -> bytes:
    text = traceback.format_exc()
    try:
        return pickle.dumps(("error", (err, text)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle: its traceback still reaches the loader
        return pickle.dumps(("error", (None, text)), protocol=pickle.HIGHEST_PROTOCOL)


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH)

    def write() -> None:  # pipe writes release the GIL: the next batch is built meanwhile
        while (message := ready.get()) is not None:
            try:
                out.write(message)
                out.flush()
            except OSError:  # the loader is gone or stopped reading: nothing left to do
                os._exit(0)
        out.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        task = pickle.load(sys.stdin.buffer)
        for payload in stream_payloads(**task):
            ready.put(pickle.dumps(("batch", payload), protocol=pickle.HIGHEST_PROTOCOL))
        ready.put(pickle.dumps(("done", None)))
        code = 0
    except BaseException as err:  # reported to the loader, which raises it
        ready.put(_error_message(err))
        code = 1
    ready.put(None)
    writer.join()
    return code


if __name__ == "__main__":
    sys.exit(main())
