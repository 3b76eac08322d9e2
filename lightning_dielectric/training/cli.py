"""The ``lightning`` console script: LightningCLI over ``DielectricModule`` and ``DielectricDataModule``.

``lightning fit --config configs/optimetal2b_tc.yaml --data.root data/synthetic --trainer.max_epochs 3``
(also ``validate``, ``test``, ``predict``; ``python -m lightning_dielectric`` is the same).

Defaults (overridable in YAML or on the command line): TensorBoard logger under ``runs/``;
checkpoints in ``<log_dir>/checkpoints/``: the best by ``val/loss`` plus ``last.ckpt``
(``--checkpoint.*``); ``result.json`` for the sweep (``--result.path``); with ``--model.members K``
each member of the fused run also as an ordinary run (``--member_runs.dirs``, ``training/members.py``); gradient clipping at norm
100; ``bf16-mixed`` precision on GPUs that support it, 32-bit otherwise; seed 0. The resolved
config is saved as ``<log_dir>/config.yaml`` (``<stage>_config.yaml`` for validate/test/predict,
so they never replace the fit's). A wrong key or value stops before anything is built with one
line (a mistyped key gets the closest valid ones) and exit status 2, the status the sweep reads as
"configuration error, do not retry".

Where runs go: ``fit`` prints its run directory when it starts; ``test``/``validate``/``predict``
with ``--config RUN/config.yaml --ckpt_path RUN/checkpoints/X.ckpt`` log into RUN itself (events
beside the fit's) rather than a new ``version_N``, and ``test`` prints where ``test_metrics.*`` went.
Without ``--config``, they read the fit's ``RUN/config.yaml`` beside the checkpoint's folder, so
``lightning test --ckpt_path RUN/checkpoints/X.ckpt`` is enough.
"""

from __future__ import annotations

import os
import sys
import warnings
from argparse import ArgumentError
from functools import partial
from pathlib import Path
from typing import Any

import torch
from jsonargparse import lazy_instance
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import TensorBoardLogger

from lightning_dielectric.data import DielectricDataModule
from lightning_dielectric.training.allocator import reuse_freed_blocks
from lightning_dielectric.models.network import DielectricNetwork
from lightning_dielectric.training.callbacks import RunResult
from lightning_dielectric.training.members import MemberRuns
from lightning_dielectric.training.config_errors import (CONFIG_ERROR_STATUS, GRAPH_KEYS, LINKED_KEYS, ConfigError,
                                                          explain)
from lightning_dielectric.training.module import DielectricModule


def default_precision() -> str:
    """``bf16-mixed`` on a CUDA device with bf16 support, full fp32 otherwise (CPU)."""
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


class DielectricArgumentParser(LightningArgumentParser):
    """jsonargparse's parser with one-line errors instead of the full usage text, and no silent
    abbreviations (``--trainer.max_epoch`` is a mistake, not ``--trainer.max_epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            super().error(message, ex)  # raises ArgumentError
        err = explain(message, (a.dest for a in self._actions))
        prog = self.prog.replace(" [options]", "")
        print(f"{prog}: error: {err.describe('--')}; options: {prog} --help", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_STATUS)


class StageConfig(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` for fit and ``<stage>_config.yaml`` otherwise."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            self.config_filename = f"{getattr(stage, 'value', stage)}_config.yaml"
        super().setup(trainer, pl_module, stage)


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
        parser.add_lightning_class_args(MemberRuns, "member_runs")
        for key in GRAPH_KEYS:  # the network owns its graph: data.cutoff/threebody_cutoff follow it
            parser.link_arguments("model", f"data.{key}", compute_fn=partial(graph_cutoff, key=key),
                                  apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse ``args``: :func:`main` always passes the command line (amended by
        :func:`with_run_config`), so LightningCLI's warning about ``args`` given beside a command
        line, meant for calls from Python, would only ever be about this wiring."""
        self.config = parser.parse_args(args)

    def before_instantiate_classes(self) -> None:
        config = self.config.get(str(self.subcommand), self.config)
        if linked := linked_key_given(config):
            _stop(linked.describe())
        train_size = config.get("data.train_size")
        if train_size is not None and train_size < 1:
            _stop(f"--data.train_size must be a positive integer (structures), got {train_size}")
        dirs, members = config.get("member_runs.dirs"), config.get("model.members")
        if dirs is not None and members is not None and len(dirs) != members:
            _stop(f"--member_runs.dirs: {len(dirs)} directories for --model.members {members}")
        if self.subcommand in ("validate", "test", "predict") and config.get("ckpt_path"):
            _log_into_run(config, Path(config["ckpt_path"]))

    def instantiate_classes(self) -> None:
        """Build the configured objects; a value that only fails here (a dataset root without
        dataset.json, a train_size larger than the split) stops with one line, not a traceback."""
        try:
            super().instantiate_classes()
        except (FileNotFoundError, ValueError) as err:
            _stop(str(err))

    def before_fit(self) -> None:
        self._say(f"run directory {self.trainer.log_dir}")

    def after_fit(self) -> None:
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        self._say(f"finished; run directory {self.trainer.log_dir}" + (f", best checkpoint {best}" if best else ""))

    def before_test(self) -> None:
        self._say(f"run directory {self.trainer.log_dir}")

    def after_test(self) -> None:
        ckpt = self.trainer.ckpt_path
        where = os.path.dirname(os.path.abspath(ckpt)) if ckpt else self.trainer.log_dir
        self._say(f"test metrics written to {os.path.join(where, 'test_metrics.{md,tex,json}')}")

    def before_validate(self) -> None:
        self._say(f"run directory {self.trainer.log_dir}")

    def before_predict(self) -> None:
        self._say(f"run directory {self.trainer.log_dir}")

    def _say(self, text: str) -> None:
        if self.trainer.is_global_zero:
            print(f"lightning {self.subcommand}: {text}", file=sys.stderr, flush=True)


