"""``RunResult``: the run's record (``result.json``, see ``run_record.py``), its best-so-far
validation losses and its entry in TensorBoard's HParams dashboard.

The sweep reads the record to score trials and to tell finished runs from interrupted ones, and to
account for each run's compute (FLOPs, wall time, device; see ``training/flops.py``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerFn

from lightning_dielectric.models import num_parameters
from lightning_dielectric.training.flops import TRAIN_FLOP_FACTOR, flops_per_structure
from lightning_dielectric.training.run_record import RECORD_FILE, RunRecord

if TYPE_CHECKING:
    from lightning_dielectric.training.module import DielectricModule

# HParams dashboard metric → best-so-far entry (validation values at the best epoch)
HP_METRICS = {"hp/best_val_loss": "val_loss", "hp/eps_loss": "eps_loss", "hp/drude_loss": "drude_loss",
              "hp/delta_e": "delta_e"}


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda:<GPU model>`` (e.g. ``cuda:NVIDIA H200``)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


class RunResult(pl.Callback):
    """Keeps the run's best-so-far validation losses and writes its ``RunRecord`` during ``fit``.

    Args:
        path: where the record goes (None → ``<trainer.log_dir>/result.json``).
        flops_batches: training batches the forward FLOPs per structure are measured on (0: not measured).
        family: the sweep's model family (``"2b-tc"``, ...), copied into the record and the HParams.

    After every validation epoch of ``fit`` the record is rewritten and the best-so-far losses are
    logged as ``hp/*`` metrics; at the start of ``fit`` the run's identity (the module's
    ``run_hparams`` plus ``family`` and ``N``, the parameter count) goes to TensorBoard's HParams.
    ``finished`` is true once all ``max_epochs`` ran or ``fit`` returned normally (e.g. early
    stopping). The best-so-far state and the compute counters are kept in checkpoints, so resumed
    runs continue them.
    """

    def __init__(self, path: str | None = None, flops_batches: int = 2, family: str | None = None) -> None:
        self.path = path
        self.flops_batches = flops_batches
        self.family = family
        self.best: dict[str, Any] = {}  # RunRecord's val_loss, eps_loss, drude_loss, delta_e, best_epoch
        self.compute: dict[str, Any] = {"flops_per_structure": None, "structures_seen": 0, "train_wall_s": 0.0}
        self._started: float | None = None
        self._local_structures = 0  # this rank's structures since the last _sync
        self._legacy_delta_e = math.nan

    def _target(self, trainer: pl.Trainer) -> Path:
        return Path(self.path) if self.path else Path(trainer.log_dir or os.getcwd()) / RECORD_FILE

    def record(self, trainer: pl.Trainer, pl_module: DielectricModule, epochs_done: int, finished: bool) -> RunRecord:
        """The run's record now (needs a validation epoch of this run: ``best`` set)."""
        self._tick()
        per_structure = self.compute["flops_per_structure"]
        return RunRecord(
            **self.best,
            **self.compute,
            flops=None if per_structure is None else TRAIN_FLOP_FACTOR * per_structure * self.compute["structures_seen"],
            device=device_name(pl_module.device),
            num_devices=trainer.world_size,
            device_hours=self.compute["train_wall_s"] * trainer.world_size / 3600.0,
            epochs_done=epochs_done,
            max_epochs=trainer.max_epochs,
            num_parameters=num_parameters(pl_module.model),
            family=self.family,
            finished=finished,
        )

    def _write(self, trainer: pl.Trainer, pl_module: DielectricModule, epochs_done: int, finished: bool) -> None:
        target = self._target(trainer)  # on every rank: ``trainer.log_dir`` is a collective under DDP
        if trainer.is_global_zero and self.best:
            self.record(trainer, pl_module, epochs_done, finished).write(target)

    def _tick(self) -> None:
        """Add the wall time since the last tick to ``train_wall_s``."""
        if self._started is not None:
            now = time.perf_counter()
            self.compute["train_wall_s"] += now - self._started
            self._started = now

    def on_fit_start(self, trainer: pl.Trainer, pl_module: DielectricModule) -> None:
        self._started = time.perf_counter()
        if isinstance(trainer.logger, TensorBoardLogger):
            identity = {**pl_module.run_hparams(), "N": num_parameters(pl_module.model)}
            if self.family is not None:
                identity["family"] = self.family
            trainer.logger.log_hyperparams(identity, {name: math.nan for name in HP_METRICS})

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.compute["flops_per_structure"] is not None or self.flops_batches < 1:
            return
        loader = trainer.train_dataloader
        batches = []
        for batch in loader:
            batches.append(pl_module.transfer_batch_to_device(batch, pl_module.device, 0))
            if len(batches) >= self.flops_batches:
                break
        self.compute["flops_per_structure"] = flops_per_structure(pl_module, batches)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._local_structures += int(getattr(batch, "num_graphs", None) or len(batch))

    def _sync(self, trainer: pl.Trainer) -> None:
        """Add every rank's structures since the last call to ``structures_seen`` (a collective:
        called from hooks that run on all ranks)."""
        local = torch.tensor(self._local_structures, dtype=torch.int64, device=trainer.strategy.root_device)
        self.compute["structures_seen"] += int(trainer.strategy.reduce(local, reduce_op="sum").item())
        self._local_structures = 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = trainer.callback_metrics
        if "val/loss" not in metrics:
            return
        self._sync(trainer)
        val_loss = float(metrics["val/loss"])
        if not self.best or val_loss < self.best["val_loss"]:
            self.best = {
                "val_loss": val_loss,
                "eps_loss": float(metrics["val/eps_loss"]),
                "drude_loss": float(metrics["val/drude_loss"]),
                "delta_e": float(metrics["val/delta_e"]),
                "best_epoch": trainer.current_epoch,
            }
        if trainer.logger is not None:
            trainer.logger.log_metrics({tag: self.best[key] for tag, key in HP_METRICS.items()}, step=trainer.global_step)
        epochs_done = trainer.current_epoch + 1
        self._write(trainer, pl_module, epochs_done, trainer.max_epochs is not None and epochs_done >= trainer.max_epochs)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer)
        if not trainer.interrupted:
            self._write(trainer, pl_module, trainer.current_epoch, finished=True)
        self._started = None

    def state_dict(self) -> dict[str, Any]:
        self._tick()
        return {"best": dict(self.best), "compute": dict(self.compute)}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        # checkpoints from before the run record kept the best epoch's ΔE*ab in the module's "hp_best"
        self._legacy_delta_e = checkpoint.get("hp_best", {}).get("hp/delta_e", math.nan)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # called after on_load_checkpoint
        self.best = dict(state_dict.get("best", {}))
        if self.best:
            self.best.setdefault("delta_e", self._legacy_delta_e)
        self.compute.update(state_dict.get("compute", {}))
