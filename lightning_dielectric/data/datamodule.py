"""The Lightning DataModule: a dataset directory's splits as ``CrystalGraph`` batches.

Two paths give the same batches in the same order for the same seed, epoch, world size and
worker count (both follow ``EpochPlan``, see ``epochs.py``):

- **memory** (``cache: memory``): each split's graphs are built once into an on-disk cache
  (``graph_cache.py``, shared by every run on the dataset) and the structures a run needs are
  held as tensors on the training device (the GPU when training on one); batches are assembled
  by vectorised gathers, without worker processes.
- **stream** (``cache: off``): Parquet row groups are read and graphs built in torch-free worker
  processes every epoch (``stream.py``, ``stream_worker.py``); memory stays bounded whatever the dataset size.

``cache: auto`` (default) holds a split in memory when its arrays fit ``memory_budget_gb``
(default: 40 % of the GPU's memory when training on a GPU, else 25 % of the host memory
available when the loader is made) and streams it otherwise. Under DDP every rank holds the
whole training subset in memory: the per-epoch permutation deals different samples to each rank
every epoch, so a rank-local share would have to be re-sent each epoch.

The epoch is ``trainer.current_epoch`` when a Trainer drives the module, else the value given to
``set_epoch``.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import psutil
import torch
from pytorch_lightning import LightningDataModule
from torch_geometric.data import Data

from .graph_cache import open_graph_cache
from .graphs import DEFAULT_CUTOFF
from .memory import GraphTensors, MemoryLoader
from .subsets import train_rows
from .stream import EpochLoader, ParquetGraphStream, distributed_rank_world
from .writer import read_metadata, shard_paths

log = logging.getLogger(__name__)
GPU_BUDGET_FRACTION = 0.4
HOST_BUDGET_FRACTION = 0.25


class DielectricDataModule(LightningDataModule):
    """``CrystalGraph`` batches (targets ``eps`` (B, 2001, 2), ``drude`` (B,) eV, ``mat_id``) of a dataset.

    Args:
        root: dataset directory (``dataset.json`` + ``{train,val,test}/part-*.parquet``).
        train_size: D, the training subset: the published list for D stored with the dataset
            (``ROOT/subsets/train_<D>.txt``) when there is one, else the first D stored rows (the
            nested subset of size D); None: all.
        train_ids: a file of mat_ids (one a line) selecting the training subset explicitly.
        batch_size: graphs per batch (per DDP rank).
        num_workers: worker processes building graphs (stream; 0: in this process); in memory no workers
            run, but the batch order is the one this many workers would give.
        cutoff: edge cutoff, Å. Under ``lightning fit`` both cutoffs are the model's
            (``DielectricNetwork.graph_cutoffs``) and cannot be set here.
        threebody_cutoff: triplet cutoff, Å (needed by three-body models); None: no triplets.
        seed: seed of the per-epoch training order.
        shuffle_buffer: samples per worker shuffle buffer (each holds ~16 kB of spectra).
        pin_memory: pin streamed batches for faster host-to-GPU copies.
        cache: ``auto`` | ``memory`` | ``off`` (see the module docstring).
        cache_dir: directory of the graph cache (default ``ROOT/graph_cache``).
        memory_budget_gb: bytes (GB) that ``auto`` may hold in memory, all splits together.
    """

    def __init__(
        self,
        root: str,
        train_size: int | None = None,
        train_ids: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        cutoff: float = DEFAULT_CUTOFF,
        threebody_cutoff: float | None = None,
        seed: int = 0,
        shuffle_buffer: int = 1024,
        pin_memory: bool = False,
        cache: Literal["auto", "memory", "off"] = "auto",
        cache_dir: str | None = None,
        memory_budget_gb: float | None = None,
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
        if memory_budget_gb is not None and not memory_budget_gb > 0:
            raise ValueError(f"memory_budget_gb must be > 0, got {memory_budget_gb}")
        if cache not in ("auto", "memory", "off"):
            raise ValueError(f"cache must be 'auto', 'memory' or 'off', got {cache!r}")
        meta = read_metadata(root)
        available = meta["counts"]["train"]
        if train_size is not None and not 0 < train_size <= available:
            raise ValueError(f"train_size={train_size} but {root} has {available} training rows")
        self.root = root
        self.train_size = train_size
        self.train_ids = train_ids
        self._train_rows = train_rows(root, train_size, train_ids)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cutoff = cutoff
        self.threebody_cutoff = threebody_cutoff
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.pin_memory = pin_memory
        self.cache = cache
        self.cache_dir = cache_dir
        self.memory_budget_gb = memory_budget_gb
        self.counts = dict(meta["counts"])
        self._epoch = 0
        self._held: dict[str, GraphTensors] = {}

    @property
    def graph_cutoffs(self) -> dict[str, float | None]:
        """``cutoff`` and ``threebody_cutoff`` (Å) of the graphs it builds."""
        return {"cutoff": self.cutoff, "threebody_cutoff": self.threebody_cutoff}

    @property
    def num_train(self) -> int:
        """Training samples per epoch (D)."""
        return len(self.rows("train"))

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the training order when no Trainer drives the module."""
        self._epoch = epoch

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else self._epoch

    def _device(self) -> torch.device:
        """The training device: the Trainer's root device (this rank's GPU under DDP), else CPU."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def rows(self, split: str) -> np.ndarray:
        """Sorted stored-row positions of ``split`` used per epoch (training: the subset of size D)."""
        if split == "train" and self._train_rows is not None:
            return self._train_rows
        if split == "train" and self.train_size is not None:
            return np.arange(self.train_size)
        return np.arange(self.counts[split])

    def stream(self, split: str) -> ParquetGraphStream:
        """The Parquet batch stream of one split (training: shuffled, cut to the training subset)."""
        stream = ParquetGraphStream(
            shard_paths(self.root, split),
            self.batch_size,
            self.cutoff,
            self.threebody_cutoff,
            rows=self.rows(split),
            shuffle=split == "train",
            seed=self.seed,
            shuffle_buffer=self.shuffle_buffer,
        )
        if stream.total_rows != self.counts[split]:
            raise ValueError(
                f"{self.root}: the {split} shards hold {stream.total_rows} rows but dataset.json says "
                f"{self.counts[split]}"
            )
        return stream

    def in_memory(self, split: str, device: torch.device) -> GraphTensors | None:
        """The split's structures held on ``device``, or None when it is streamed."""
        if self.cache == "off":
            return None
        held = self._held.get(split)
        if held is not None and held.device == device:
            return held
        cache = open_graph_cache(self.root, split, self.cutoff, self.threebody_cutoff, self.cache_dir)
        rows = self.rows(split)
        if self.cache == "auto" and not self._fits(cache, rows, split, device):
            return None
        self._held[split] = GraphTensors(cache, rows, device)
        return self._held[split]

    def _fits(self, cache, rows: np.ndarray, split: str, device: torch.device) -> bool:
        a = cache.arrays
        per_structure = sum(a[k].itemsize * np.prod(a[k].shape[1:], dtype=np.int64)
                            for k in ("cell", "eps", "drude")) + 48  # + counts and starts (int64)
        node = a["z"].itemsize + 3 * a["pos"].itemsize
        edge = 2 * a["edge_src"].itemsize + 3 * 4  # cell offsets are held as float32
        triplet = 2 * a["triplet_first"].itemsize
        sel = {k: int(np.asarray(a[f"n_{k}"])[rows].sum()) for k in ("nodes", "edges", "triplets")}
        need = len(rows) * per_structure + sel["nodes"] * node + sel["edges"] * edge + sel["triplets"] * triplet
        held = sum(t.nbytes for name, t in self._held.items() if name != split)
        budget = self._budget(device)
        if held + need > budget:
            log.info("streaming the %s split: it needs %.2f GB in memory, over the %.2f GB budget "
                     "(data.memory_budget_gb)", split, need / 1e9, (budget - held) / 1e9)
            return False
        return True

    def _budget(self, device: torch.device) -> float:
        if self.memory_budget_gb is not None:
            return self.memory_budget_gb * 1e9
        if device.type == "cuda":
            return GPU_BUDGET_FRACTION * torch.cuda.get_device_properties(device).total_memory
        return HOST_BUDGET_FRACTION * psutil.virtual_memory().available

    def loader(self, split: str, device: torch.device | None = None):
        """Batches of ``split`` for ``device`` (default: the Trainer's device, else CPU): a
        ``MemoryLoader`` (already on the device) or a streaming DataLoader (on the host)."""
        stream = self.stream(split)  # also checks the shards against dataset.json
        held = self.in_memory(split, device or self._device())
        if held is not None:
            return MemoryLoader(held, stream.plan, self._current_epoch, self.num_workers)
        stream.rank, stream.world = distributed_rank_world()
        return EpochLoader(stream, self._current_epoch, pin=self.pin_memory, num_workers=self.num_workers)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """PyG batches move in one call (Lightning's generic traversal costs ~10 ms per batch)."""
        if isinstance(batch, Data):
            return batch.to(device, non_blocking=True)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self):
        return self.loader("train")

    def val_dataloader(self):
        return self.loader("val")

    def test_dataloader(self):
        return self.loader("test")

    def predict_dataloader(self):
        return self.loader("test")
