"""DielectricDataModule: values, nested subsets, per-epoch shuffling, exact rank/worker partition."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import pytorch_lightning as pl
import torch
from conftest import make_dataset

from lightning_dielectric.data import DielectricDataModule
from lightning_dielectric.data.epochs import rank_batches, shuffle_buffer
from lightning_dielectric.data.schema import table_to_arrays
from lightning_dielectric.data.writer import shard_paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """~240 training rows in several shards of small row groups, so plans cross group boundaries."""
    return make_dataset(tmp_path_factory.mktemp("dm") / "ds", n=300, seed=3, shard_rows=64, row_group_rows=16)


def stored_rows(root: Path, split: str) -> dict:
    """All rows of a split in stored order, as numpy arrays."""
    tables = [pq.read_table(p) for p in shard_paths(root, split)]
    out = []
    for t in tables:
        a = table_to_arrays(t)
        for k in range(t.num_rows):
            atoms = slice(a["atom_offsets"][k], a["atom_offsets"][k + 1])
            out.append(
                {
                    "mat_id": a["mat_id"][k],
                    "lattice": a["lattice"][k],
                    "z": a["atomic_numbers"][atoms],
                    "pos": a["positions"][atoms],
                    "eps": np.stack([a["eps_re"][k], a["eps_im"][k]], axis=-1),
                    "drude": a["drude"][k],
                }
            )
    return out


def epoch_ids(dm: DielectricDataModule, split: str = "train", epoch: int = 0) -> list[str]:
    dm.set_epoch(epoch)
    loader = getattr(dm, f"{split}_dataloader")()
    return [m for batch in loader for m in batch.mat_id]


def test_batches_hold_the_stored_values(dataset):
    rows = {r["mat_id"]: r for r in stored_rows(dataset, "val")}
    dm = DielectricDataModule(str(dataset), batch_size=8, threebody_cutoff=4.0)
    seen = 0
    for batch in dm.val_dataloader():
        assert batch.eps.shape == (batch.num_graphs, 2001, 2) and batch.eps.dtype == torch.float32
        assert batch.drude.shape == (batch.num_graphs,)
        for k, mat_id in enumerate(batch.mat_id):
            r = rows[mat_id]
            g = batch.get_example(k)
            np.testing.assert_array_equal(batch.eps[k].numpy(), r["eps"])
            assert batch.drude[k].item() == r["drude"]
            np.testing.assert_array_equal(g.z.numpy(), r["z"])
            np.testing.assert_array_equal(g.pos.numpy(), r["pos"])
            np.testing.assert_array_equal(batch.cell[k].numpy(), r["lattice"])
            assert g.triplet_index.shape[1] > 0
            seen += 1
    assert seen == len(rows) == dm.counts["val"]


def test_train_subset_is_the_first_rows_and_nested(dataset):
    order = [r["mat_id"] for r in stored_rows(dataset, "train")]
    previous: set[str] = set()
    for d in (10, 50, 100, len(order)):
        ids = epoch_ids(DielectricDataModule(str(dataset), train_size=d, batch_size=16))
        assert len(ids) == d and set(ids) == set(order[:d])
        assert previous <= set(ids)
        previous = set(ids)
    with pytest.raises(ValueError, match="train_size=9999"):
        DielectricDataModule(str(dataset), train_size=9999)


def test_shuffle_differs_per_epoch_and_is_reproducible(dataset):
    dm = DielectricDataModule(str(dataset), batch_size=16, seed=7, shuffle_buffer=64)
    e0, e1 = epoch_ids(dm, epoch=0), epoch_ids(dm, epoch=1)
    assert sorted(e0) == sorted(e1) and e0 != e1
    again = DielectricDataModule(str(dataset), batch_size=16, seed=7, shuffle_buffer=64)
    assert epoch_ids(again, epoch=1) == e1
    other = DielectricDataModule(str(dataset), batch_size=16, seed=8, shuffle_buffer=64)
    assert epoch_ids(other, epoch=1) != e1
    # not just the stored order
    assert e0 != [r["mat_id"] for r in stored_rows(dataset, "train")]


def test_eval_order_is_deterministic_and_workers_keep_it(dataset):
    stored = [r["mat_id"] for r in stored_rows(dataset, "test")]
    dm = DielectricDataModule(str(dataset), batch_size=4)
    assert epoch_ids(dm, "test", 0) == epoch_ids(dm, "test", 5) == stored
    dm2 = DielectricDataModule(str(dataset), batch_size=4, num_workers=2)
    ids = epoch_ids(dm2, "test")
    assert sorted(ids) == sorted(stored) and ids == epoch_ids(dm2, "test")


def test_two_workers_deliver_every_sample_once(dataset):
    dm = DielectricDataModule(str(dataset), batch_size=16, num_workers=2, train_size=201)
    loader = dm.train_dataloader()
    ids = [b.mat_id for b in loader]
    assert len(ids) == len(loader) == 13
    flat = [m for b in ids for m in b]
    assert len(flat) == len(set(flat)) == 201


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 32])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_batches_partition_exactly_with_equal_batch_counts(batch_size, world):
    for n in range(0, 130):
        try:
            plans = [rank_batches(n, world, r, batch_size) for r in range(world)]
        except ValueError:
            # only when equal counts are impossible without dropping or repeating samples
            assert n < world or (batch_size == 1 and n % world)
            continue
        covered = []
        for start, sizes in plans:
            covered.extend(range(start, start + sum(sizes)))
        assert covered == list(range(n))  # contiguous, disjoint, complete
        assert len({len(sizes) for _, sizes in plans}) == 1
        for _, sizes in plans:
            assert all(0 < s <= batch_size for s in sizes)
            if len(sizes) >= 2:
                assert min(sizes) >= batch_size // 2


def test_worker_and_rank_plans_cover_every_row_once(dataset):
    dm = DielectricDataModule(str(dataset), batch_size=8, train_size=199)
    plan = dm.stream("train").plan
    for world in (1, 2, 3):
        seen = []
        counts = set()
        for rank in range(world):
            n_batches = 0
            for worker in range(3):
                rows, sizes = plan.worker_rows(3, rank, world, worker, 3)
                assert len(rows) == sum(sizes)
                seen.extend(rows.tolist())
                n_batches += len(sizes)
            counts.add(n_batches)
        assert len(counts) == 1
        assert len(seen) == len(set(seen)) == 199 and set(seen) == set(range(199))


def _ddp_worker(rank: int, world: int, root: str, port: int, out: str) -> None:
    # spawned ranks default to spawning their DataLoader workers (a fresh interpreter each, slow
    # here); fork them as under Lightning's default DDP launcher on Linux
    torch.multiprocessing.set_start_method("fork", force=True)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    dm = DielectricDataModule(root, batch_size=16, num_workers=2, train_size=203, seed=1)
    record = {}
    for epoch in (0, 1):
        dm.set_epoch(epoch)
        loader = dm.train_dataloader()
        ids, batches = [], 0
        for batch in loader:
            ids.extend(batch.mat_id)
            batches += 1
            # a collective per batch, as DDP's gradient all-reduce: unequal counts would hang here
            torch.distributed.all_reduce(torch.ones(1))
        record[epoch] = {"ids": ids, "batches": batches, "len": len(loader)}
    torch.save(record, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_ranks_gloo_exactly_once_equal_batches(dataset, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(dataset), port, str(tmp_path)), nprocs=2, join=True)
    records = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    order = [r["mat_id"] for r in stored_rows(dataset, "train")][:203]
    for epoch in (0, 1):
        ids = [records[r][epoch]["ids"] for r in range(2)]
        assert sorted(ids[0] + ids[1]) == sorted(order)  # every sample exactly once
        assert len(ids[0]) + len(ids[1]) == 203 and not set(ids[0]) & set(ids[1])
        assert records[0][epoch]["batches"] == records[1][epoch]["batches"] == records[0][epoch]["len"] == 7
    assert records[0][0]["ids"] != records[0][1]["ids"]  # reshuffled between epochs


class _Recorder(pl.LightningModule):
    """Minimal module that records the training mat_ids of every epoch."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.epochs: dict[int, list[str]] = {}

    def training_step(self, batch, batch_idx):
        self.epochs.setdefault(self.current_epoch, []).extend(batch.mat_id)
        return ((batch.drude - self.w) ** 2).mean()

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("cache, workers", [("auto", 0), ("off", 2)])  # in memory; streamed by worker processes
def test_trainer_reshuffles_each_epoch(dataset, tmp_path, cache, workers):
    kw = dict(batch_size=32, train_size=100, seed=2, cache=cache, num_workers=workers, cache_dir=str(tmp_path / "cache"))
    dm = DielectricDataModule(str(dataset), **kw)
    model = _Recorder()
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.num_training_batches == 4
    e0, e1 = model.epochs[0], model.epochs[1]
    assert sorted(e0) == sorted(e1) and len(set(e0)) == 100 and e0 != e1
    assert e0 == epoch_ids(DielectricDataModule(str(dataset), **kw), epoch=0)
    assert e1 == epoch_ids(DielectricDataModule(str(dataset), **kw), epoch=1)


