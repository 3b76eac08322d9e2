"""Fused seed training (``DielectricModule(members=K)``, ``training/members.py``) against solo runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch_geometric.data import Batch

from lightning_dielectric.data.datamodule import DielectricDataModule
from lightning_dielectric.models import build_model
from lightning_dielectric.models.members import fuse, member_state
from lightning_dielectric.training.cli import main as lightning_main
from lightning_dielectric.training.callbacks import RunResult
from lightning_dielectric.training.members import MemberRuns, clip_per_member, member_compute_for
from lightning_dielectric.training.module import DielectricModule
from lightning_dielectric.training.run_record import RunRecord
from test_models_forward import structures
from test_training_fit import QUIET, QUICK

# Parameters whose gradient is zero up to rounding (biases of Linear layers followed by BatchNorm, the
# pooling's score bias and the last LayerNorm's bias, whose shifts the softmax and the heads' BatchNorm
# cancel): AdamW normalises that rounding noise to full-size steps in float32, so these follow rounding
# noise in any two computations of one solo run that sum in different orders.
NOISE_DRIVEN = ("mlp.lins.0.bias", "mlp.lins.1.bias", "spectra.lins.0.bias", "spectra.lins.1.bias",
                "drude.lins.0.bias", "drude.lins.1.bias", "pool.score.bias", "blocks.1.norm.bias", "running_mean")


def trained(data: Path, seed: int, members: int, steps: int, precision: str, poison: int | None = None,
            lr: float = 5e-3, compute: str = "stacked", width: int = 8):
    """Fit ``members`` members (seeds seed, seed + 1, …) for ``steps`` steps with data seed 0 (4 per epoch)."""
    pl.seed_everything(seed, verbose=False)
    network = build_model("2b-cgc", width)
    module = DielectricModule(network, lr=lr, warmup_epochs=1, plot_every_n_epochs=0, members=members,
                              member_compute=compute)
    if poison is not None:  # member `poison` predicts NaN: its loss is not finite from the first step
        with torch.no_grad():
            module.model.heads.drude.lins[-1].bias[poison] = float("nan")
    datamodule = DielectricDataModule(str(data), batch_size=16, seed=0)
    trainer = pl.Trainer(max_epochs=-(-steps // 4), max_steps=steps, precision=precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=100.0,
                         num_sanity_val_steps=0, limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, datamodule)
    return module


def member_weights(module: DielectricModule, k: int) -> dict[str, torch.Tensor]:
    return member_state(module.model, k) if module.hparams.members > 1 else module.model.state_dict()


def assert_close_weights(a: dict, b: dict, tol: float, skip: tuple[str, ...] = ()) -> None:
    for key, value in b.items():
        if value.dtype.is_floating_point and not key.endswith(skip):
            scale = value.abs().max().clamp(min=1.0)  # absolute for tensors of small entries
            assert float((a[key] - value).abs().max() / scale) < tol, key


@pytest.mark.parametrize("compute", ["stacked", "sequential"])
def test_fused_members_follow_their_solo_runs(tiny_dataset, compute):
    """Float64, 20 steps: every member's weights equal its solo run's (seed k, data seed 0), with the
    members evaluated as one stacked network or one after another."""
    fused = trained(tiny_dataset, seed=0, members=2, steps=20, precision="64-true", compute=compute)
    for k in range(2):
        solo = trained(tiny_dataset, seed=k, members=1, steps=20, precision="64-true")
        assert_close_weights(member_weights(fused, k), member_weights(solo, 0), 1e-8)


def test_fused_members_after_float32_steps(tiny_dataset):
    """Float32, 20 steps at the configs' learning rate (1e-3): each member's predictions (batch
    statistics) within 1e-4 of its solo run's, and its weights too except the noise-driven ones
    (NOISE_DRIVEN). At 5e-3 the float32 trajectories of this tiny model part beyond about 16 steps
    (docs/training.md)."""
    fused = trained(tiny_dataset, seed=0, members=2, steps=20, precision="32-true", lr=1e-3).train()
    batch = Batch.from_data_list(structures())
    with torch.no_grad():
        eps, drude = fused(batch)
    for k in range(2):
        solo = trained(tiny_dataset, seed=k, members=1, steps=20, precision="32-true", lr=1e-3).train()
        with torch.no_grad():
            e, d = solo(batch)
        assert float((eps[k] - e).abs().max() / e.abs().max()) < 1e-4
        assert float((drude[k] - d).abs().max() / d.abs().max()) < 1e-4
        assert_close_weights(member_weights(fused, k), member_weights(solo, 0), 1e-4, skip=NOISE_DRIVEN)


def test_non_finite_member_stops_and_the_others_go_on(tiny_dataset):
    fused = trained(tiny_dataset, seed=0, members=2, steps=8, precision="64-true", poison=1)
    assert fused.active.tolist() == [True, False] and fused.stopped_epoch.tolist() == [-1, 0]
    solo = trained(tiny_dataset, seed=0, members=1, steps=8, precision="64-true")
    assert_close_weights(member_weights(fused, 0), member_weights(solo, 0), 1e-8)


class PoisonAtEpoch(pl.Callback):
    """Member ``member``'s Drude head predicts NaN from the start of epoch ``epoch`` on."""

    def __init__(self, member: int, epoch: int) -> None:
        self.member, self.epoch = member, epoch

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                module.model.heads.drude.lins[-1].bias[self.member] = float("nan")


