"""End to end with the real ``lightning fit``: a tiny 2 widths × 2 sizes grid through export and the
scaling-law report, and a driver killed (SIGKILL) mid-trial whose rerun resumes from ``last.ckpt``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import yaml
from optuna.trial import TrialState

from lightning_dielectric.cli import main as cli_main
from lightning_dielectric.models import count_parameters
from lightning_dielectric.training.run_record import RunRecord
from lightning_dielectric.sweep.grid import expand
from lightning_dielectric.sweep.spec import load_spec
from lightning_dielectric.sweep.retention import LAST
from lightning_dielectric.sweep.store import SweepStore

BASE = Path(__file__).resolve().parents[1] / "configs" / "quick" / "optimetal2b_cgc.yaml"
pytestmark = pytest.mark.slow


def write_sweep(tmp_path: Path, data: Path, **changes) -> Path:
    raw = {
        "study_name": f"e2e-{uuid.uuid4().hex[:8]}",
        "base": str(BASE),
        "families": ["2b-cgc"],
        "design": "grid",
        "widths": [8, 16],
        "train_sizes": [16, 32],
        "seeds": [0],
        "epochs": 2,
        "workers": 2,
        "data_root": str(data),
        "out": str(tmp_path / "runs"),
        "overrides": {
            "data.batch_size": 16,
            "model.plot_every_n_epochs": 1000,
            "trainer.enable_progress_bar": False,
            "trainer.enable_model_summary": False,
        },
    }
    raw.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def states_of(spec):
    store = SweepStore.for_spec(spec)
    return store.states(expand(spec))


def test_tiny_grid_end_to_end(tmp_path, tiny_dataset, capsys):
    sweep = write_sweep(tmp_path, tiny_dataset)
    assert cli_main(["sweep", "run", str(sweep)]) == 0
    out = tmp_path / "runs"
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 4 and set(runs.study) == {"grid"}
    assert {(r.width, r.D) for r in runs.itertuples()} == {(8, 16), (8, 32), (16, 16), (16, 32)}
    for r in runs.itertuples():
        assert r.N == count_parameters("2b-cgc", r.width)
        assert r.val_loss > 0 and r.val_loss == pytest.approx(r.eps_loss + r.drude_loss, rel=1e-4)
        assert r.epochs == 2 and r.wall_s > 0
        # compute accounting: 2 epochs over D structures at 3 × the measured forward FLOPs per structure
        assert r.flops == pytest.approx(3 * r.flops_per_structure * 2 * r.D, rel=1e-9)
        assert r.device == "cpu" and r.device_hours > 0 and not r.flops_estimated
        run_dir = Path(r.run_dir)
        result = json.loads((run_dir / "result.json").read_text())
        assert result["finished"] and result["val_loss"] == pytest.approx(r.val_loss)
        assert RunRecord.read(run_dir / "result.json").family == "2b-cgc"
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
        assert "=== trial [" in (log := (run_dir / "train.log").read_text()) and " (warm start): " in log
        assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard logs in the run dir
        trial_cfg = yaml.safe_load((run_dir / "trial.yaml").read_text())
        assert trial_cfg["data"]["train_size"] == r.D
        assert trial_cfg["model"]["model"]["init_args"]["spectra_width"] == 4 * r.width
    assert (out / "report" / "fits.json").is_file() and (out / "report" / "report.md").is_file()
    report = (out / "report" / "report.md").read_text()
    assert "## Compute-optimal frontier" in report and "| 2b-cgc | measured runs |" in report
    assert (out / "report" / "plots" / "frontier.png").is_file() and (out / "report" / "plots" / "frontier.svg").is_file()
    capsys.readouterr()
    assert cli_main(["sweep", "status", str(sweep)]) == 0
    assert "4 points: 4 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out


def _checkpointed_run(out: Path) -> Path | None:
    for run_dir in (out / "trials").glob("*"):
        try:
            result = json.loads((run_dir / "result.json").read_text())
        except (OSError, ValueError):
            continue
        if (run_dir / "checkpoints" / "last.ckpt").exists() and 1 <= result["epochs_done"] < result["max_epochs"]:
            return run_dir
    return None


def test_driver_killed_mid_trial_resumes_from_last_ckpt(tmp_path, tiny_dataset):
    """With ``keep_checkpoints: best-weights``: the interrupted trial keeps its ``last.ckpt`` and
    resumes from it; once complete, only its weights-only best checkpoint is left."""
    sweep = write_sweep(tmp_path, tiny_dataset, design="width", fixed_train_size=32, epochs=8,
                        keep_checkpoints="best-weights")
    spec = load_spec(sweep)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lightning_dielectric.cli import main; sys.exit(main(sys.argv[1:]))",
         "sweep", "run", str(sweep), "--no-report"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    killed_dir = None
    while killed_dir is None and time.monotonic() - t0 < 240 and proc.poll() is None:
        killed_dir = _checkpointed_run(spec.out)
        time.sleep(0.05)
    assert killed_dir is not None, "no trial reached a checkpoint mid-run"
    trainers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(trainers, timeout=15)
    assert not alive, "trial processes outlived the killed driver"
    assert (killed_dir / "checkpoints" / LAST).exists(), "an interrupted trial lost the last.ckpt it resumes from"

    assert cli_main(["sweep", "run", str(sweep), "--no-report"]) == 0
    states = states_of(spec)
    assert {s.status for s in states.values()} == {"done"}  # no lost point
    trials = [t for s in states.values() for t in s.trials]
    assert set(Counter(t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE).values()) == {1}
    key = next(p.key for p in expand(spec) if p.run_dir(spec.out) == killed_dir)
    history = states[key].trials
    assert [t.state for t in history] == [TrialState.FAIL, TrialState.COMPLETE]
    assert history[0].system_attrs["fail_reason"] == "stale"
    assert history[1].user_attrs["resumed"] is True
    assert "--ckpt_path" in (killed_dir / "train.log").read_text().split("=== trial")[-1].splitlines()[0]
    assert json.loads((killed_dir / "result.json").read_text())["epochs_done"] == 8
    (best,) = (killed_dir / "checkpoints").glob("*.ckpt")
    assert best.name != LAST and "optimizer_states" not in torch.load(best, map_location="cpu", weights_only=True)


def test_fused_sweep_killed_mid_trial_resumes_and_records_every_seed_once(tmp_path, tiny_dataset):
    """``fuse_seeds``: 2 points × 2 seeds run as 2 fused trials; killed (SIGKILL) mid-trial, the rerun
    resumes the fused trial from its last.ckpt and records 4 runs, each once, in the seed points' run dirs."""
    sweep = write_sweep(tmp_path, tiny_dataset, design="width", fixed_train_size=32, epochs=6, seeds=[0, 1],
                        fuse_seeds=True, workers=1)
    spec = load_spec(sweep)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lightning_dielectric.cli import main; sys.exit(main(sys.argv[1:]))",
         "sweep", "run", str(sweep)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    killed = None
    while killed is None and time.monotonic() - t0 < 240 and proc.poll() is None:
        killed = _checkpointed_run(spec.out)  # only a fused trial's directory has last.ckpt
        time.sleep(0.05)
    assert killed is not None and killed.name.endswith("_s0-1_e6"), "no fused trial reached a checkpoint mid-run"
    trainers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(trainers, timeout=15)

    assert cli_main(["sweep", "run", str(sweep)]) == 0
    states = states_of(spec)
    assert len(states) == 4 and {s.status for s in states.values()} == {"done"}
    trials = [t for s in states.values() for t in s.trials]
    assert Counter(t.user_attrs["point"] for t in trials if t.state == TrialState.COMPLETE) == {k: 1 for k in states}
    assert "--ckpt_path" in (killed / "train.log").read_text().split("=== trial")[-1].splitlines()[0]
    runs = pd.read_parquet(spec.out / "runs.parquet")
    assert sorted(zip(runs.width, runs.seed)) == [(8, 0), (8, 1), (16, 0), (16, 1)]
    for r in runs.itertuples():
        run_dir = Path(r.run_dir)
        assert run_dir.name.endswith(f"_s{r.seed}_e6")  # the seed point's own directory
        record = RunRecord.read(run_dir / "result.json")
        assert record.finished and record.epochs_done == 6 and record.val_loss == pytest.approx(r.val_loss)
        assert record.num_parameters == count_parameters("2b-cgc", r.width)
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["seed_everything"] == r.seed and config["data"]["seed"] == 0
        (best,) = (run_dir / "checkpoints").glob("best-epoch=*.ckpt")
    assert (killed / "checkpoints" / LAST).exists()  # keep_checkpoints: all
    assert cli_main(["sweep", "prune", str(sweep), "--keep", "best-weights"]) == 0
    assert not (killed / "checkpoints" / LAST).exists()  # the fused trial's own directory is pruned too
