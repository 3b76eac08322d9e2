"""Fused seed training (``model.members`` = K > 1): per-member clipping and ``MemberRuns``, which
writes every member as the ordinary run a solo ``lightning fit`` with its seed writes.

A member's run directory holds what a solo run's does, so ``predict``, ``lightning test``,
``evaluate``, the ensembles and the laws read it as one:

- ``config.yaml``: the fused run's config with ``model.members: 1``, ``seed_everything`` the
  member's seed and the member's own paths. ``lightning fit --config DIR/config.yaml`` is the solo
  reproduction of the member: its initialisation seed with the fused run's data seed
  (``data.seed``, the batch order all members shared).
- ``checkpoints/best-epoch=EEEE.ckpt``: the member's weights at its own best validation loss,
  without training state (``sweep.retention.WEIGHT_KEYS``); rewritten at each new best.
- ``result.json``: its ``RunRecord``: its best losses and epoch; the fused run's progress; its
  own parameter count N; and 1/K of the fused run's FLOPs, wall time and device-hours (the
  members share one computation, so each is charged an equal part).

The fused run's own directory keeps ``last.ckpt`` (all members, with optimizer state: a fused run
resumes from it) and its own ``result.json`` (mean losses over the members).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.trainer.states import TrainerFn

from lightning_dielectric.models.members import member_state
from lightning_dielectric.sweep.retention import WEIGHT_KEYS
from lightning_dielectric.training.callbacks import RunResult
from lightning_dielectric.training.run_record import RECORD_FILE

if TYPE_CHECKING:
    from lightning_dielectric.training.module import DielectricModule

BEST_NAME = "best-epoch={epoch:04d}.ckpt"  # the solo run's best-checkpoint name (cli.py's checkpoint.filename)


def member_tag(index: int, members: int) -> str:
    """Prefix of member ``index``'s logged metrics: ``member<index>/`` for fused runs, none for solo runs."""
    return f"member{index}/" if members > 1 else ""


def member_compute_for(model: torch.nn.Module, device: torch.device) -> str:
    """``member_compute: auto``'s choice for ``model`` (any member) on ``device``: ``sequential`` on a
    CPU for networks that read triplets (OptiMetal3B) and for widths of 256 or more, where stacking
    the members' large (rows, K·w) activations makes a step slower than K solo steps
    (docs/training.md, "When it pays"); ``stacked`` otherwise, and on every accelerator, where
    stacking widens each kernel."""
    triplets = getattr(model, "threebody_cutoff", None) is not None
    width = getattr(model, "hparams", {}).get("width", 0)
    if device.type == "cpu" and (triplets or width >= 256):
        return "sequential"
    return "stacked"


def clip_per_member(parameters: Iterable[torch.nn.Parameter], max_norm: float, members: int) -> torch.Tensor:
    """``clip_grad_norm_(member's gradients, max_norm)`` for each member of a fused network at once
    (``models.members``: member k owns the k-th of K equal row blocks of every parameter); returns
    the K total norms before clipping."""
    grads = [p.grad.view(members, -1) for p in parameters if p.grad is not None]
    norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dim=1) for g in grads], 1), dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1)
    for g in grads:
        g.mul_(coef)
    return norms