def linked_key_given(config) -> ConfigError | None:
    """The error for a value a config file gave to a key set from the model (``LINKED_KEYS``,
    e.g. an old run's ``data.cutoff``), which jsonargparse would silently replace."""
    given = [key for key in LINKED_KEYS if key in config]
    return ConfigError(given[0]) if given else None


def graph_cutoff(module: DielectricModule, key: str) -> float | None:
    """The ``cutoff`` or ``threebody_cutoff`` (Å) of the graphs the module's network reads."""
    if not isinstance(module.model, DielectricNetwork):
        raise ValueError(f"model.model must be a lightning_dielectric.models network (a DielectricNetwork, which "
                         f"declares its graph cutoffs), got {type(module.model).__name__}")
    return module.model.graph_cutoffs[key]


def _stop(message: str) -> None:
    print(f"lightning: error: {message}", file=sys.stderr)
    raise SystemExit(CONFIG_ERROR_STATUS)


def _log_into_run(config, ckpt: Path) -> None:
    """Point a TensorBoard logger that would open a new ``version_N`` next to the checkpoint's run
    (``RUN/checkpoints/X.ckpt``) at RUN itself, so evaluation events sit beside the fit's."""
    run = ckpt.resolve().parent.parent
    logger = config.get("trainer.logger")
    if not (run / "config.yaml").is_file() or not hasattr(logger, "init_args"):
        return
    if not str(logger.class_path).endswith("TensorBoardLogger"):
        return
    args = logger.init_args
    if Path(args.save_dir or ".", args.name or "").resolve() == run.parent:
        args.version = run.name


def _cli_kwargs() -> dict[str, Any]:
    return dict(
        model_class=DielectricModule,
        datamodule_class=DielectricDataModule,
        trainer_defaults={
            "logger": lazy_instance(TensorBoardLogger, save_dir="runs", default_hp_metric=False),
            "gradient_clip_val": 100.0,
            "gradient_clip_algorithm": "norm",
            "precision": default_precision(),
        },
        seed_everything_default=0,
        parser_class=DielectricArgumentParser,
        save_config_callback=StageConfig,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


class _ParserReady(Exception):
    def __init__(self, parser: LightningArgumentParser) -> None:
        self.parser = parser


class _ParserOnly(DielectricCLI):
    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        raise _ParserReady(parser)


def config_parser() -> LightningArgumentParser:
    """The parser of ``lightning fit``'s config (keys and types), raising ``ArgumentError`` on errors."""
    try:
        _ParserOnly(**_cli_kwargs(), parser_kwargs={"prog": "lightning", "exit_on_error": False}, run=False)
    except _ParserReady as ready:
        return ready.parser
    raise AssertionError("LightningCLI did not parse")


def config_error(parser: LightningArgumentParser, configs: list[str]) -> ConfigError | None:
    """Parse config files or YAML strings layered in order (as ``--config A --config B``) without
    building anything; the error, if any."""
    args = [arg for config in configs for arg in ("--config", config)]
    try:
        return linked_key_given(parser.parse_args(args))
    except ArgumentError as err:
        return explain(str(err), (a.dest for a in parser._actions))


# Raised inside Lightning by the torch this package installs (Lightning's own pytree helper calls an
# API torch deprecated); it tells the user nothing about their run. Every other warning is shown.
QUIET_WARNINGS = ((r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"pytorch_lightning\.utilities\._pytree"),)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``)."""
    for message, module in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
    reuse_freed_blocks()
    DielectricCLI(**_cli_kwargs(), parser_kwargs={"prog": "lightning"}, args=with_run_config(argv))


def with_run_config(argv: list[str] | None) -> list[str]:
    """``argv`` with ``--config RUN/config.yaml`` put first when a ``validate``/``test``/``predict``
    command names ``--ckpt_path RUN/checkpoints/X.ckpt`` but no ``--config`` (the settings the
    checkpoint was trained with; options given on the command line still override them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("validate", "test", "predict") or any(a.startswith("--config") for a in argv):
        return argv
    ckpt = next((a.split("=", 1)[1] for a in argv if a.startswith("--ckpt_path=")), None)
    if "--ckpt_path" in argv[:-1]:
        ckpt = argv[argv.index("--ckpt_path") + 1]
    run_config = Path(ckpt).resolve().parent.parent / "config.yaml" if ckpt else None
    if run_config is None or not run_config.is_file():
        return argv
    print(f"lightning {argv[0]}: settings from {run_config}", file=sys.stderr, flush=True)
    return [argv[0], "--config", str(run_config), *argv[1:]]