def test_member_stopped_after_a_validation_records_its_best_and_stop_epoch(tiny_dataset, tmp_path):
    """Member 1 diverges in epoch 1: its result.json keeps epoch 0's losses with stopped_epoch 1;
    member 0's record says it did not stop; a resumed module keeps the stop epoch."""
    pl.seed_everything(0, verbose=False)
    module = DielectricModule(build_model("2b-cgc", 8), lr=5e-3, warmup_epochs=1, plot_every_n_epochs=0, members=2)
    dirs = [tmp_path / "seed0", tmp_path / "seed1"]
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
                         default_root_dir=str(tmp_path),
                         callbacks=[RunResult(path=str(tmp_path / "fused.json"), flops_batches=0),
                                    MemberRuns([str(d) for d in dirs]), PoisonAtEpoch(member=1, epoch=1)])
    trainer.fit(module, DielectricDataModule(str(tiny_dataset), batch_size=16, seed=0))
    assert module.stopped_epoch.tolist() == [-1, 1] and module.active.tolist() == [True, False]
    kept, stopped = (RunRecord.read(d / "result.json") for d in dirs)
    assert kept.stopped_epoch is None and kept.finished and kept.epochs_done == 3
    assert stopped.stopped_epoch == 1 and stopped.best_epoch == 0 and math.isfinite(stopped.val_loss)
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    again = DielectricModule(build_model("2b-cgc", 8), members=2)
    again.on_load_checkpoint(checkpoint)
    assert again.stopped_epoch.tolist() == [-1, 1]
    again.on_load_checkpoint({"member_active": [True, False], "epoch": 4})  # written before stop epochs were kept
    assert again.stopped_epoch.tolist() == [-1, 4]


def test_sequential_members_are_rejected_with_compile():
    with pytest.raises(ValueError, match="member_compute: stacked"):
        DielectricModule(build_model("2b-cgc", 8), members=2, member_compute="sequential", compile=True)


def test_member_compute_auto_is_sequential_on_cpu_for_triplets_and_wide_networks(tiny_dataset):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert member_compute_for(build_model("3b", 16), cpu) == "sequential"
    assert member_compute_for(build_model("2b-tc", 256), cpu) == "sequential"
    assert member_compute_for(build_model("2b-cgc", 64), cpu) == "stacked"
    assert {member_compute_for(build_model(f, w), cuda) for f in ("3b", "2b-cgc") for w in (16, 256)} == {"stacked"}
    # resolved when the trainer's device is known; until then (no trainer) the stacked network runs
    assert not DielectricModule(build_model("3b", 8), members=2)._sequential
    assert trained(tiny_dataset, 0, 2, 1, "32-true", compute="auto")._sequential is False  # 2B-CGC w = 8
    assert trained(tiny_dataset, 0, 2, 1, "32-true", compute="auto", width=256)._sequential is True
    assert DielectricModule(build_model("2b-cgc", 8), members=2, compile=True)._solo is None  # compile: stacked


