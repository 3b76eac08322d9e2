"""How an epoch's samples are dealt out to DDP ranks, DataLoader workers and batches.

Pure index arithmetic on stored-row positions (0-based, in stored order across a split's
shards), shared by the Parquet stream and the in-memory graph cache so that both give the same
batches in the same order for the same seed, epoch, world size and worker count:

1. The epoch stream is the selected rows grouped by row group ("unit"), units in stored order
   (validation/test) or permuted with ``(seed, epoch)`` (training). Only units holding a
   selected row take part in the permutation.
2. The n samples of the stream are cut into one contiguous slice per DDP rank whose sizes
   differ by at most one, so every sample goes to exactly one rank.
3. Every rank yields ``ceil(ceil(n / world) / batch_size)`` batches, so DDP never waits on a
   rank that ran out: full batches, except that the last two share the remainder evenly (no
   batch is smaller than half the batch size). No sample is dropped or repeated; when that is
   impossible a ``ValueError`` says so.
4. Worker w of W builds the batches w, w + W, … from a contiguous part of the rank's slice;
   a round-robin over workers returns the batches in plan order.
5. Training samples pass through a shuffle buffer seeded with ``(seed, epoch, rank, worker)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[k], starts[k] + counts[k])``, int64, without a Python loop."""
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(offsets[-1] + counts[-1] if len(counts) else 0)


def rank_batches(n: int, world: int, rank: int, batch_size: int) -> tuple[int, list[int]]:
    """(start, batch sizes) of ``rank``'s contiguous slice of an n-sample epoch stream (point 3)."""
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    count = q + (rank < r)
    n_batches = -(-(q + (r > 0)) // batch_size)
    if n_batches == 0:
        return start, []
    if n_batches == 1:
        sizes = [count]
    else:
        rest = count - (n_batches - 2) * batch_size  # between batch_size and 2 * batch_size
        sizes = [batch_size] * (n_batches - 2) + [(rest + 1) // 2, rest // 2]
    if min(sizes) == 0:
        raise ValueError(
            f"cannot deal {n} samples to {world} ranks in equal batch counts with batch_size "
            f"{batch_size} without dropping or repeating samples; use more data, fewer ranks or "
            "a larger batch_size"
        )
    return start, sizes


def shuffle_buffer(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Yield ``items`` in a shuffled order using a buffer of ``size`` (0 or 1: unchanged)."""
    if size <= 1:
        yield from items
        return
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        k = int(rng.integers(size))
        yield buffer[k]
        buffer[k] = item
    rng.shuffle(buffer)
    yield from buffer


def shuffle_buffer_order(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """The permutation ``list(shuffle_buffer(iter(range(n)), size, rng))``, vectorised.

    Exact: the k drawn one at a time by ``shuffle_buffer`` equal one vectorised draw (NumPy's
    bit generator keeps its 32-bit buffer between calls; checked in the tests), and the item
    leaving slot k at step t is the one written there last before t (or the slot's first item).
    """
    if size <= 1:
        return np.arange(n)
    m = n - size
    if m <= 0:
        buffer = np.arange(n)
        rng.shuffle(buffer)
        return buffer
    k = rng.integers(size, size=m)
    by_slot = np.lexsort((np.arange(m), k))  # steps grouped by slot, in time order
    slot, step = k[by_slot], by_slot
    same = np.r_[False, slot[1:] == slot[:-1]]
    out = np.empty(m, dtype=np.int64)
    out[step] = np.where(same, size + np.r_[0, step[:-1]], slot)
    last = np.r_[slot[1:] != slot[:-1], True]
    buffer = np.arange(size)
    buffer[slot[last]] = size + step[last]
    rng.shuffle(buffer)
    return np.concatenate([out, buffer])


class EpochPlan:
    """The epoch stream of one split over selected stored rows.

    Args:
        unit_starts: (U + 1,) stored-row boundaries of the row groups (units), increasing.
        rows: (n,) sorted selected stored-row positions.
        batch_size: samples per batch.
        shuffle: permute units per epoch and pass samples through the shuffle buffer.
        seed: base seed of the per-epoch order.
        shuffle_buffer: samples held by each worker's shuffle buffer.
    """

    def __init__(self, unit_starts: np.ndarray, rows: np.ndarray, batch_size: int, shuffle: bool,
                 seed: int, shuffle_buffer: int):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        unit = np.searchsorted(np.asarray(unit_starts, dtype=np.int64), self.rows, side="right") - 1
        first = np.unique(unit, return_index=True)[1]  # first selected row of each unit holding one
        self._unit_first = first
        self._unit_count = np.diff(np.append(first, len(unit)))

    @property
    def num_samples(self) -> int:
        return len(self.rows)

    def num_batches(self, rank: int, world: int) -> int:
        """Batches each rank yields per epoch (the same on every rank)."""
        return len(rank_batches(self.num_samples, world, rank, self.batch_size)[1])

    def stream(self, epoch: int) -> np.ndarray:
        """(n,) stored-row positions in epoch-stream order (point 1)."""
        order = np.arange(len(self._unit_first))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self._unit_first))
        return self.rows[ranges(self._unit_first[order], self._unit_count[order])]

    def worker_rows(self, epoch: int, rank: int, world: int, worker: int, num_workers: int) -> tuple[np.ndarray, list[int]]:
        """(the worker's stored rows before its shuffle buffer, its batch sizes in order) (points 2–4)."""
        start, sizes = rank_batches(self.num_samples, world, rank, self.batch_size)
        lo = start + sum(sum(sizes[w::num_workers]) for w in range(worker))
        hi = lo + sum(sizes[worker::num_workers])
        return self.stream(epoch)[lo:hi], sizes[worker::num_workers]

    def _rng(self, epoch: int, rank: int, worker: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, rank, worker])

    def shuffled(self, samples: Iterator, epoch: int, rank: int, worker: int) -> Iterator:
        """``samples`` through the worker's seeded shuffle buffer, lazily (point 5; identity for eval)."""
        if not self.shuffle:
            return samples
        return shuffle_buffer(samples, self.shuffle_buffer, self._rng(epoch, rank, worker))

    def batches(self, epoch: int, rank: int, world: int, num_workers: int) -> list[np.ndarray]:
        """The rank's batches as arrays of stored rows, in the order a DataLoader with
        ``num_workers`` workers (0 counts as 1) returns them."""
        num_workers = max(num_workers, 1)
        per_worker = []
        for worker in range(num_workers):
            rows, sizes = self.worker_rows(epoch, rank, world, worker, num_workers)
            if self.shuffle:
                rows = rows[shuffle_buffer_order(len(rows), self.shuffle_buffer, self._rng(epoch, rank, worker))]
            per_worker.append(np.split(rows, np.cumsum(sizes)[:-1]) if sizes else [])
        total = sum(len(b) for b in per_worker)
        return [per_worker[k % num_workers][k // num_workers] for k in range(total)]
