"""Runs tables: reading, import of the paper's JSON format (and its errors), axis inference
without a ``study`` column, and the ``laws fit`` outputs (fits.json, report, tables, plots,
TensorBoard)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lightning_dielectric.laws.cli import fit_main, import_main
from lightning_dielectric.laws.forms import FORMS
from lightning_dielectric.laws.runs import COLUMNS, import_optimetal, read_runs, series, write_runs

KAPLAN = {"alpha_n": 0.3, "alpha_d1": 0.2, "alpha_d2": 0.4, "n_c": 2.0e5, "d_c": 3.0e4}


def run(seed, loss, n=1000, **extra):
    return {"study_dir": f"run_seed{seed}", "seed": seed, "val_loss": loss, "eps_loss": loss * 0.7,
            "drude_loss": loss * 0.3, "num_parameter": n, **extra}


def sweep_table(widths=(16, 32, 64, 128), sizes=(1000, 2000, 4000, 8000), seeds=(1, 2, 3), noise=0.003):
    """A full (width, D) grid from a Kaplan law, N = 1000 · width², like a sweep export."""
    rng = np.random.default_rng(0)
    rows = []
    for w in widths:
        for d in sizes:
            n = 1000 * w * w
            mean = float(FORMS["kaplan"]((np.array([n]), np.array([d])), KAPLAN)[0])
            for s in seeds:
                loss = mean * (1 + noise * rng.standard_normal())
                rows.append({"family": "toy", "width": w, "N": n, "D": d, "seed": s, "val_loss": loss,
                             "eps_loss": loss * 0.7, "drude_loss": loss * 0.3, "epochs": 10, "wall_s": 1.0,
                             "run_dir": f"runs/{w}_{d}_{s}"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_import_minimal_files(tmp_path):
    one_d = {"data": {"3b": {"2500": [run(1, 1.5), run(42, 1.4)], "5000": [run(1, 1.2)]},
                      "2b": {"variant1": {"2500": [run(1, 1.6)]}}},
             "parameter": {"2b": {"variant2": {"16": [run(1, 1.3, n=278275)]}}}}
    grid = {"2b": {"2500": {"16": [run(1, 1.7, n=278275)]}}}
    (tmp_path / "a.json").write_text(json.dumps(one_d))
    (tmp_path / "b.json").write_text(json.dumps(grid))
    df = import_optimetal([tmp_path / "a.json", tmp_path / "b.json"], data_width=128, width_d=10000)
    rows = {(r.study, r.family, r.width, r.D, r.seed): r for r in df.itertuples()}
    assert ("data", "3b", 128, 2500, 42) in rows
    assert ("data", "2b-cgc", 128, 2500, 1) in rows
    assert ("width", "2b-tc", 16, 10000, 1) in rows
    assert ("grid", "2b-tc", 16, 2500, 1) in rows
    assert rows[("width", "2b-tc", 16, 10000, 1)].N == 278275
    assert rows[("data", "3b", 128, 2500, 42)].run_dir == "run_seed42"


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"data": {"3b": {"2500": [{"seed": 1, "num_parameter": 5}]}}}), "data/3b/2500[0]: missing key 'val_loss'"),
    (json.dumps({"data": {"3b": {"big": [run(1, 1.0)]}}}), "key 'big' is not an integer"),
    (json.dumps({"data": {"3b": {"2500": [{"seed": 1, "val_loss": "high", "num_parameter": 5}]}}}), "must be numbers"),
    (json.dumps({"data": {"3b": {"2500": []}}}), "expected a non-empty list of runs"),
    (json.dumps({"2b": {"2500": [run(1, 1.0)]}}), "2b/2500: expected an object of widths"),
    (json.dumps({"data": {"3b": {"2500": [run(1, 1.0, n=0)]}}}), "num_parameter positive"),
])
def test_malformed_import_names_file_and_key(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        import_optimetal(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_import_cli_error_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"data": {"3b": {"2500": [{"seed": 1}]}}}')
    assert import_main([str(path), "--out", str(tmp_path / "runs.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json" in err and "missing key" in err
    assert not (tmp_path / "runs.parquet").exists()


def test_read_runs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such runs table"):
        read_runs(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"family": ["a"], "width": [16], "D": [100], "seed": [1], "val_loss": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"bad.csv: missing column\(s\) N"):
        read_runs(bad)
    df = sweep_table()
    df["study"] = "grid"
    df.loc[0, "study"] = "hestness"
    write_runs(df, tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="unknown value"):
        read_runs(tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="unknown runs-table format"):
        write_runs(df, tmp_path / "s.xlsx")


def test_inferred_axes_without_study_column(tmp_path):
    df = sweep_table()
    # a D line at width 64 with extra sizes breaks the complete product: no grid, lines only
    extra = sweep_table(widths=(64,), sizes=(500, 16000))
    found, notes = series(pd.concat([df, extra]))
    by_axis = {s.axis: s for s in found}
    assert set(by_axis) == {"D", "N"}
    assert by_axis["D"].fixed["width"] == 64 and list(by_axis["D"].points.x) == [500, 1000, 2000, 4000, 8000, 16000]
    assert any("no 'study' column" in n for n in notes)
    # a complete grid: grid plus lines at the median of the tied widths / sizes
    found, _ = series(df)
    by_axis = {s.axis: s for s in found}
    assert set(by_axis) == {"D", "N", "ND"}
    assert by_axis["ND"].points.n == 16
    assert by_axis["D"].fixed["width"] == 32 and by_axis["N"].fixed == {"D": 2000}
    assert all(s.source == "inferred" for s in found)


def test_failed_runs_are_counted_not_fitted():
    df = sweep_table()
    df.loc[[0, 5], "val_loss"] = np.nan
    found, notes = series(df)
    assert "2 run(s) without a finite val_loss ignored" in notes
    assert sum(len(r) for r in next(s for s in found if s.axis == "ND").points.runs) == len(df) - 2


def test_fit_cli_writes_every_output(tmp_path, capsys):
    table = sweep_table()
    table["flops_per_structure"] = 2.0 * table["N"]
    table["flops"] = 3 * table["flops_per_structure"] * table["D"] * 10
    runs = write_runs(table, tmp_path / "runs.parquet")
    ensembles = tmp_path / "ensembles.csv"
    pd.DataFrame([{"family": "toy", "width": 16, "N": 256000, "D": 1000, "n_members": 3, "members_loss": 1.2,
                   "members_loss_std": 0.1, "ensemble_loss": 1.1, "eps_within_1sigma": 0.5, "eps_within_2sigma": 0.8,
                   "drude_within_1sigma": 0.6, "drude_within_2sigma": 0.9}]).to_csv(ensembles, index=False)
    out = tmp_path / "fit"
    assert fit_main([str(runs), "--out", str(out), "--bootstrap", "20", "--huber", "--ensembles", str(ensembles)]) == 0
    records = json.loads((out / "fits.json").read_text())
    assert {(r["axis"], r["form"]) for r in records} >= {("D", "broken"), ("N", "power_floor"), ("ND", "kaplan")}
    kaplan = next(r for r in records if r["form"] == "kaplan")
    assert kaplan["status"] == "ok" and kaplan["delta_aicc"] == 0.0
    assert kaplan["params"]["alpha_n"] == pytest.approx(0.3, abs=0.05)
    assert set(kaplan["ci95"]) == set(kaplan["params"])
    for key in ("family", "axis", "form", "params", "stderr", "ci95", "aicc", "rss", "n"):
        assert key in kaplan
    report = (out / "report.md").read_text()
    assert "joint scaling follows the Kaplan-type law" in report and "## Best forms" in report
    for name in ("scaling_D", "scaling_N", "grid_toy"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5000
        assert (out / "plots" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert r"\begin{tabular}" in (out / "tables" / "aicc.tex").read_text()
    # compute-optimal frontier, extrapolation check, robust fits and ensembles: sections, plots, strict JSON
    assert "## Compute-optimal frontier" in report and "| toy | kaplan law" in report and "| toy | measured runs |" in report
    assert "## Extrapolation check (the 1 largest point(s) of each axis held out)" in report
    assert "## Robust fits: least squares against Huber in log space" in report
    assert "| toy | 16 | 256,000 | 1,000 | 3 | 1.2000 ± 0.1000 | 1.1000 | +8.3% |" in report
    assert (out / "plots" / "frontier.svg").is_file() and (out / "plots" / "frontier.png").stat().st_size > 5000
    for name in ("frontier", "holdout", "robust"):
        json.loads((out / f"{name}.json").read_text(), parse_constant=lambda c: pytest.fail(f"{name}.json: {c}"))
    law = next(f for f in json.loads((out / "frontier.json").read_text()) if f["source"] == "kaplan law")
    assert law["a"] + law["b"] == pytest.approx(1.0, abs=1e-3)  # F(N) ∝ N: C ∝ N·D
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"laws/scaling_D", "laws/scaling_N", "laws/grid_toy"} <= set(tags["images"])
    assert "ND/toy/kaplan/alpha_n" in tags["scalars"]
    assert acc.Scalars("ND/toy/kaplan/alpha_n")[0].value == pytest.approx(kaplan["params"]["alpha_n"], rel=1e-6)


def test_fit_cli_bad_table(tmp_path, capsys):
    bad = tmp_path / "runs.csv"
    bad.write_text("family,width\nx,1\n")
    assert fit_main([str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing column(s)" in capsys.readouterr().err
    runs = write_runs(sweep_table(), tmp_path / "runs.parquet")
    assert fit_main([str(runs), "--out", str(tmp_path / "o"), "--ensembles", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "runs.csv: missing column(s) N, D, n_members" in err
