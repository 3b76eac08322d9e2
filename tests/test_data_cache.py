"""Graph cache and in-memory batches: equal to the Parquet stream, keyed, shared safely."""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset

from lightning_dielectric.data import DielectricDataModule
from lightning_dielectric.data.epochs import shuffle_buffer, shuffle_buffer_order
from lightning_dielectric.data.graph_cache import cache_key, open_graph_cache
from lightning_dielectric.data.memory import MemoryLoader
from lightning_dielectric.data.stream import EpochLoader

KEYS = ("z", "pos", "cell", "edge_index", "cell_offset", "triplet_index", "eps", "drude", "batch", "ptr")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("cache") / "ds", n=300, seed=5, shard_rows=64, row_group_rows=16)


def epoch_batches(dm: DielectricDataModule, split: str, epoch: int) -> list:
    dm.set_epoch(epoch)
    return list(getattr(dm, f"{split}_dataloader")())


def assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.mat_id == y.mat_id
        for key in KEYS:
            assert x[key].dtype == y[key].dtype, key
            assert torch.equal(x[key], y[key]), key
        for key in ("z", "edge_index", "triplet_index"):
            assert torch.equal(x._slice_dict[key], y._slice_dict[key]) and torch.equal(x._inc_dict[key], y._inc_dict[key])
        g, h = x.get_example(len(x.mat_id) - 1), y.get_example(len(y.mat_id) - 1)
        assert torch.equal(g.edge_index, h.edge_index) and torch.equal(g.triplet_index, h.triplet_index)


@pytest.mark.parametrize("train_size, workers, tb", [(None, 0, 4.0), (137, 2, None), (64, 3, 4.0)])
def test_memory_batches_equal_streamed_batches(dataset, tmp_path, train_size, workers, tb):
    kw = dict(train_size=train_size, batch_size=16, num_workers=workers, threebody_cutoff=tb, seed=4,
              shuffle_buffer=40, cache_dir=str(tmp_path))
    memory = DielectricDataModule(str(dataset), cache="memory", **kw)
    stream = DielectricDataModule(str(dataset), cache="off", **kw)
    assert isinstance(memory.train_dataloader(), MemoryLoader)
    assert isinstance(stream.train_dataloader(), EpochLoader)
    for epoch in (0, 1):
        assert_same_batches(epoch_batches(memory, "train", epoch), epoch_batches(stream, "train", epoch))
    assert_same_batches(epoch_batches(memory, "val", 0), epoch_batches(stream, "val", 0))
    assert len(memory.train_dataloader()) == len(stream.train_dataloader())


def test_parallel_build_equals_serial_build(dataset, tmp_path):
    serial = open_graph_cache(dataset, "train", 5.5, 4.0, tmp_path / "one", workers=1, progress=False)
    parallel = open_graph_cache(dataset, "train", 5.5, 4.0, tmp_path / "two", workers=2, progress=False)
    assert parallel.mat_id == serial.mat_id
    for name, values in serial.arrays.items():
        assert np.array_equal(parallel.arrays[name], values), name


def test_auto_streams_when_over_the_budget(dataset, tmp_path):
    dm = DielectricDataModule(str(dataset), cache="auto", cache_dir=str(tmp_path), memory_budget_gb=1e-6)
    assert isinstance(dm.train_dataloader(), EpochLoader)
    roomy = DielectricDataModule(str(dataset), cache="auto", cache_dir=str(tmp_path), memory_budget_gb=1.0)
    assert isinstance(roomy.train_dataloader(), MemoryLoader)


