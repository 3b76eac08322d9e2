"""Warm trial processes (``sweep/warm.py``): a spare imports the CLI ahead of its trial, then runs
``lightning ARGV`` with the result, output and exit status a cold ``python -m lightning_dielectric``
gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_dielectric.sweep.warm import Spare

QUICK = Path(__file__).resolve().parents[1] / "configs" / "quick" / "optimetal2b_cgc.yaml"
pytestmark = pytest.mark.slow


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **extra}


def fit_args(data: Path, runs: Path) -> list[str]:
    return ["fit", "--config", str(QUICK), "--data.root", str(data), "--data.batch_size", "16",
            "--trainer.max_epochs", "2", "--seed_everything", "5", "--trainer.logger.init_args.save_dir", str(runs),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def run_dir(runs: Path) -> Path:
    (version,) = (runs / "quick_optimetal2b_cgc").iterdir()
    return version


def test_warm_trial_equals_the_cold_fit(tiny_dataset, tmp_path):
    cold = subprocess.run([sys.executable, "-m", "lightning_dielectric", *fit_args(tiny_dataset, tmp_path / "cold")],
                          env=env(), capture_output=True, text=True, timeout=300)
    assert cold.returncode == 0, cold.stderr[-2000:]
    log = tmp_path / "warm.log"
    log.write_text("=== header the driver wrote\n")
    proc = Spare(env()).hand(fit_args(tiny_dataset, tmp_path / "warm"), log)
    assert proc is not None and proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert text.startswith("=== header the driver wrote\n")  # appended, not replaced
    assert f"lightning fit: finished; run directory {run_dir(tmp_path / 'warm')}" in text
    results = [json.loads((run_dir(tmp_path / k) / "result.json").read_text()) for k in ("cold", "warm")]
    assert results[0]["val_loss"] == results[1]["val_loss"] and results[1]["finished"]
    weights = [torch.load(run_dir(tmp_path / k) / "checkpoints" / "last.ckpt", map_location="cpu",
                          weights_only=False)["state_dict"] for k in ("cold", "warm")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_config_error_keeps_its_status_and_what_the_imports_printed(tiny_dataset, tmp_path):
    """Exit status 2 (the sweep's "configuration error") as from a cold run; the import-time output
    (here Python's import timings, printed before the trial arrived) lands in the trial log first."""
    log = tmp_path / "warm.log"
    spare = Spare(env(PYTHONPROFILEIMPORTTIME="1"))
    proc = spare.hand(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), "--model.no_such_key", "1"], log)
    assert proc.wait(timeout=300) == 2
    text = log.read_text()
    assert "no_such_key" in text.splitlines()[-1]
    imported = text.index("| lightning_dielectric.training.cli\n")
    assert imported < text.index("no_such_key")


def test_unused_spare_ends_and_a_dead_one_is_not_handed_a_trial(tmp_path):
    spare = Spare(env())
    spare.close()
    assert spare.proc.returncode == 0
    dead = Spare(env())
    dead.proc.kill()
    dead.proc.wait()
    assert dead.hand(["fit"], tmp_path / "never.log") is None and not (tmp_path / "never.log").exists()
