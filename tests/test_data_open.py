"""Datasets a user can open with common tools: units and meanings in the Parquet field metadata
and in dataset.json, one split read by pandas, all splits by a pyarrow/DuckDB/Polars glob, and a
spectra figure readable from 2 to 20 eV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from lightning_dielectric.data.schema import COLUMNS, ENERGY_GRID

UNITS = {"lattice": "Å", "positions": "Å", "drude": "eV", "e_above_hull": "eV/atom", "eps_re": "1", "eps_im": "1"}


def test_parquet_fields_carry_units_and_meanings(tiny_dataset):
    schema = pq.read_schema(next((tiny_dataset / "train").glob("part-*.parquet")))
    for field in schema:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        assert meta.get("description"), field.name
        assert meta.get("unit") == UNITS.get(field.name, ""), field.name
    assert "0.01 eV" in schema.field("eps_im").metadata[b"description"].decode()
    assert schema.metadata[b"lightning_dielectric.schema_version"] == b"1"


def test_dataset_json_holds_the_full_schema(tiny_dataset):
    meta = json.loads((tiny_dataset / "dataset.json").read_text())
    assert [c["name"] for c in meta["schema"]] == list(COLUMNS)
    by_name = {c["name"]: c for c in meta["schema"]}
    assert by_name["drude"]["unit"] == "eV" and by_name["e_above_hull"]["nullable"] is True
    assert by_name["eps_re"]["type"].startswith("fixed_size_list")


def test_documented_readers_work(tiny_dataset):
    counts = json.loads((tiny_dataset / "dataset.json").read_text())["counts"]
    train = pd.read_parquet(tiny_dataset / "train")
    assert len(train) == counts["train"] and len(train["eps_im"].iloc[0]) == len(ENERGY_GRID)
    every = ds.dataset(tiny_dataset, format="parquet", exclude_invalid_files=True,
                       partitioning=ds.DirectoryPartitioning(pa.schema([("split", pa.string())])))
    table = every.to_table(columns=["mat_id", "split", "drude"])
    assert table.num_rows == sum(counts.values())
    assert pd.Series(table.column("split").to_pylist()).value_counts().to_dict() == {k: v for k, v in counts.items() if v}


def test_duckdb_and_polars_globs(tiny_dataset):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    counts = json.loads((tiny_dataset / "dataset.json").read_text())["counts"]
    n = duckdb.sql(f"SELECT count(*) FROM '{tiny_dataset}/*/part-*.parquet'").fetchall()[0][0]
    assert n == sum(counts.values())
    assert pl.scan_parquet(f"{tiny_dataset}/*/part-*.parquet").select(pl.len()).collect().item() == n
    assert pl.scan_parquet(f"{tiny_dataset}/train/*.parquet").select(pl.len()).collect().item() == counts["train"]


def test_spectra_figure_has_a_readable_2_to_20_ev_panel():
    from lightning_dielectric.data.plots import spectra_figure

    e = ENERGY_GRID
    spike = 500.0 * np.exp(-e / 0.1) + 3.0 * np.exp(-((e - 8.0) ** 2))  # metal-like: huge near 0 eV
    spectra = {"energy_ev": e, "eps_re_mean": 1 + spike, "eps_re_std": 0.1 * spike + 0.2,
               "eps_im_mean": spike, "eps_im_std": 0.1 * spike + 0.2}
    fig = spectra_figure({"train": {"materials": 10, "spectra": spectra}})
    full, zoom = fig.axes[1], fig.axes[3]  # Im: 0-20 eV, then 2-20 eV
    assert full.get_ylim()[1] > 400
    assert zoom.get_xlim() == pytest.approx((2.0, 20.0))
    assert 3.0 < zoom.get_ylim()[1] < 6.0  # the 8 eV peak fills the panel
