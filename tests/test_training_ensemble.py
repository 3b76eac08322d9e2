"""Ensembles: mean and spread equal numpy's, calibration fractions, and ``evaluate`` / ``predict``
with two checkpoints of the tiny fixture run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lightning_dielectric.training.ensemble import calibration, mean_and_spread, metrics

REPO = Path(__file__).resolve().parents[1]


def test_mean_and_spread_equal_numpy():
    values = np.random.default_rng(0).normal(size=(3, 5, 7, 2))
    mean, spread = mean_and_spread(values)
    assert np.array_equal(mean, np.mean(values, axis=0))
    assert np.allclose(spread, np.std(values, axis=0, ddof=1), rtol=0, atol=1e-15)
    one_mean, one_spread = mean_and_spread(values[:1])
    assert np.array_equal(one_mean, values[0]) and not one_spread.any()


def test_calibration_counts_values_inside_the_band():
    true = np.array([0.0, 0.5, 1.5, 2.5, 10.0])
    got = calibration(true, np.zeros(5), np.ones(5))
    assert got == {"within_1sigma": 2 / 5, "within_2sigma": 3 / 5}


def test_gaussian_spread_is_calibrated():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.5, 2.0, 200_000)
    got = calibration(rng.normal(0.0, sigma), np.zeros_like(sigma), sigma)
    assert got["within_1sigma"] == pytest.approx(0.6827, abs=0.005)
    assert got["within_2sigma"] == pytest.approx(0.9545, abs=0.003)


def test_metrics_are_mae_and_their_sum():
    m = metrics(np.ones((2, 3, 2)), np.array([1.0, 3.0]), np.zeros((2, 3, 2)), np.array([2.0, 2.0]))
    assert m == {"eps_mae": 1.0, "drude_mae": 1.0, "loss": 2.0}


@pytest.fixture(scope="module")
def two_members(tiny_dataset, tmp_path_factory):
    """Two 1-epoch runs of different seeds (the fixture run's layout)."""
    from lightning_dielectric.training.cli import main as lightning_main

    ckpts = []
    for seed in (0, 1):
        runs = tmp_path_factory.mktemp(f"runs{seed}")
        lightning_main(["fit", "--config", str(REPO / "configs" / "quick" / "optimetal2b_cgc.yaml"), "--data.root", str(tiny_dataset),
                        "--data.batch_size", "16", "--trainer.logger.init_args.save_dir", str(runs),
                        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                        "--trainer.max_epochs", "1", "--seed_everything", str(seed)])
        (version,) = (runs / "quick_optimetal2b_cgc").iterdir()
        ckpts.append(version / "checkpoints" / "last.ckpt")
    return ckpts


def test_evaluate_members_and_ensemble(two_members, tiny_dataset, tmp_path, capsys):
    from lightning_dielectric.data.datamodule import DielectricDataModule
    from lightning_dielectric.training.ensemble import load_members, main

    out = tmp_path / "ensemble.json"
    assert main(["--ckpt", *map(str, two_members), "--data", str(tiny_dataset), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_members"] == 2 and result["n_materials"] == 6
    assert "calibration of the spread" in capsys.readouterr().out
    # recomputed by hand from the members' raw outputs
    modules, settings = load_members(two_members)
    batches = list(DielectricDataModule(str(tiny_dataset), **settings).loader("test"))
    import torch

    with torch.no_grad():
        outs = [[m(b) for b in batches] for m in modules]
    eps = np.stack([np.concatenate([e.numpy() for e, _ in o]) for o in outs])
    drude = np.stack([np.concatenate([d.numpy() for _, d in o]) for o in outs])
    eps_true = np.concatenate([b.eps.numpy() for b in batches])
    drude_true = np.concatenate([b.drude.numpy() for b in batches])
    assert result["members"][1]["eps_mae"] == pytest.approx(np.abs(eps[1] - eps_true).mean(), rel=1e-6)
    assert result["ensemble"]["drude_mae"] == pytest.approx(np.abs(drude.mean(0) - drude_true).mean(), rel=1e-6)
    inside = np.abs(drude_true - drude.mean(0)) <= np.std(drude, axis=0, ddof=1)
    assert result["calibration"]["drude"]["within_1sigma"] == pytest.approx(inside.mean())
    # the MAE of the mean is never worse than the members' mean MAE (triangle inequality)
    assert result["ensemble"]["eps_mae"] <= result["members_mean"]["eps_mae"] + 1e-9


def test_evaluate_bad_checkpoint_is_one_line(tmp_path, tiny_dataset, capsys):
    from lightning_dielectric.training.ensemble import main

    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    assert main(["--ckpt", str(bad), "--data", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bad.ckpt" in err


def test_predict_ensemble_mean_and_band(two_members, tmp_path):
    from pymatgen.core import Lattice, Structure

    from lightning_dielectric.training.predict import main as predict_main

    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    Structure(Lattice.cubic(3.61), ["Cu"] * 4, fcc).to(filename=str(tmp_path / "Cu.cif"))
    singles = []
    for i, ckpt in enumerate(two_members):
        assert predict_main(["--ckpt", str(ckpt), str(tmp_path / "Cu.cif"), "--out", str(tmp_path / f"s{i}")]) == 0
        singles.append(pd.read_parquet(tmp_path / f"s{i}" / "predictions.parquet"))
    out = tmp_path / "ens"
    assert predict_main(["--ckpt", *map(str, two_members), str(tmp_path / "Cu.cif"), "--out", str(out)]) == 0
    table = pd.read_parquet(out / "predictions.parquet")
    drudes = [s["drude_ev"][0] for s in singles]
    assert table["drude_ev"][0] == pytest.approx(np.mean(drudes), rel=1e-6)
    assert table["drude_std_ev"][0] == pytest.approx(np.std(drudes, ddof=1), rel=1e-5, abs=1e-7)
    im = np.stack([s["eps_im"][0] for s in singles])
    assert table["eps_im_std"][0] == pytest.approx(np.std(im, axis=0, ddof=1), rel=1e-4, abs=1e-6)
    long = pd.read_csv(out / "predictions.csv")
    assert {"eps_re_std", "eps_im_std", "drude_std_ev"} <= set(long.columns) and len(long) == 2001
    assert (out / "Cu.png").is_file()


def test_sweep_point_ensembles_and_report_section(two_members, tiny_dataset):
    from lightning_dielectric.laws.ensembles import ensemble_section
    from lightning_dielectric.sweep.export import ensemble_groups
    from lightning_dielectric.training.ensemble import evaluate_groups

    run_dirs = [str(c.parent.parent) for c in two_members]
    table = pd.DataFrame({"study": ["data", "data", "width"], "family": "2b-cgc", "width": 16, "N": 278_627, "D": 52,
                          "seed": [0, 1, 1], "val_loss": [1.0, 2.0, 2.0], "run_dir": [run_dirs[0], run_dirs[1], run_dirs[1]]})
    groups = ensemble_groups(table)
    assert len(groups) == 1 and groups["seeds"][0] == [0, 1]  # the run on two design lines counts once
    assert groups["val_loss_std"][0] == pytest.approx(np.std([1.0, 2.0], ddof=1))
    result = evaluate_groups(groups, str(tiny_dataset))
    assert result["n_members"][0] == 2 and result["members_loss"][0] > 0
    assert result["ensemble_loss"][0] <= result["members_loss"][0] + 1e-9
    text = "\n".join(ensemble_section(result))
    assert "Single models against their seed ensemble" in text and "| 2b-cgc | 16 | 278,627 | 52 | 2 |" in text
