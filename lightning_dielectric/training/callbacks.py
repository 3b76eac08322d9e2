"""``RunResult``: a small JSON summary of a training run, rewritten after every validation epoch.

The sweep reads it to score trials and to tell finished runs from interrupted ones, and to
account for each run's compute (FLOPs, wall time, device; see ``training/flops.py``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

from lightning_dielectric.training.flops import TRAIN_FLOP_FACTOR, flops_per_structure


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda:<GPU model>`` (e.g. ``cuda:NVIDIA H200``)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


class RunResult(pl.Callback):
    """Writes ``result.json`` (``path``; None → ``<trainer.log_dir>/result.json``) during ``fit``:

    ``{"val_loss": best val/loss so far, "eps_loss", "drude_loss" (val, at the best epoch),
    "best_epoch", "epochs_done", "max_epochs", "num_parameters", "finished": bool}`` and the
    compute: ``flops_per_structure`` (forward FLOPs per structure, measured on the first
    ``flops_batches`` training batches), ``structures_seen`` (structures in training steps, all
    ranks), ``flops`` (= 3 × forward FLOPs per structure × structures seen), ``train_wall_s``
    (seconds in ``fit``), ``device`` (``cpu`` / ``cuda:<model>``), ``num_devices`` (processes of
    the run, all nodes) and ``device_hours`` (= train_wall_s × num_devices / 3600). ``finished``
    is true once all ``max_epochs`` ran or ``fit`` returned normally (e.g. early stopping); the
    best-so-far state and the compute counters are kept in checkpoints so resumed runs continue them.
    """

    def __init__(self, path: str | None = None, flops_batches: int = 2) -> None:
        self.path = path
        self.flops_batches = flops_batches
        self.best: dict[str, Any] = {}
        self.compute: dict[str, Any] = {"flops_per_structure": None, "structures_seen": 0, "train_wall_s": 0.0}
        self._started: float | None = None
        self._local_structures = 0  # this rank's structures since the last _sync

    def _target(self, trainer: pl.Trainer) -> Path:
        return Path(self.path) if self.path else Path(trainer.log_dir or os.getcwd()) / "result.json"

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epochs_done: int, finished: bool) -> None:
        target = self._target(trainer)  # on every rank: ``trainer.log_dir`` is a collective under DDP
        if not trainer.is_global_zero or not self.best:
            return
        model = getattr(pl_module, "model", pl_module)
        self._tick()
        per_structure = self.compute["flops_per_structure"]
        result = {
            **self.best,
            **self.compute,
            "flops": None if per_structure is None else TRAIN_FLOP_FACTOR * per_structure * self.compute["structures_seen"],
            "device": device_name(pl_module.device),
            "num_devices": trainer.world_size,
            "device_hours": self.compute["train_wall_s"] * trainer.world_size / 3600.0,
            "epochs_done": epochs_done,
            "max_epochs": trainer.max_epochs,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "finished": finished,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, target)

    def _tick(self) -> None:
        """Add the wall time since the last tick to ``train_wall_s``."""
        if self._started is not None:
            now = time.perf_counter()
            self.compute["train_wall_s"] += now - self._started
            self._started = now

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

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
                "best_epoch": trainer.current_epoch,
            }
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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict.get("best", {}))
        self.compute.update(state_dict.get("compute", {}))
