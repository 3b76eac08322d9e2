"""Graphs and targets held as tensors on the training device; batches assembled by gathers.

``GraphTensors`` keeps selected structures of a ``GraphCache`` in compact dtypes (int8 atomic
numbers, int16 cell offsets, int32 per-structure indices) on one device. A batch is a handful of
vectorised gathers (no Python per structure, no worker processes): the node, edge and triplet
ranges of the chosen structures are expanded with ``repeat_interleave``, and edge (triplet)
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

from .epochs import EpochPlan
from .graph_cache import GraphCache
from .graphs import arrays_to_batch
from .stream import distributed_rank_world

_NODE, _EDGE, _TRIPLET = ("z", "pos"), ("edge_src", "edge_dst", "cell_offset"), ("triplet_first", "triplet_second")
_GRAPH = ("cell", "eps", "drude")


def ranges(starts: np.ndarray | Tensor, counts: np.ndarray | Tensor, total: int) -> np.ndarray | Tensor:
    """Concatenated ``arange(starts[k], starts[k] + counts[k])`` (``total`` = Σ counts)."""
    if isinstance(starts, np.ndarray):
        offsets = np.cumsum(counts) - counts
        return np.repeat(starts - offsets, counts) + np.arange(total)
    offsets = torch.cumsum(counts, 0) - counts
    return torch.repeat_interleave(starts - offsets, counts, output_size=total) + torch.arange(total, device=starts.device)


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


class GraphTensors:
    """The structures ``rows`` (sorted stored positions) of ``cache`` as tensors on ``device``."""

    def __init__(self, cache: GraphCache, rows: np.ndarray, device: torch.device | str = "cpu"):
        a = cache.arrays
        self.rows = np.asarray(rows, dtype=np.int64)
        self.device = torch.device(device)
        counts = {k: np.asarray(a[f"n_{k}"]) for k in ("nodes", "edges", "triplets")}
        self.counts = {k: v[self.rows] for k, v in counts.items()}  # host copies: batch sizes without syncs
        select = {k: ranges(_starts(counts[k])[self.rows], self.counts[k], int(self.counts[k].sum())) for k in counts}
        tensors = {}
        for kind, names in (("nodes", _NODE), ("edges", _EDGE), ("triplets", _TRIPLET)):
            for name in names:
                tensors[name] = torch.from_numpy(np.ascontiguousarray(a[name][select[kind]]))
        for name in _GRAPH:
            tensors[name] = torch.from_numpy(np.ascontiguousarray(a[name][self.rows]))
        for kind, values in self.counts.items():
            tensors[f"n_{kind}"] = torch.from_numpy(values)
            tensors[f"start_{kind}"] = torch.from_numpy(_starts(values))
        self.t = {name: value.to(self.device) for name, value in tensors.items()}
        self.mat_id = [cache.mat_id[r] for r in self.rows]

    @property
    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.t.values())

    def batch(self, index: np.ndarray) -> Batch:
        """The ``CrystalGraph`` batch of the structures at positions ``index`` (into ``rows``)."""
        t = self.t
        host = {k: v[index] for k, v in self.counts.items()}
        total = {k: int(v.sum()) for k, v in host.items()}
        i = torch.from_numpy(np.asarray(index, dtype=np.int64)).to(self.device, non_blocking=True)
        count = {k: t[f"n_{k}"][i] for k in host}
        node = ranges(t["start_nodes"][i], count["nodes"], total["nodes"])
        edge = ranges(t["start_edges"][i], count["edges"], total["edges"])
        triplet = ranges(t["start_triplets"][i], count["triplets"], total["triplets"])
        node_shift = torch.repeat_interleave(torch.cumsum(count["nodes"], 0) - count["nodes"], count["edges"],
                                             output_size=total["edges"])
        edge_shift = torch.repeat_interleave(torch.cumsum(count["edges"], 0) - count["edges"], count["triplets"],
                                             output_size=total["triplets"])
        arrays = {
            "z": t["z"][node].long(),
            "pos": t["pos"][node],
            "cell": t["cell"][i],
            "edge_index": torch.stack([t["edge_src"][edge], t["edge_dst"][edge]]).long() + node_shift,
            "cell_offset": t["cell_offset"][edge].float(),
            "triplet_index": torch.stack([t["triplet_first"][triplet], t["triplet_second"][triplet]]).long()
            + edge_shift,
            "n_nodes": host["nodes"], "n_edges": host["edges"], "n_triplets": host["triplets"],
        }
        return arrays_to_batch(arrays, eps=t["eps"][i], drude=t["drude"][i], mat_id=[self.mat_id[k] for k in index])


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
