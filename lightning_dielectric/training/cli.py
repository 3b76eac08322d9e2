"""The ``lightning`` console script: LightningCLI over ``DielectricModule`` and ``DielectricDataModule``.

``lightning fit --config configs/optimetal2b_tc.yaml --data.root data/synthetic --trainer.max_epochs 3``
(also ``validate``, ``test``, ``predict``; ``python -m lightning_dielectric`` is the same).

Defaults (overridable in YAML or on the command line): TensorBoard logger under ``runs/``;
checkpoints in ``<log_dir>/checkpoints/``: the best by ``val/loss`` plus ``last.ckpt``
(``--checkpoint.*``); ``result.json`` for the sweep (``--result.path``); gradient clipping at norm
100; ``bf16-mixed`` precision on GPUs that support it, 32-bit otherwise; seed 0. The resolved
config is saved as ``<log_dir>/config.yaml``. A wrong key or value stops with jsonargparse's
message before anything is built.
"""

from __future__ import annotations

import sys

import torch
from jsonargparse import lazy_instance
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_dielectric.data import DielectricDataModule
from lightning_dielectric.training.callbacks import RunResult
from lightning_dielectric.training.module import DielectricModule


def default_precision() -> str:
    """``bf16-mixed`` on a CUDA device with bf16 support, full fp32 otherwise (CPU)."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


class DielectricCLI(LightningCLI):
    """LightningCLI with the project's always-present, configurable checkpoint and result callbacks."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch={epoch:04d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(RunResult, "result")

    def instantiate_classes(self) -> None:
        """Build the configured objects; a value that only fails here (a dataset root without
        dataset.json, a train_size larger than the split) stops with one line, not a traceback."""
        try:
            super().instantiate_classes()
        except (FileNotFoundError, ValueError) as err:
            print(f"lightning: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``)."""
    DielectricCLI(
        DielectricModule,
        DielectricDataModule,
        trainer_defaults={
            "logger": lazy_instance(TensorBoardLogger, save_dir="runs", default_hp_metric=False),
            "gradient_clip_val": 100.0,
            "gradient_clip_algorithm": "norm",
            "precision": default_precision(),
        },
        seed_everything_default=0,
        parser_kwargs={"prog": "lightning"},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=argv,
    )