def test_cache_is_reused_and_rebuilt_when_dataset_or_cutoff_changes(tmp_path):
    root = make_dataset(tmp_path / "a", n=40, seed=1)
    first = open_graph_cache(root, "train", 5.5, 4.0, tmp_path / "cache", workers=1, progress=False)
    stamp = (first.path / "meta.json").stat().st_mtime_ns
    again = open_graph_cache(root, "train", 5.5, 4.0, tmp_path / "cache", workers=1, progress=False)
    assert again.path == first.path and (again.path / "meta.json").stat().st_mtime_ns == stamp
    other_cutoff = open_graph_cache(root, "train", 5.0, 4.0, tmp_path / "cache", workers=1, progress=False)
    no_triplets = open_graph_cache(root, "train", 5.5, None, tmp_path / "cache", workers=1, progress=False)
    assert len({first.path, other_cutoff.path, no_triplets.path}) == 3
    assert other_cutoff.arrays["edge_src"].shape[0] < first.arrays["edge_src"].shape[0]
    assert no_triplets.arrays["triplet_first"].shape[0] == 0 < first.arrays["triplet_first"].shape[0]
    other_data = make_dataset(tmp_path / "b", n=40, seed=2)
    assert cache_key(other_data, "train", 5.5, 4.0) != cache_key(root, "train", 5.5, 4.0)


def _open_cache(root: str, cache_dir: str, out: str, start) -> None:
    start.wait(timeout=60)
    cache = open_graph_cache(root, "train", 5.5, 4.0, cache_dir, workers=1, progress=False)
    Path(out).write_text(f"{cache.path}\n{int(np.asarray(cache.arrays['n_edges']).sum())}")


def test_concurrent_builders_produce_one_valid_cache(tmp_path):
    root = make_dataset(tmp_path / "ds", n=120, seed=2)
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_open_cache, args=(str(root), str(tmp_path / "cache"), str(tmp_path / f"out{k}"), start))
             for k in range(3)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    results = {(tmp_path / f"out{k}").read_text() for k in range(3)}
    assert len(results) == 1
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert [e for e in entries if not e.endswith(".lock")] == [Path(results.pop().split()[0]).name]
    direct = DielectricDataModule(str(root), cache="off", threebody_cutoff=4.0)
    cached = DielectricDataModule(str(root), cache="memory", threebody_cutoff=4.0, cache_dir=str(tmp_path / "cache"))
    assert_same_batches(epoch_batches(cached, "train", 0), epoch_batches(direct, "train", 0))


def test_unwritable_cache_dir_is_a_one_line_error(dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    dm = DielectricDataModule(str(dataset), cache="memory", cache_dir=str(blocker / "sub"))
    with pytest.raises(ValueError, match="data.cache_dir"):
        dm.train_dataloader()


def _ddp_ids(rank: int, world: int, root: str, port: int, out: str, cache: str, cache_dir: str) -> None:
    torch.multiprocessing.set_start_method("fork", force=True)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    dm = DielectricDataModule(root, batch_size=16, num_workers=2, train_size=203, seed=1, cache=cache,
                              cache_dir=cache_dir)
    record = {}
    for epoch in (0, 1):
        dm.set_epoch(epoch)
        record[epoch] = [(b.mat_id, b.edge_index.clone()) for b in dm.train_dataloader()]
    torch.save(record, Path(out) / f"{cache}-rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_ranks_memory_equals_stream(dataset, tmp_path):
    import socket

    for cache in ("memory", "off"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        torch.multiprocessing.spawn(_ddp_ids, args=(2, str(dataset), port, str(tmp_path), cache, str(tmp_path / "c")),
                                    nprocs=2, join=True)
    for rank in range(2):
        memory = torch.load(tmp_path / f"memory-rank{rank}.pt")
        stream = torch.load(tmp_path / f"off-rank{rank}.pt")
        for epoch in (0, 1):
            assert [m for m, _ in memory[epoch]] == [m for m, _ in stream[epoch]]
            assert all(torch.equal(a, b) for (_, a), (_, b) in zip(memory[epoch], stream[epoch]))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 8, 64, 1000])
def test_vectorised_shuffle_order_equals_the_buffer(size):
    for n in (0, 1, 2, 5, 63, 64, 65, 500):
        for seed in range(4):
            reference_rng, rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 1])
            expected = list(shuffle_buffer(iter(range(n)), size, reference_rng))
            assert shuffle_buffer_order(n, size, rng).tolist() == expected
            assert rng.integers(1 << 30) == reference_rng.integers(1 << 30)  # same generator state after
