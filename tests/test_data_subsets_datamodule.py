"""DielectricDataModule on published training subsets: ``train_size=D`` trains on exactly the
stored ``train_<D>.txt`` materials (one process, and 2 DDP ranks together), the nested prefix for
an unlisted D, and ``train_ids=FILE`` on the materials of any list
(``lightning_dielectric.data.subsets.train_rows``)."""

from __future__ import annotations

import datetime
import os
import random
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import random_record

from lightning_dielectric.data import DielectricDataModule
from lightning_dielectric.data.schema import records_to_table
from lightning_dielectric.data.writer import shard_paths, write_dataset

SIZES = (20, 40)


@pytest.fixture(scope="module")
def listed(tmp_path_factory) -> tuple[Path, dict[int, list[str]]]:
    """120 materials, 90 in train.txt, with the paper's ``random.Random(42).sample`` lists for D = 20, 40."""
    rng = np.random.default_rng(8)
    records = [random_record(rng, i) for i in range(120)]
    ids = [r["mat_id"] for r in records]
    split_of = {m: 0 if i < 90 else 1 if i < 105 else 2 for i, m in enumerate(ids)}
    subsets = {d: random.Random(42).sample(ids[:90], k=d) for d in SIZES}
    root = tmp_path_factory.mktemp("subsets") / "ds"
    tables = [records_to_table(records[i : i + 16]) for i in range(0, 120, 16)]
    write_dataset(tables, root, seed=3, split_of=split_of, subsets=subsets, shard_rows=32, row_group_rows=8)
    return root, subsets


def stored_order(root: Path) -> list[str]:
    return [m for p in shard_paths(root, "train") for m in pq.read_table(p, columns=["mat_id"])["mat_id"].to_pylist()]


def epoch_ids(dm: DielectricDataModule, epoch: int) -> list[str]:
    dm.set_epoch(epoch)
    return [m for batch in dm.train_dataloader() for m in batch.mat_id]


@pytest.mark.parametrize("d", SIZES)
def test_listed_train_size_trains_on_exactly_the_listed_materials(listed, d):
    root, subsets = listed
    assert set(subsets[d]) != set(stored_order(root)[:d])  # a list, not the prefix
    dm = DielectricDataModule(str(root), train_size=d, batch_size=8, seed=1)
    assert dm.num_train == d
    epochs = [epoch_ids(dm, e) for e in (0, 1)]
    for ids in epochs:
        assert Counter(ids) == Counter(subsets[d])  # every listed material exactly once
    assert epochs[0] != epochs[1]  # reshuffled per epoch


def test_unlisted_train_size_is_the_nested_prefix(listed):
    root, _ = listed
    dm = DielectricDataModule(str(root), train_size=30, batch_size=8, seed=1)
    assert sorted(epoch_ids(dm, 0)) == sorted(stored_order(root)[:30])


def test_train_ids_file_selects_its_materials(listed, tmp_path):
    root, subsets = listed
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(subsets[20][:13]) + "\n")
    dm = DielectricDataModule(str(root), train_ids=str(path), batch_size=8, seed=1)
    assert dm.num_train == 13
    assert Counter(epoch_ids(dm, 0)) == Counter(subsets[20][:13])


def _ddp_worker(rank: int, world: int, root: str, port: int, out: str) -> None:
    torch.multiprocessing.set_start_method("fork", force=True)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    dm = DielectricDataModule(root, train_size=40, batch_size=8, num_workers=1, seed=1)
    record = {}
    for epoch in (0, 1):
        dm.set_epoch(epoch)
        ids, batches = [], 0
        for batch in dm.train_dataloader():
            ids.extend(batch.mat_id)
            batches += 1
            torch.distributed.all_reduce(torch.ones(1))  # as DDP's gradient all-reduce: equal counts or a hang
        record[epoch] = {"ids": ids, "batches": batches}
    torch.save(record, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ddp_ranks_together_train_on_the_listed_materials_once(listed, tmp_path):
    root, subsets = listed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(root), port, str(tmp_path)), nprocs=2, join=True)
    records = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for epoch in (0, 1):
        ids = [records[r][epoch]["ids"] for r in range(2)]
        assert Counter(ids[0] + ids[1]) == Counter(subsets[40]) and not set(ids[0]) & set(ids[1])
        assert records[0][epoch]["batches"] == records[1][epoch]["batches"]
