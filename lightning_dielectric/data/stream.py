"""Streaming graph batches from Parquet shards, built in worker processes.

Rows are read one Parquet row group at a time (pyarrow) and turned into ``CrystalGraph`` batches
in worker processes, so memory is bounded by the row group, the shuffle buffer and the prefetched
batches, whatever the dataset size. The order of samples is the ``EpochPlan`` (``epochs.py``).

The workers are fresh interpreters running ``stream_worker.py`` (numpy, pyarrow and pymatgen's
neighbour search only), not forked DataLoader workers: a forked worker maps the main process's
whole heap (torch, PyG, Lightning and, when training, the model and Trainer: ~350 MB before any
of them), counted in its resident memory and turned into private copies page by page as
reference counts and the garbage collector write to the objects on them. A fresh worker holds
about 65 MB plus its row group, shuffle buffer and prefetched batches.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torch_geometric.data import Batch

from .epochs import EpochPlan
from .graphs import arrays_to_batch
from .stream_worker import read_rows, row_groups, stream_payloads

__all__ = ["EpochLoader", "ParquetGraphStream", "distributed_rank_world", "payload_to_batch", "read_rows",
           "row_groups", "worker_payloads"]


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


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

    def task(self) -> dict:
        """The keyword arguments of ``stream_payloads`` for this epoch and rank, less the worker."""
        return {"paths": self.paths, "groups": self.groups, "unit_starts": self.unit_starts, "plan": self.plan,
                "cutoff": self.cutoff, "threebody_cutoff": self.threebody_cutoff, "epoch": self.epoch,
                "rank": self.rank, "world": self.world}

    def __iter__(self) -> Iterator[dict]:
        """Yield this worker's batches as plain arrays (``payload_to_batch`` makes the ``Batch``);
        in a torch DataLoader worker, that worker's share."""
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return stream_payloads(**self.task(), worker=worker, num_workers=num_workers)


def payload_to_batch(payload: dict) -> Batch:
    """The ``CrystalGraph`` batch of one stream item (cheap: wraps the arrays as tensors)."""
    return arrays_to_batch(
        payload["graphs"],
        eps=torch.from_numpy(payload["eps"]),
        drude=torch.from_numpy(payload["drude"]),
        mat_id=payload["mat_id"],
    )


class WorkerError(Exception):
    """The traceback of an exception raised in a stream worker process (the cause of the re-raised one)."""


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# the worker imports this very package (also when it is not installed), and only the worker's module
_WORKER_CODE = (
    "import sys\n"
    f"root = {_PACKAGE_ROOT!r}\n"
    "if root not in sys.path:\n"
    "    sys.path.insert(0, root)\n"
    "from lightning_dielectric.data.stream_worker import main\n"
    "sys.exit(main())\n"
)
_SINGLE_THREADED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in _SINGLE_THREADED:  # graph building does no BLAS work worth a thread pool per worker
        env.setdefault(name, "1")
    return env


def _receive(proc: subprocess.Popen, worker: int) -> tuple[str, object]:
    try:
        return pickle.load(proc.stdout)
    except (EOFError, pickle.UnpicklingError) as err:
        code = proc.wait()
        raise RuntimeError(f"stream worker {worker} exited unexpectedly (exit code {code})") from err


def worker_payloads(task: dict, num_workers: int) -> Iterator[dict]:
    """The batches of ``task`` (``ParquetGraphStream.task``) built by ``num_workers`` worker
    processes, in the order a torch DataLoader with that many workers returns them: round-robin
    over the workers, each building the batches w, w + W, … of the plan.

    An exception in a worker is raised here with its type and message, the worker's traceback as
    its cause. The workers end with the epoch; when the loop stops early they are killed.
    """
    procs: list[subprocess.Popen] = []
    done = 0
    try:
        env = _worker_env()
        for _ in range(num_workers):
            procs.append(subprocess.Popen([sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=env))
        for worker, proc in enumerate(procs):
            try:
                pickle.dump({**task, "worker": worker, "num_workers": num_workers}, proc.stdin,
                            protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.close()
            except OSError as err:
                raise RuntimeError(f"stream worker {worker} exited at start (exit code {proc.wait()})") from err
        live = deque(enumerate(procs))
        while live:
            worker, proc = live.popleft()
            kind, value = _receive(proc, worker)
            if kind == "done":
                done += 1
                continue
            if kind == "error":
                err, text = value
                cause = WorkerError(f"in stream worker {worker}:\n{text}")
                raise (err if err is not None else RuntimeError(f"stream worker {worker} failed")) from cause
            live.append((worker, proc))
            yield value
    finally:
        for proc in procs:
            if done < len(procs):  # stopped early or failed: no worker is needed any more
                proc.kill()
            if not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except OSError:  # a worker that died before reading its task
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


class EpochLoader:
    """Batches (``Batch``) of a ``ParquetGraphStream`` per epoch, built by ``num_workers`` worker
    processes (0: in this process).

    Each epoch it hands the current epoch and DDP rank to the stream and starts the workers
    (``worker_payloads``); they return plain numpy arrays (pickled through a pipe), and the
    ``Batch`` is assembled here in the main process. The batches and their order are those of a
    torch DataLoader with as many workers over the same stream. ``len()`` is the number of
    batches this DDP rank yields.

    The stream is ``stream``, not ``dataset``: Lightning takes a ``dataset`` that is an
    ``IterableDataset`` with a length for one whose workers may duplicate samples, and warns so.
    """

    def __init__(self, stream: ParquetGraphStream, epoch_fn: Callable[[], int], pin: bool = False,
                 num_workers: int = 0):
        self.stream = stream
        self.epoch_fn = epoch_fn
        self.pin = pin
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[Batch]:
        self.stream.epoch = int(self.epoch_fn())
        self.stream.rank, self.stream.world = distributed_rank_world()
        if self.num_workers == 0:
            payloads = iter(self.stream)
        else:
            payloads = worker_payloads(self.stream.task(), self.num_workers)
        for payload in payloads:
            batch = payload_to_batch(payload)
            yield batch.pin_memory() if self.pin else batch
