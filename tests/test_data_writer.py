"""The dataset writer: atomic, never overwrites, formula splits without leakage, nested order."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_dataset, random_record

from lightning_dielectric.data.schema import records_to_table, table_to_arrays
from lightning_dielectric.data.splits import split_by_formula
from lightning_dielectric.data.writer import DatasetExistsError, read_metadata, shard_paths, write_dataset


def _split_rows(root, split):
    tables = [pq.read_table(p) for p in shard_paths(root, split)]
    return pa.concat_tables(tables) if tables else None


def test_round_trip_values_and_metadata(tmp_path):
    rng = np.random.default_rng(3)
    records = [random_record(rng, i) for i in range(40)]
    root = tmp_path / "ds"
    meta = write_dataset([records_to_table(records)], root, seed=5, shard_rows=8, row_group_rows=4)
    assert sum(meta["counts"].values()) == 40
    assert read_metadata(root)["counts"] == meta["counts"]
    by_id = {r["mat_id"]: r for r in records}
    for split in ("train", "val", "test"):
        table = _split_rows(root, split)
        if table is None:
            continue
        arrays = table_to_arrays(table)
        for k, mat_id in enumerate(arrays["mat_id"]):
            src = by_id[mat_id]
            a, b = arrays["atom_offsets"][k], arrays["atom_offsets"][k + 1]
            np.testing.assert_allclose(arrays["lattice"][k], src["lattice"], rtol=1e-6)
            np.testing.assert_allclose(arrays["positions"][a:b], src["positions"], rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(arrays["atomic_numbers"][a:b], src["atomic_numbers"])
            np.testing.assert_allclose(arrays["eps_im"][k], src["eps_im"], rtol=1e-6, atol=1e-6)
            assert arrays["drude"][k] == pytest.approx(src["drude"], rel=1e-6)
    for shard in meta["shards"]:
        assert len(shard["sha256"]) == 64
        assert pq.ParquetFile(root / shard["path"]).metadata.num_rows == shard["rows"]


def test_no_formula_in_two_splits(tmp_path):
    root = make_dataset(tmp_path / "ds", n=120, seed=1)
    formulas = {s: set(_split_rows(root, s).column("formula").to_pylist()) for s in ("train", "val", "test")}
    assert not formulas["train"] & formulas["val"]
    assert not formulas["train"] & formulas["test"]
    assert not formulas["val"] & formulas["test"]


def test_split_fractions_follow_material_counts():
    formulas = [f"F{i % 300}" for i in range(3000)]
    split = split_by_formula(formulas, (0.8, 0.1, 0.1), seed=0)
    frac = np.bincount(split, minlength=3) / len(split)
    np.testing.assert_allclose(frac, [0.8, 0.1, 0.1], atol=0.02)
    with pytest.raises(ValueError, match="fractions"):
        split_by_formula(formulas, (0.5, 0.1, 0.1))


def test_training_order_is_seeded_and_independent_of_sharding(tmp_path):
    a = make_dataset(tmp_path / "a", n=96, seed=2, shard_rows=7, row_group_rows=3)
    b = make_dataset(tmp_path / "b", n=96, seed=2, shard_rows=50)
    c = make_dataset(tmp_path / "c", n=96, seed=2, split_of=None, fractions=(0.8, 0.1, 0.1), shard_rows=50)
    ids_a = _split_rows(a, "train").column("mat_id").to_pylist()
    ids_b = _split_rows(b, "train").column("mat_id").to_pylist()
    assert ids_a == ids_b == _split_rows(c, "train").column("mat_id").to_pylist()
    # The stored order is a shuffle, not the input order, so prefixes are random subsets.
    assert ids_a != sorted(ids_a)


def test_existing_dataset_is_not_overwritten(tmp_path):
    root = make_dataset(tmp_path / "ds", n=20)
    before = json.loads((root / "dataset.json").read_text())
    with pytest.raises(DatasetExistsError, match=str(root)):
        make_dataset(root, n=10)
    assert json.loads((root / "dataset.json").read_text()) == before
    meta = make_dataset(root, n=10, overwrite=True) and read_metadata(root)
    assert sum(meta["counts"].values()) == 10


def test_failed_write_leaves_nothing(tmp_path):
    rng = np.random.default_rng(0)

    def tables():
        yield records_to_table([random_record(rng, i) for i in range(5)])
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_dataset(tables(), tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_split_files_and_source_split(tmp_path):
    rng = np.random.default_rng(0)
    records = [random_record(rng, i) for i in range(12)]
    split_of = {r["mat_id"]: i % 3 for i, r in enumerate(records[:9])}
    meta = write_dataset([records_to_table(records)], tmp_path / "a", split_of=split_of)
    assert meta["counts"] == {"train": 3, "val": 3, "test": 3}
    assert meta["dropped_not_in_split_files"] == 3
    assert meta["split"]["method"] == "split-files"
    table = records_to_table(records)
    table = table.append_column("split", pa.array(["test"] * 2 + ["train"] * 10))
    meta = write_dataset([table], tmp_path / "b")
    assert meta["counts"] == {"train": 10, "val": 0, "test": 2}
    assert meta["split"]["method"] == "source"