def test_shard_problems_name_the_file(tmp_path):
    root = make_dataset(tmp_path / "ds", n=40, seed=1)
    shard = shard_paths(root, "train")[0]
    shard.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=str(shard.name)):
        DielectricDataModule(str(root)).train_dataloader()
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        DielectricDataModule(str(tmp_path / "missing"))


def test_shuffle_buffer_permutes_and_size_zero_keeps_order():
    rng = np.random.default_rng(0)
    assert list(shuffle_buffer(iter(range(50)), 0, rng)) == list(range(50))
    out = list(shuffle_buffer(iter(range(50)), 8, rng))
    assert sorted(out) == list(range(50)) and out != list(range(50))


def test_arguments_are_typed_for_lightning_cli(dataset):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(DielectricDataModule, "data")
    cfg = parser.parse_args(["--data.root", str(dataset), "--data.train_size", "64", "--data.threebody_cutoff", "4.0"])
    dm = DielectricDataModule(**cfg.data.as_dict())
    assert dm.num_train == 64 and dm.threebody_cutoff == 4.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--data.root", str(dataset), "--data.batch_size", "many"])


def test_stream_workers_import_neither_torch_nor_pandas(dataset):
    # the workers are fresh interpreters: what they import is what each one holds in memory
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lightning_dielectric.data.stream_worker import row_groups, stream_payloads\n"
        "from lightning_dielectric.data.epochs import EpochPlan\n"
        "from lightning_dielectric.data.writer import shard_paths\n"
        "import numpy as np\n"
        f"paths = [str(p) for p in shard_paths({str(dataset)!r}, 'train')]\n"
        "groups, starts = row_groups(paths)\n"
        "plan = EpochPlan(starts, np.arange(starts[-1]), 8, True, 0, 32)\n"
        "n = sum(len(p['mat_id']) for p in stream_payloads(paths, groups, starts, plan, 5.5, 4.0, 0, 0, 1, 0, 2))\n"
        "print(n, sorted(m for m in ('torch', 'torch_geometric', 'pytorch_lightning', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    assert int(out[0]) > 0 and out[1].strip() == "[]"


def test_stream_worker_error_is_raised_with_its_type(dataset, tmp_path):
    dm = DielectricDataModule(str(dataset), batch_size=8, num_workers=2, cache="off")
    loader = dm.train_dataloader()
    loader.stream.paths = [str(tmp_path / f"missing-{k}.parquet") for k in range(len(loader.stream.paths))]
    with pytest.raises(ValueError, match="cannot read row group"):
        list(loader)


def test_stopping_an_epoch_early_ends_its_workers(dataset):
    import psutil

    def children() -> set[int]:
        return {p.pid for p in psutil.Process().children()}

    before = children()  # e.g. a forkserver an earlier test started
    dm = DielectricDataModule(str(dataset), batch_size=8, num_workers=2, cache="off")
    batches = iter(dm.train_dataloader())
    next(batches)
    assert len(children() - before) == 2
    batches.close()
    assert children() - before == set()
    assert [b.mat_id for b in dm.train_dataloader()]  # and the next epoch starts new ones
