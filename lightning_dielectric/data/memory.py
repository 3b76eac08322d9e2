"""Graphs and targets held as tensors on the training device; batches assembled by gathers.

``GraphTensors`` keeps selected structures of a ``GraphCache`` in compact dtypes (int8 atomic
numbers, int32 per-structure indices) on one device. A batch is a handful of
vectorised gathers (no Python per structure, no worker processes): the node, edge and triplet
ranges of the chosen structures are expanded on the host (``epochs.ranges``), and edge (triplet)
indices are shifted by the batch's node (edge) offsets. ``MemoryLoader`` yields, for an epoch,
exactly the batches in exactly the order that the Parquet stream gives (both follow
``EpochPlan``), as if streamed with the configured number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch

from .epochs import EpochPlan, ranges
from .graph_cache import GraphCache
from .graphs import arrays_to_batch
from .stream import distributed_rank_world

_NODE, _EDGE, _TRIPLET = ("z", "pos"), ("edge_src", "edge_dst", "cell_offset"), ("triplet_first", "triplet_second")
_GRAPH = ("cell", "eps", "drude")


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


class GraphTensors:
    """The structures ``rows`` (sorted stored positions) of ``cache`` as tensors on ``device``."""

    def __init__(self, cache: GraphCache, rows: np.ndarray, device: torch.device | str = "cpu"):
        a = cache.arrays
        self.rows = np.asarray(rows, dtype=np.int64)
        self.device = torch.device(device)
        counts = {k: np.asarray(a[f"n_{k}"]) for k in ("nodes", "edges", "triplets")}
        # host copies of counts and starts: batch index arithmetic runs in numpy, without device syncs
        self.counts = {k: v[self.rows] for k, v in counts.items()}
        self.starts = {k: _starts(v) for k, v in self.counts.items()}
        select = {k: ranges(_starts(counts[k])[self.rows], self.counts[k]) for k in counts}
        tensors = {}
        for kind, names in (("nodes", _NODE), ("edges", _EDGE), ("triplets", _TRIPLET)):
            for name in names:
                tensors[name] = torch.from_numpy(np.ascontiguousarray(a[name][select[kind]]))
        tensors["cell_offset"] = tensors["cell_offset"].float()  # float32 in memory: no conversion per batch
        for name in _GRAPH:
            tensors[name] = torch.from_numpy(np.ascontiguousarray(a[name][self.rows]))
        self.t = {name: value.to(self.device) for name, value in tensors.items()}
        self.mat_id = np.array([cache.mat_id[r] for r in self.rows], dtype=object)

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.t.values())

    def _index(self, index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(index).to(self.device, non_blocking=True)

    def batch(self, index: np.ndarray) -> Batch:
        """The ``CrystalGraph`` batch of the structures at positions ``index`` (into ``rows``)."""
        t = self.t
        n = {k: v[index] for k, v in self.counts.items()}
        node = self._index(ranges(self.starts["nodes"][index], n["nodes"]))
        edge = self._index(ranges(self.starts["edges"][index], n["edges"]))
        triplet = self._index(ranges(self.starts["triplets"][index], n["triplets"]))
        node_shift = self._index(np.repeat(_starts(n["nodes"]), n["edges"]))  # batch offset of each edge's graph
        edge_shift = self._index(np.repeat(_starts(n["edges"]), n["triplets"]))
        i = self._index(np.asarray(index, dtype=np.int64))

        def take(name: str, at: torch.Tensor) -> torch.Tensor:
            return t[name].index_select(0, at)

        arrays = {
            "z": take("z", node).long(),
            "pos": take("pos", node),
            "cell": take("cell", i),
            "edge_index": torch.stack([take("edge_src", edge), take("edge_dst", edge)]) + node_shift,
            "cell_offset": take("cell_offset", edge),
            "triplet_index": torch.stack([take("triplet_first", triplet), take("triplet_second", triplet)]) + edge_shift,
            "n_nodes": n["nodes"], "n_edges": n["edges"], "n_triplets": n["triplets"],
        }
        return arrays_to_batch(arrays, eps=take("eps", i), drude=take("drude", i), mat_id=self.mat_id[index].tolist())


class MemoryLoader:
    """Per-epoch batches of a split held in ``GraphTensors``, in ``EpochPlan`` order.

    ``num_workers`` only fixes the order (that of a DataLoader with that many workers); no
    worker processes run. ``len()`` is the number of batches this DDP rank yields.
    """

    def __init__(self, graphs: GraphTensors, plan: EpochPlan, epoch_fn: Callable[[], int], num_workers: int = 0):
        self.graphs = graphs
        self.plan = plan
        self.epoch_fn = epoch_fn
        self.num_workers = num_workers

    def __len__(self) -> int:
        rank, world = distributed_rank_world()
        return self.plan.num_batches(rank, world)

    def __iter__(self) -> Iterator[Batch]:
        rank, world = distributed_rank_world()
        for rows in self.plan.batches(int(self.epoch_fn()), rank, world, self.num_workers):
            yield self.graphs.batch(np.searchsorted(self.graphs.rows, rows))
