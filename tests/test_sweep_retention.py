"""Checkpoint retention of finished runs (``sweep/retention.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_dielectric.sweep import retention

TRAINING_STATE = ("optimizer_states", "lr_schedulers", "loops", "callbacks")


def fake_run(root: Path, best: bool = True) -> Path:
    """A run directory with checkpoints shaped like Lightning's (weights + training state)."""
    folder = root / "checkpoints"
    folder.mkdir(parents=True)
    state = {"w": torch.randn(64, 64)}
    ckpt = {"epoch": 1, "global_step": 8, "pytorch-lightning_version": "2", "state_dict": state,
            "hyper_parameters": {"lr": 1e-3}, "optimizer_states": [{"exp_avg": torch.randn(64, 64),
                                                                    "exp_avg_sq": torch.randn(64, 64)}],
            "lr_schedulers": [{"last_epoch": 8}], "loops": {"fit_loop": {}}, "callbacks": {"RunResult": {}}}
    torch.save(ckpt, folder / "last.ckpt")
    if best:
        torch.save(ckpt, folder / "best-epoch=0001.ckpt")
    return root


def test_all_keeps_everything(tmp_path):
    run = fake_run(tmp_path)
    assert retention.apply(run, "all") == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best-epoch=0001.ckpt", "last.ckpt"]


def test_best_drops_last_keeps_best_whole(tmp_path):
    run = fake_run(tmp_path)
    size = (run / "checkpoints" / "last.ckpt").stat().st_size
    assert retention.apply(run, "best") == size
    (best,) = (run / "checkpoints").iterdir()
    assert best.name == "best-epoch=0001.ckpt" and "optimizer_states" in torch.load(best, weights_only=True)


def test_best_weights_holds_no_training_state_and_loads_weights_only(tmp_path):
    run = fake_run(tmp_path)
    before = sum(p.stat().st_size for p in (run / "checkpoints").iterdir())
    freed = retention.apply(run, "best-weights")
    (best,) = (run / "checkpoints").iterdir()
    assert freed == before - best.stat().st_size > 0
    checkpoint = torch.load(best, weights_only=True)
    assert not set(TRAINING_STATE) & set(checkpoint)
    assert checkpoint["state_dict"]["w"].shape == (64, 64) and checkpoint["hyper_parameters"] == {"lr": 1e-3}
    assert retention.apply(run, "best-weights") == 0  # idempotent


def test_without_best_last_stays_as_the_weights(tmp_path):
    run = fake_run(tmp_path, best=False)
    retention.apply(run, "best-weights")
    (last,) = (run / "checkpoints").iterdir()
    assert last.name == "last.ckpt" and "optimizer_states" not in torch.load(last, weights_only=True)


def test_unknown_setting_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="keep_checkpoints: expected one of all, best, best-weights"):
        retention.apply(fake_run(tmp_path), "most")


def test_sweep_file_setting_is_checked_in_one_line():
    import yaml

    from lightning_dielectric.sweep.spec import SweepSpecError, load_spec, parse_spec

    assert load_spec("sweeps/paper.yaml").keep_checkpoints == "best-weights"
    assert load_spec("sweeps/quick.yaml").keep_checkpoints == "all"
    raw = yaml.safe_load(Path("sweeps/quick.yaml").read_text()) | {"keep_checkpoints": "most"}
    with pytest.raises(SweepSpecError, match=r"^x.yaml: key 'keep_checkpoints': unknown setting 'most'"):
        parse_spec(raw, source="x.yaml")


@pytest.mark.slow
def test_completed_trial_keeps_only_best_weights_and_they_evaluate(tmp_path, tiny_dataset, capsys):
    import json
    import os
    import subprocess
    import sys

    import yaml

    from lightning_dielectric.cli import main as cli_main

    base = Path(__file__).resolve().parents[1] / "configs" / "quick" / "optimetal2b_cgc.yaml"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "study_name": "keep", "base": str(base), "families": ["2b-cgc"], "design": "grid", "widths": [8],
        "train_sizes": [16], "seeds": [0], "epochs": 2, "data_root": str(tiny_dataset), "out": str(tmp_path / "runs"),
        "keep_checkpoints": "best-weights",
        "overrides": {"data.batch_size": 16, "model.plot_every_n_epochs": 1000, "trainer.enable_progress_bar": False}}))
    assert cli_main(["sweep", "run", str(sweep), "--no-report"]) == 0
    (run,) = (tmp_path / "runs" / "trials").iterdir()
    (best,) = (run / "checkpoints").iterdir()
    assert best.name.startswith("best-")
    assert not set(TRAINING_STATE) & set(torch.load(best, weights_only=True))
    capsys.readouterr()
    assert cli_main(["evaluate", "--ckpt", str(best), "--data", str(tiny_dataset)]) in (0, None)
    proc = subprocess.run([sys.executable, "-m", "lightning_dielectric", "test", "--ckpt_path", str(best),
                           "--trainer.enable_progress_bar", "false"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run / "checkpoints" / "test_metrics.json").read_text())["n_materials"] > 0


def test_prune_leaves_a_running_trial_alone(tmp_path, capsys):
    import yaml

    from lightning_dielectric.cli import main as cli_main
    from lightning_dielectric.sweep.grid import expand
    from lightning_dielectric.sweep.spec import load_spec
    from lightning_dielectric.sweep.store import SweepStore

    base = Path(__file__).resolve().parents[1] / "configs" / "quick" / "optimetal2b_cgc.yaml"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"study_name": "prune", "base": str(base), "families": ["2b-cgc"], "design": "grid",
                                     "widths": [8, 16], "train_sizes": [16], "seeds": [0], "epochs": 2,
                                     "data_root": str(tmp_path), "out": str(tmp_path / "runs")}))
    spec = load_spec(sweep)
    done, running = expand(spec)
    store = SweepStore.for_spec(spec)
    for point in (done, running):
        fake_run(point.run_dir(spec.out))
    store.complete(store.claim(done, done.run_dir(spec.out)), 1.0, {})
    store.claim(running, running.run_dir(spec.out))  # alive: this process holds it
    untouched = {p: p.read_bytes() for p in (running.run_dir(spec.out) / "checkpoints").iterdir()}
    assert cli_main(["sweep", "prune", str(sweep), "--keep", "best-weights"]) == 0
    assert "pruned 1 done point(s)" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in (running.run_dir(spec.out) / "checkpoints").iterdir()} == untouched
    assert [p.name for p in (done.run_dir(spec.out) / "checkpoints").iterdir()] == ["best-epoch=0001.ckpt"]
