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
