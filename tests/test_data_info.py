"""``data info``: streamed statistics equal brute-force values; nested training subsets; plots; errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_dataset
from pymatgen.core.periodic_table import Element

from lightning_dielectric.data.info import dataset_stats, main
from lightning_dielectric.data.schema import SPLITS
from lightning_dielectric.data.writer import read_metadata, shard_paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # Small shards and row groups so that streaming crosses many boundaries.
    return make_dataset(tmp_path_factory.mktemp("info") / "ds", n=90, seed=4, shard_rows=16, row_group_rows=5)


def _rows(root, split, limit=None):
    table = pa.concat_tables([pq.read_table(p) for p in shard_paths(root, split)])
    return table.slice(0, limit).to_pylist() if limit is not None else table.to_pylist()


def _expected(rows):
    elements = {}
    for r in rows:
        for z in set(r["atomic_numbers"]):
            sym = Element.from_Z(z).symbol
            elements[sym] = elements.get(sym, 0) + 1
    natoms = np.array([len(r["atomic_numbers"]) for r in rows])
    drude = np.array([r["drude"] for r in rows], dtype=np.float64)
    re = np.array([r["eps_re"] for r in rows], dtype=np.float64)
    im = np.array([r["eps_im"] for r in rows], dtype=np.float64)
    return elements, natoms, drude, re, im


def _assert_stats(s, rows):
    elements, natoms, drude, re, im = _expected(rows)
    assert s["materials"] == len(rows)
    assert s["elements"] == elements
    sizes, counts = np.unique(natoms, return_counts=True)
    assert s["atoms_per_cell"]["histogram"] == dict(zip(sizes.tolist(), counts.tolist()))
    assert s["atoms_per_cell"]["median"] == pytest.approx(np.median(natoms))
    assert s["drude_ev"]["mean"] == pytest.approx(drude.mean(), rel=1e-9)
    assert s["drude_ev"]["std"] == pytest.approx(drude.std(), rel=1e-9)
    assert s["drude_ev"]["quantiles"]["0.95"] == pytest.approx(np.quantile(drude, 0.95), rel=1e-9)
    np.testing.assert_allclose(s["spectra"]["eps_re_mean"], re.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(s["spectra"]["eps_im_std"], im.std(axis=0), rtol=1e-6, atol=1e-9)


def test_stats_equal_brute_force(dataset):
    stats = dataset_stats(dataset)
    everything = []
    for split in SPLITS:
        rows = _rows(dataset, split)
        everything += rows
        _assert_stats(stats["splits"][split], rows)
    _assert_stats(stats["all"], everything)
    assert {s: stats["splits"][s]["materials"] for s in SPLITS} == read_metadata(dataset)["counts"]


@pytest.mark.parametrize("d", [1, 13, 40])
def test_train_size_describes_the_nested_subset(dataset, d):
    stats = dataset_stats(dataset, train_size=d)
    _assert_stats(stats["splits"]["train"], _rows(dataset, "train", d))
    _assert_stats(stats["splits"]["val"], _rows(dataset, "val"))  # other splits are whole


def test_cli_writes_summary_json_and_plots(dataset, tmp_path, capsys):
    plots = tmp_path / "plots"
    assert main([str(dataset), "--plots", str(plots), "--json", str(tmp_path / "s.json"), "--train-size", "20"]) == 0
    out = capsys.readouterr().out
    assert "training subset D = 20" in out and "elements present" in out
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["atoms_per_cell.png", "drude_frequency.png", "elements_periodic_table.png", "spectra_mean_std.png"]
    for p in plots.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["splits"]["train"]["materials"] == 20
    assert len(saved["all"]["spectra"]["eps_im_mean"]) == 2001


def test_cli_errors(dataset, tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "dataset.json missing" in capsys.readouterr().err
    n_train = read_metadata(dataset)["counts"]["train"]
    assert main([str(dataset), "--train-size", str(n_train + 1)]) == 2
    assert "training rows" in capsys.readouterr().err