class MemberRuns(pl.Callback):
    """Writes each member of a fused run as an ordinary run (module doc); does nothing for solo runs.

    Args:
        dirs: the members' run directories, in member order (None → ``<log_dir>/members/seed<s>``).
    """

    def __init__(self, dirs: list[str] | None = None) -> None:
        self.dirs = dirs
        self.best: list[dict[str, Any]] = []

    def member_dirs(self, trainer: pl.Trainer, module: DielectricModule) -> list[Path]:
        seeds = module.member_seeds
        if self.dirs is None:
            return [Path(trainer.log_dir or ".") / "members" / f"seed{s}" for s in seeds]
        if len(self.dirs) != len(seeds):
            raise ValueError(f"member_runs.dirs: {len(self.dirs)} directories for {len(seeds)} members")
        return [Path(d) for d in self.dirs]

    def on_fit_start(self, trainer: pl.Trainer, module: DielectricModule) -> None:
        if module.hparams.members == 1:
            return
        dirs = self.member_dirs(trainer, module)  # on every rank: ``trainer.log_dir`` is a collective under DDP
        if len(self.best) != len(dirs):
            self.best = [{} for _ in dirs]
        source = Path(trainer.log_dir or ".") / "config.yaml"
        if trainer.is_global_zero and source.is_file():
            config = yaml.safe_load(source.read_text())
            for seed, run in zip(module.member_seeds, dirs):
                run.mkdir(parents=True, exist_ok=True)
                (run / "config.yaml").write_text(yaml.safe_dump(solo_config(config, seed, run), sort_keys=False))

    def on_validation_end(self, trainer: pl.Trainer, module: DielectricModule) -> None:
        members = module.hparams.members
        if members == 1 or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = trainer.callback_metrics
        dirs = self.member_dirs(trainer, module)
        checkpoint = None  # the run's weights-only checkpoint, dumped once for all improved members
        for k, run in enumerate(dirs):
            tag = member_tag(k, members)
            if f"{tag}val/loss" not in metrics:
                continue
            loss = float(metrics[f"{tag}val/loss"])
            if bool(module.active[k]) and math.isfinite(loss) and (not self.best[k] or loss < self.best[k]["val_loss"]):
                self.best[k] = {"val_loss": loss, "eps_loss": float(metrics[f"{tag}val/eps_loss"]),
                                "drude_loss": float(metrics[f"{tag}val/drude_loss"]),
                                "delta_e": float(metrics[f"{tag}val/delta_e"]), "best_epoch": trainer.current_epoch}
                if trainer.is_global_zero:
                    if checkpoint is None:
                        checkpoint = {key: value for key, value in trainer._checkpoint_connector
                                      .dump_checkpoint(weights_only=True).items() if key in WEIGHT_KEYS}
                    self._save_best(trainer, module, checkpoint, k, run)
        epochs_done = trainer.current_epoch + 1
        self._write_records(trainer, module, dirs, epochs_done,
                            trainer.max_epochs is not None and epochs_done >= trainer.max_epochs)

    def on_fit_end(self, trainer: pl.Trainer, module: DielectricModule) -> None:
        if module.hparams.members > 1 and not trainer.interrupted:
            self._write_records(trainer, module, self.member_dirs(trainer, module), trainer.current_epoch, True)

    def _save_best(self, trainer: pl.Trainer, module: DielectricModule, run_checkpoint: dict, index: int,
                   run: Path) -> None:
        """Member ``index``'s weights-only checkpoint (``run_checkpoint`` with the member's weights) in
        ``run/checkpoints``, replacing its previous best."""
        folder = run / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = dict(run_checkpoint)
        checkpoint["state_dict"] = {f"model.{k}": v for k, v in member_state(module.model, index).items()}
        checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "members": 1}
        target = folder / BEST_NAME.format(epoch=trainer.current_epoch)
        tmp = target.with_name(target.name + ".tmp")
        torch.save(checkpoint, tmp)
        tmp.replace(target)
        for old in folder.glob("best-epoch=*.ckpt"):
            if old != target:
                old.unlink()

    def _write_records(self, trainer: pl.Trainer, module: DielectricModule, dirs: list[Path], epochs_done: int,
                       finished: bool) -> None:
        result = next((cb for cb in trainer.callbacks if isinstance(cb, RunResult)), None)
        if result is None or not result.best or not trainer.is_global_zero:
            return
        fused = result.record(trainer, module, epochs_done, finished)
        share = 1.0 / module.hparams.members

        def part(value: float | None) -> float | None:
            return None if value is None else value * share

        for best, run, stopped in zip(self.best, dirs, module.stopped_epoch.tolist()):
            if best:
                dataclasses.replace(
                    fused, **best, num_parameters=fused.num_parameters // module.hparams.members,
                    flops_per_structure=part(fused.flops_per_structure), flops=part(fused.flops),
                    train_wall_s=fused.train_wall_s * share, device_hours=fused.device_hours * share,
                    stopped_epoch=None if stopped < 0 else stopped,
                ).write(run / RECORD_FILE)

    def state_dict(self) -> dict[str, Any]:
        return {"best": [dict(b) for b in self.best]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = [dict(b) for b in state_dict.get("best", [])]


def solo_config(config: dict, seed: int, run: Path) -> dict:
    """The fused run's resolved ``config`` as member ``seed``'s solo run in directory ``run``."""
    config = yaml.safe_load(yaml.safe_dump(config))  # a deep copy
    config["seed_everything"] = seed
    config.setdefault("model", {})["members"] = 1
    config.setdefault("checkpoint", {})["dirpath"] = str((run / "checkpoints").resolve())
    config.setdefault("result", {})["path"] = str((run / RECORD_FILE).resolve())
    config.setdefault("member_runs", {})["dirs"] = None
    logger = config.get("trainer", {}).get("logger")
    if isinstance(logger, dict) and str(logger.get("class_path", "")).endswith("TensorBoardLogger"):
        logger.setdefault("init_args", {}).update(save_dir=str(run.resolve()), name="", version="")
    return config
