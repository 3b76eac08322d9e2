"""``RunResult``: a small JSON summary of a training run, rewritten after every validation epoch.

The sweep reads it to score trials and to tell finished runs from interrupted ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn


class RunResult(pl.Callback):
    """Writes ``result.json`` (``path``; None → ``<trainer.log_dir>/result.json``) during ``fit``:

    ``{"val_loss": best val/loss so far, "eps_loss", "drude_loss" (val, at the best epoch),
    "best_epoch", "epochs_done", "max_epochs", "num_parameters", "finished": bool}``.
    ``finished`` is true once all ``max_epochs`` ran or ``fit`` returned normally (e.g. early
    stopping); the best-so-far state is kept in checkpoints so resumed runs continue it.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.best: dict[str, Any] = {}

    def _target(self, trainer: pl.Trainer) -> Path:
        return Path(self.path) if self.path else Path(trainer.log_dir or os.getcwd()) / "result.json"

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epochs_done: int, finished: bool) -> None:
        target = self._target(trainer)  # on every rank: ``trainer.log_dir`` is a collective under DDP
        if not trainer.is_global_zero or not self.best:
            return
        model = getattr(pl_module, "model", pl_module)
        result = {
            **self.best,
            "epochs_done": epochs_done,
            "max_epochs": trainer.max_epochs,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "finished": finished,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, target)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = trainer.callback_metrics
        if "val/loss" not in metrics:
            return
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
        if not trainer.interrupted:
            self._write(trainer, pl_module, trainer.current_epoch, finished=True)

    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict.get("best", {}))