def test_clipping_is_per_member():
    """Member 0 is clipped to norm 1 and member 1 (gradients scaled down) is not, as clip_grad_norm_
    does on each solo network."""
    torch.set_default_dtype(torch.float64)
    try:
        solos = []
        for seed in range(2):
            torch.manual_seed(seed)
            solos.append(build_model("2b-tc", 8))
        fused = fuse(solos)
        batch = Batch.from_data_list(structures())
        eps, drude = fused(batch)
        (eps[0].abs().mean() + drude[0].abs().mean() + 1e-6 * (eps[1].abs().mean() + drude[1].abs().mean())).backward()
        for k, (solo, factor) in enumerate(zip(solos, (1.0, 1e-6))):
            e, d = solo(batch)
            (factor * (e.abs().mean() + d.abs().mean())).backward()
        norms_before = [torch.nn.utils.get_total_norm([p.grad for p in s.parameters()]) for s in solos]
        assert norms_before[0] > 1.0 > norms_before[1]
        norms = clip_per_member(fused.parameters(), 1.0, 2)
        for k, solo in enumerate(solos):
            torch.nn.utils.clip_grad_norm_(solo.parameters(), 1.0)
            assert float(abs(norms[k] - norms_before[k]) / norms_before[k]) < 1e-10
            largest = max(float(p.grad.abs().max()) for p in solo.parameters())
            for name, p in fused.named_parameters():
                ref = dict(solo.named_parameters())[name].grad
                assert float((p.grad.chunk(2)[k] - ref).abs().max()) <= 1e-10 * largest, name
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.slow
def test_fused_fit_writes_each_member_as_an_ordinary_run(tiny_dataset, tmp_path):
    """``lightning fit --model.members 2`` (members evaluated one after another; the sweep tests run
    them stacked): each member's directory is a solo run's (config, record, weights-only best
    checkpoint) that ``lightning test`` and ``load_from_checkpoint`` read and that gives the fused
    model's outputs; its config.yaml reproduces it as a solo run."""
    runs = tmp_path / "runs"
    common = ["--data.root", str(tiny_dataset), "--data.batch_size", "16", "--trainer.max_epochs", "1",
              "--trainer.precision", "64-true", *QUIET]
    lightning_main(["fit", "--config", str(QUICK), "--model.members", "2", "--model.member_compute", "sequential",
                    "--trainer.logger.init_args.save_dir", str(runs), *common])
    (fused_dir,) = (runs / "quick_optimetal2b_cgc").iterdir()
    fused = DielectricModule.load_from_checkpoint(fused_dir / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    batch = Batch.from_data_list(structures())
    with torch.no_grad():
        eps, drude = fused.model.double()(batch)
    for k in range(2):
        member = fused_dir / "members" / f"seed{k}"
        record = RunRecord.read(member / "result.json")
        assert record.finished and record.best_epoch == 0 and record.family == "2b-cgc"
        assert record.num_parameters * 2 == RunRecord.read(fused_dir / "result.json").num_parameters
        config = yaml.safe_load((member / "config.yaml").read_text())
        assert config["seed_everything"] == k and config["model"]["members"] == 1 and config["data"]["seed"] == 0
        (best,) = (member / "checkpoints").glob("best-epoch=*.ckpt")
        checkpoint = torch.load(best, map_location="cpu", weights_only=True)
        assert "optimizer_states" not in checkpoint and checkpoint["hyper_parameters"]["members"] == 1
        solo = DielectricModule.load_from_checkpoint(best, map_location="cpu").eval()
        with torch.no_grad():
            e, d = solo.model.double()(batch)
        assert torch.allclose(e, eps[k], rtol=1e-12, atol=1e-12) and torch.allclose(d, drude[k], rtol=1e-12, atol=1e-12)
        lightning_main(["test", "--ckpt_path", str(best), *QUIET])
        assert json.loads((best.parent / "test_metrics.json").read_text())
    # member 1 trained alone: its seed with the fused run's data seed
    again = tmp_path / "again"
    lightning_main(["fit", "--config", str(fused_dir / "members" / "seed1" / "config.yaml"),
                    "--trainer.logger.init_args.save_dir", str(again), "--checkpoint.dirpath", str(again / "checkpoints"),
                    "--result.path", str(again / "result.json")])
    (solo_best,) = (again / "checkpoints").glob("best-epoch=*.ckpt")
    (member_best,) = (fused_dir / "members" / "seed1" / "checkpoints").glob("best-epoch=*.ckpt")
    a = torch.load(member_best, map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(solo_best, map_location="cpu", weights_only=True)["state_dict"]
    assert_close_weights(a, b, 1e-8)
    assert RunRecord.read(again / "result.json").val_loss == pytest.approx(
        RunRecord.read(fused_dir / "members" / "seed1" / "result.json").val_loss, rel=1e-9)
