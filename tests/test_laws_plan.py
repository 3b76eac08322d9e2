"""``laws plan``: data need for a target loss from a fitted 2D law, the saturation N, the
'below the fitted floor' answers, and the bootstrap interval."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lightning_dielectric.laws.cli import plan_main
from lightning_dielectric.laws.forms import FORMS
from lightning_dielectric.laws.plan import check_decreasing, plan
from lightning_dielectric.laws.runs import COLUMNS, write_runs

KAPLAN = {"alpha_n": 0.3, "alpha_d1": 0.2, "alpha_d2": 0.4, "n_c": 2.0e5, "d_c": 3.0e4}
HOFFMANN = {"alpha_n": 0.6, "alpha_d1": 0.15, "alpha_d2": 0.55, "n_c": 5.0e4, "d_c": 1.5e4, "l_0": 0.3}


def loss(form, params, n, d):
    return float(FORMS[form]((np.array([n]), np.array([d])), params)[0])


def grid_table(form, params, noise=0.003):
    rng = np.random.default_rng(0)
    rows = []
    for w in (16, 32, 64, 128, 256, 512):
        for d in (2500, 5000, 10000, 20000, 40000, 80000):
            n = 300 * w * w
            mean = loss(form, params, n, d)
            for seed in (1, 42, 137):
                rows.append({"family": "toy", "width": w, "N": n, "D": d, "seed": seed,
                             "val_loss": mean * (1 + noise * rng.standard_normal()), "eps_loss": np.nan,
                             "drude_loss": np.nan, "epochs": 5, "wall_s": 1.0, "run_dir": ""})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_plan_at_n_solves_the_law():
    n, target = 5.0e6, 0.8
    answer = plan("kaplan", KAPLAN, target, n)
    assert answer.status == "ok"
    assert loss("kaplan", KAPLAN, n, answer.d_needed) == pytest.approx(target, rel=1e-8)
    # at N_sat the loss is 1 % above the unlimited-parameter loss at that D
    unlimited = loss("kaplan", KAPLAN, 1e250, answer.d_needed)
    assert loss("kaplan", KAPLAN, answer.n_sat, answer.d_needed) == pytest.approx(1.01 * unlimited, rel=1e-8)
    # closed form of the Kaplan saturation point
    b = (KAPLAN["d_c"] / answer.d_needed) * (1 + KAPLAN["d_c"] / answer.d_needed) ** (KAPLAN["alpha_d1"] / KAPLAN["alpha_d2"] - 1)
    n_sat = KAPLAN["n_c"] * (b * (1.01 ** (1 / KAPLAN["alpha_d2"]) - 1)) ** (-KAPLAN["alpha_d2"] / KAPLAN["alpha_n"])
    assert answer.n_sat == pytest.approx(n_sat, rel=1e-6)
    # a larger model needs less data
    assert plan("kaplan", KAPLAN, target, 5.0e7).d_needed < answer.d_needed


def test_plan_without_n_pairs_data_and_model_size():
    answer = plan("kaplan", KAPLAN, 0.5, None, tol=0.02)
    assert answer.status == "ok"
    assert loss("kaplan", KAPLAN, 1e250, answer.d_needed) == pytest.approx(0.5 / 1.02, rel=1e-8)
    assert loss("kaplan", KAPLAN, answer.n_sat, answer.d_needed) == pytest.approx(0.5, rel=1e-6)


def test_below_floor_answers():
    n = 1.0e6
    floor_n = (KAPLAN["n_c"] / n) ** KAPLAN["alpha_n"]
    answer = plan("kaplan", KAPLAN, 0.9 * floor_n, n)
    assert answer.status == "below_floor_at_n" and answer.floor == pytest.approx(floor_n, rel=1e-9)
    assert loss("kaplan", KAPLAN, answer.n_min, 1e250) == pytest.approx(0.9 * floor_n, rel=1e-8)
    hoff = plan("hoffmann", HOFFMANN, 0.25, None)
    assert hoff.status == "below_floor" and hoff.floor == pytest.approx(0.3)
    assert plan("hoffmann", HOFFMANN, 0.25, 1e7).status == "below_floor"
    assert plan("hoffmann", HOFFMANN, 0.4, 1e7).status == "ok"


def test_increasing_law_is_refused():
    assert check_decreasing("kaplan", {**KAPLAN, "alpha_d2": -0.1})
    assert check_decreasing("kaplan", KAPLAN) is None


def test_plan_cli(tmp_path, capsys):
    runs = write_runs(grid_table("kaplan", KAPLAN), tmp_path / "runs.csv")
    assert plan_main([str(runs), "--family", "toy", "--target-loss", "0.8", "--n", "5e6", "--bootstrap", "30",
                      "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["form"] == "kaplan" and answer["status"] == "ok"
    exact = plan("kaplan", KAPLAN, 0.8, 5e6).d_needed
    assert answer["d_needed"] == pytest.approx(exact, rel=0.15)
    lo, hi = answer["d_ci95"]
    assert lo < answer["d_needed"] < hi
    assert plan_main([str(runs), "--family", "toy", "--target-loss", "0.8", "--n", "5e6", "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "needs D ≈" in text and "more parameters stop paying beyond N ≈" in text
    # far below the floor at a small N
    assert plan_main([str(runs), "--family", "toy", "--target-loss", "0.3", "--n", "1e5", "--bootstrap", "0"]) == 0
    assert "below the fitted floor at this N" in capsys.readouterr().out


def test_plan_cli_hoffmann_floor_and_errors(tmp_path, capsys):
    runs = write_runs(grid_table("hoffmann", HOFFMANN), tmp_path / "runs.parquet")
    assert plan_main([str(runs), "--family", "toy", "--target-loss", "0.2", "--form", "hoffmann",
                      "--bootstrap", "0"]) == 0
    assert "below the fitted floor L = 0.29" in capsys.readouterr().out
    assert plan_main([str(runs), "--family", "other", "--target-loss", "0.5"]) == 2
    assert "no (N, D) grid for family 'other'" in capsys.readouterr().err
    assert plan_main([str(runs), "--family", "toy", "--target-loss", "-1", "--bootstrap", "0"]) == 2
    assert "target loss must be positive" in capsys.readouterr().err


def test_plan_warns_outside_the_measured_range_and_names_seed_noise(tmp_path, capsys):
    runs = write_runs(grid_table("kaplan", KAPLAN), tmp_path / "runs.csv")
    # D needed at this N lies above 80,000 (the largest measured D) but below 2 × 80,000
    n = 300 * 512 * 512
    target = loss("kaplan", KAPLAN, n, 1.5 * 80000)
    assert plan_main([str(runs), "--family", "toy", "--target-loss", str(target), "--n", str(n), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "warning: D = " in text and "outside the measured D range [2,500, 80,000]" in text
    assert "covers seed noise only" in text
    # inside the range: no warning about D
    target = loss("kaplan", KAPLAN, n, 20000)
    assert plan_main([str(runs), "--family", "toy", "--target-loss", str(target), "--n", str(n), "--bootstrap", "0"]) == 0
    assert "warning: D =" not in capsys.readouterr().out


def test_plan_compute_questions(tmp_path, capsys):
    df = grid_table("kaplan", KAPLAN)
    df["flops_per_structure"] = 2.0 * df["N"]
    df["flops"] = 3 * df["flops_per_structure"] * df["D"] * 5
    runs = write_runs(df, tmp_path / "runs.parquet")
    assert plan_main([str(runs), "--family", "toy", "--compute", "1e15", "--bootstrap", "0", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)["compute"]
    assert answer["compute_model"]["c"] == pytest.approx(1.0) and answer["compute_model"]["epochs"] == pytest.approx(5)
    best = answer["for_compute"]
    assert 3 * 2.0 * best["n_star"] * best["d_star"] * 5 == pytest.approx(1e15, rel=1e-6)
    # the loss for that compute, asked back as a target, needs that compute again
    target = best["loss"]
    assert plan_main([str(runs), "--family", "toy", "--target-loss", str(target), "--bootstrap", "0", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["compute"]["for_loss"]
    assert again["compute"] == pytest.approx(1e15, rel=1e-4)
    assert plan_main([str(runs), "--family", "toy", "--compute", "1e25", "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "least loss is L*" in text and "outside the measured compute range" in text
    assert "covers seed noise only" in text


def test_plan_compute_needs_flops(tmp_path, capsys):
    runs = write_runs(grid_table("kaplan", KAPLAN), tmp_path / "runs.csv")
    assert plan_main([str(runs), "--family", "toy", "--compute", "1e15", "--bootstrap", "0"]) == 2
    assert "needs the 'flops' column" in capsys.readouterr().err
