"""Streaming Lightning DataModule over a Parquet dataset directory.

Rows are read one Parquet row group at a time (pyarrow) and turned into ``CrystalGraph`` batches
inside the DataLoader workers, so memory is bounded by the row group, the shuffle buffer and
the prefetched batches, whatever the dataset size.

How an epoch is dealt out (``epoch_plan``):

1. The epoch stream is the split's row groups in stored order (validation/test), or in an order
   permuted with ``(seed, epoch)`` (training). The training subset ``train_size`` = D is the
   first D stored rows (the writer stores training rows in a seeded order, so subsets nest).
2. The n samples of the stream are cut into one contiguous slice per DDP rank whose sizes
   differ by at most one, so every sample goes to exactly one rank.
3. Every rank yields the same number of batches, ``ceil(ceil(n / world) / batch_size)``, so
   DDP never waits on a rank that ran out. A rank's slice is cut into that many batches: full
   batches, except that the last two share the remainder evenly (no batch is smaller than
   half the batch size, and a rank holding one sample fewer simply has a smaller last batch).
   No sample is dropped or repeated. If that is impossible (fewer samples than ranks, or
   ``batch_size`` 1 with unequal slices) a ``ValueError`` says so.
4. Within a rank, DataLoader worker w builds the batches w, w + W, w + 2W, … from a
   contiguous part of the rank's slice; the DataLoader's round-robin then returns the batches
   in plan order.
5. Training samples pass through a shuffle buffer seeded with ``(seed, epoch, rank, worker)``.

The epoch is ``trainer.current_epoch`` when a Trainer drives the module, else the value given to
``set_epoch``; the same seed, epoch, world size and worker count give the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torch_geometric.data import Batch

from .graphs import arrays_to_batch, batch_arrays
from .schema import table_to_arrays
from .writer import read_metadata, shard_paths

READ_COLUMNS = ["mat_id", "lattice", "atomic_numbers", "positions", "eps_re", "eps_im", "drude"]


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def rank_batches(n: int, world: int, rank: int, batch_size: int) -> tuple[int, list[int]]:
    """(start, batch sizes) of ``rank``'s contiguous slice of an n-sample epoch stream.

    Every rank gets ``ceil(ceil(n / world) / batch_size)`` batches; see the module docstring.
    """
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


class ParquetGraphStream(IterableDataset):
    """Iterable of graph batches, as plain arrays, from the Parquet shards of one split.

    Each item is ``{"graphs": batch_arrays(...), "eps": (B, 2001, 2), "drude": (B,), "mat_id":
    [B]}``; ``payload_to_batch`` turns it into a ``CrystalGraph`` batch.

    Args:
        paths: shard files in stored order.
        batch_size: graphs per batch.
        cutoff, threebody_cutoff: graph cutoffs, Å (see ``build_graph``).
        limit: use only the first ``limit`` stored rows (None: all).
        shuffle: permute row groups per epoch and pass samples through a shuffle buffer.
        seed: base seed of the per-epoch order.
        shuffle_buffer: samples held by each worker's shuffle buffer.

    ``epoch``, ``rank`` and ``world`` are set by the loader before workers start.
    """

    def __init__(
        self,
        paths: list[str],
        batch_size: int,
        cutoff: float,
        threebody_cutoff: float | None,
        limit: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer: int = 1024,
    ):
        self.paths = [str(p) for p in paths]
        self.batch_size = batch_size
        self.cutoff = cutoff
        self.threebody_cutoff = threebody_cutoff
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self.rank, self.world = 0, 1
        # units: (file, row group, first row, stop row) in stored order, cut at ``limit``
        units = []
        total = self.total_rows = 0
        for f, path in enumerate(self.paths):
            try:
                meta = pq.ParquetFile(path).metadata
            except (OSError, pa.ArrowException) as err:
                raise ValueError(f"{path}: cannot read Parquet shard ({err})") from err
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                self.total_rows += rows
                if limit is not None:
                    rows = min(rows, limit - total)
                if rows > 0:
                    units.append((f, g, 0, rows))
                    total += rows
        self.units = np.array(units, dtype=np.int64).reshape(-1, 4)
        self.num_samples = total

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        rank, world = distributed_rank_world()
        return len(rank_batches(self.num_samples, world, rank, self.batch_size)[1])

    def epoch_plan(self, worker: int, num_workers: int) -> tuple[np.ndarray, list[int]]:
        """(units restricted to this worker's part of the stream, its batch sizes in order)."""
        start, sizes = rank_batches(self.num_samples, self.world, self.rank, self.batch_size)
        before = sum(sum(sizes[w::num_workers]) for w in range(worker))
        lo = start + before
        hi = lo + sum(sizes[worker::num_workers])
        units = self.units
        if self.shuffle:
            units = units[np.random.default_rng([self.seed, self.epoch]).permutation(len(units))]
        rows = units[:, 3] - units[:, 2]
        stop = np.cumsum(rows)
        first = stop - rows
        sel = (stop > lo) & (first < hi)
        mine = units[sel].copy()
        if len(mine):  # trim the first and last row group to [lo, hi)
            mine[0, 2] += lo - first[sel][0]
            mine[-1, 3] -= stop[sel][-1] - hi
        return mine, sizes[worker::num_workers]

    def __iter__(self) -> Iterator[dict]:
        """Yield this worker's batches as plain arrays (``payload_to_batch`` makes the ``Batch``)."""
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        units, sizes = self.epoch_plan(worker, num_workers)
        samples = self._samples(units)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
            samples = shuffle_buffer(samples, self.shuffle_buffer, rng)
        for size in sizes:
            mat_id, lattice, z, pos, eps, drude = zip(*(next(samples) for _ in range(size)))
            yield {
                "graphs": batch_arrays(list(zip(lattice, z, pos)), self.cutoff, self.threebody_cutoff),
                "eps": np.stack(eps),
                "drude": np.array(drude, dtype=np.float32),
                "mat_id": list(mat_id),
            }

    def _samples(self, units: np.ndarray) -> Iterator[tuple]:
        """Yield (mat_id, lattice, z, pos, eps (2001, 2), drude) copies, one row group at a time."""
        for f, g, lo, hi in units:
            # a fresh reader per row group: an open reader keeps its last row group's buffers
            try:
                with pq.ParquetFile(self.paths[f]) as reader:
                    table = reader.read_row_group(int(g), columns=READ_COLUMNS).slice(int(lo), int(hi - lo))
            except (OSError, pa.ArrowException) as err:
                raise ValueError(f"{self.paths[f]}: cannot read row group {g} ({err})") from err
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


def payload_to_batch(payload: dict) -> Batch:
    """The ``CrystalGraph`` batch of one stream item (cheap: wraps the arrays as tensors)."""
    return arrays_to_batch(
        payload["graphs"],
        eps=torch.from_numpy(payload["eps"]),
        drude=torch.from_numpy(payload["drude"]),
        mat_id=payload["mat_id"],
    )


class _EpochLoader(DataLoader):
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


class DielectricDataModule(LightningDataModule):
    """Streams ``CrystalGraph`` batches (targets ``eps`` (B, 2001, 2), ``drude`` (B,) eV, ``mat_id``).

    Args:
        root: dataset directory (``dataset.json`` + ``{train,val,test}/part-*.parquet``).
        train_size: use the first D training rows (the nested subset of size D); None: all.
        batch_size: graphs per batch (per DDP rank).
        num_workers: DataLoader worker processes building graphs.
        cutoff: edge cutoff, Å.
        threebody_cutoff: triplet cutoff, Å (needed by three-body models); None: no triplets.
        seed: seed of the per-epoch training order.
        shuffle_buffer: samples per worker shuffle buffer (each holds ~16 kB of spectra).
        pin_memory: pin batches for faster host-to-GPU copies.
    """

    def __init__(
        self,
        root: str,
        train_size: int | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        cutoff: float = 5.5,
        threebody_cutoff: float | None = None,
        seed: int = 0,
        shuffle_buffer: int = 1024,
        pin_memory: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be > 0 Å, got {cutoff}")
        if threebody_cutoff is not None and not 0 < threebody_cutoff <= cutoff:
            raise ValueError(f"threebody_cutoff must be in (0, cutoff={cutoff}] Å, got {threebody_cutoff}")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        meta = read_metadata(root)
        available = meta["counts"]["train"]
        if train_size is not None and not 0 < train_size <= available:
            raise ValueError(f"train_size={train_size} but {root} has {available} training rows")
        self.root = root
        self.train_size = train_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cutoff = cutoff
        self.threebody_cutoff = threebody_cutoff
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.pin_memory = pin_memory
        self.counts = dict(meta["counts"])
        self._epoch = 0

    @property
    def num_train(self) -> int:
        """Training samples per epoch (D)."""
        return self.train_size if self.train_size is not None else self.counts["train"]

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the training order when no Trainer drives the module."""
        self._epoch = epoch

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else self._epoch

    def stream(self, split: str) -> ParquetGraphStream:
        """The batch stream of one split (training: shuffled, cut to ``train_size``)."""
        train = split == "train"
        stream = ParquetGraphStream(
            shard_paths(self.root, split),
            self.batch_size,
            self.cutoff,
            self.threebody_cutoff,
            limit=self.train_size if train else None,
            shuffle=train,
            seed=self.seed,
            shuffle_buffer=self.shuffle_buffer,
        )
        if stream.total_rows != self.counts[split]:
            raise ValueError(
                f"{self.root}: the {split} shards hold {stream.total_rows} rows but dataset.json says "
                f"{self.counts[split]}"
            )
        return stream

    def _loader(self, split: str) -> DataLoader:
        stream = self.stream(split)
        stream.rank, stream.world = distributed_rank_world()
        return _EpochLoader(stream, self._current_epoch, pin=self.pin_memory, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
