"""Generation of the synthetic dataset: format, determinism, worker independence, resume."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from lightning_dielectric.data.schema import SCHEMA, table_to_arrays
from lightning_dielectric.data.writer import DatasetExistsError, read_metadata, shard_paths
from lightning_dielectric.synthetic import generate as gen
from lightning_dielectric.synthetic.cli import main
from lightning_dielectric.synthetic.optics import OpticsSettings

FAST = OpticsSettings(k_spacing=0.6)  # coarse meshes keep the tests quick


def _rows(root) -> dict[str, dict]:
    """mat_id → (formula, values) over all splits of a dataset."""
    out = {}
    for split in ("train", "val", "test"):
        for path in shard_paths(root, split):
            table = pq.read_table(path)
            assert table.schema.equals(SCHEMA)
            arrays = table_to_arrays(table)
            for i, mat_id in enumerate(arrays["mat_id"]):
                lo, hi = arrays["atom_offsets"][i], arrays["atom_offsets"][i + 1]
                out[mat_id] = {
                    "split": split,
                    "formula": arrays["formula"][i],
                    "lattice": arrays["lattice"][i],
                    "z": arrays["atomic_numbers"][lo:hi],
                    "pos": arrays["positions"][lo:hi],
                    "eps_re": arrays["eps_re"][i],
                    "eps_im": arrays["eps_im"][i],
                    "drude": arrays["drude"][i],
                    "eah": table.column("e_above_hull")[i].as_py(),
                }
    return out


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for mat_id in a:
        for key in ("lattice", "z", "pos", "eps_re", "eps_im", "drude"):
            np.testing.assert_array_equal(a[mat_id][key], b[mat_id][key], err_msg=f"{mat_id} {key}")
        assert a[mat_id]["formula"] == b[mat_id]["formula"] and a[mat_id]["split"] == b[mat_id]["split"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ref"
    meta = gen.generate(12, 7, root, workers=1, chunk_size=5, settings=FAST)
    return root, meta


def test_dataset_format_and_values(reference):
    root, meta = reference
    assert sum(meta["counts"].values()) == 12 and meta["split"]["method"] == "balanced"
    rows = _rows(root)
    assert sorted(rows) == [f"tb-{i:06d}" for i in range(1, 13)]
    formulas = {}
    for row in rows.values():
        assert row["eah"] is None
        assert np.all(row["eps_im"] >= 0) and np.all(np.isfinite(row["eps_re"]))
        assert np.isfinite(row["drude"]) and row["drude"] >= 0
        assert 1 <= len(row["z"]) <= 8 and row["z"].max() <= 83
        formulas.setdefault(row["formula"], set()).add(row["split"])
    assert all(len(s) == 1 for s in formulas.values())  # a formula never spans two splits
    assert not gen.work_dir(root).exists()


def test_same_seed_same_values_and_other_seed_differs(reference, tmp_path):
    root, _ = reference
    gen.generate(12, 7, tmp_path / "again", workers=1, chunk_size=4, settings=FAST)  # other chunking
    _assert_same(_rows(root), _rows(tmp_path / "again"))
    gen.generate(3, 8, tmp_path / "other", workers=1, settings=FAST)
    assert not np.array_equal(_rows(tmp_path / "other")["tb-000001"]["eps_im"], _rows(root)["tb-000001"]["eps_im"])


def test_two_workers_give_identical_values(reference, tmp_path):
    root, _ = reference
    gen.generate(12, 7, tmp_path / "par", workers=2, chunk_size=3, settings=FAST)
    _assert_same(_rows(root), _rows(tmp_path / "par"))


def test_resume_after_interruption_computes_only_missing_chunks(reference, tmp_path, monkeypatch):
    root, _ = reference
    out = tmp_path / "resumed"
    assert gen.generate(12, 7, out, workers=1, chunk_size=5, settings=FAST, max_chunks=1) is None
    work = gen.work_dir(out)
    assert sorted(p.name for p in work.glob("chunk-*.parquet")) == ["chunk-00000.parquet"]
    (work / "chunk-00001.parquet.tmp-123").write_bytes(b"half-written")  # a write killed midway
    first = (work / "chunk-00000.parquet").stat().st_mtime_ns

    calls = []
    real = gen._chunk
    monkeypatch.setattr(gen, "_chunk", lambda seed, start, stop, s, p: calls.append(start) or real(seed, start, stop, s, p))
    seen = []
    gen.generate(12, 7, out, workers=1, chunk_size=5, settings=FAST, progress=lambda d, n: seen.append(d))
    assert calls == [5, 10] and seen[0] == 5 and seen[-1] == 12
    assert not work.exists()
    _assert_same(_rows(root), _rows(out))
    assert first  # chunk 0 was reused, not recomputed (calls did not include start 0)


def test_refuses_mismatched_work_dir_and_existing_output(tmp_path):
    out = tmp_path / "ds"
    gen.generate(4, 1, out, workers=1, chunk_size=2, settings=FAST, max_chunks=1)
    with pytest.raises(ValueError, match="other arguments"):
        gen.generate(4, 2, out, workers=1, chunk_size=2, settings=FAST)
    assert json.loads((gen.work_dir(out) / "params.json").read_text())["seed"] == 1


def test_cli_writes_dataset_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--n", "3", "--seed", "0", "--out", str(out), "--workers", "1", "--k-spacing", "0.6", "--no-progress"]
    assert main(args) == 0
    assert sum(read_metadata(out)["counts"].values()) == 3
    assert main(args) == 0  # finished with these arguments: nothing to do
    assert main([*args[:2], "--seed", "5", *args[4:]]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and str(out) in err and len(err.strip().splitlines()) == 1
    with pytest.raises(DatasetExistsError):
        gen.generate(3, 0, out, settings=FAST)
