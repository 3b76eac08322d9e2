"""Expansion of a sweep into grid points and the generated Lightning config of each trial.

A grid point is (family, width w, training-set size D, seed, epochs); ``designs`` says which
lines it belongs to (a point on both the data line and the width line is trained once and
appears in both). The trial config is layered on the family's base config
(``python -m lightning_dielectric fit --config BASE --config TRIAL.yaml``) and sets:
width w and spectra width 4w, the learning rate from the width rule (anchored at the base
config's width and learning rate, so the paper's configs give lr_256 · N(256)/N(w) for the
TransformerConv families), ``data.train_size = D``,
``seed_everything``, ``trainer.max_epochs``/``devices`` and a TensorBoard logger whose log dir
is the trial's run directory (so ``result.json`` and ``checkpoints/last.ckpt`` land there), and
the family name in ``result.family`` (the run record and TensorBoard's HParams carry it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from lightning_dielectric.sweep.spec import SweepSpec
from lightning_dielectric.training.run_record import RECORD_FILE


COST_D0 = 300
COST_N0 = 1_000_000


@dataclass(frozen=True)
class GridPoint:
    family: str
    width: int
    train_size: int
    seed: int
    epochs: int
    designs: tuple[str, ...]

    @property
    def key(self) -> str:
        """Stable identity of the point in the storage (independent of the grid's order)."""
        return f"{self.family}/w{self.width}/D{self.train_size}/s{self.seed}/e{self.epochs}"

    @property
    def num_parameters(self) -> int:
        return parameter_count(self.family, self.width)

    @property
    def cost(self) -> float:
        """Relative training time, for scheduling and the ETA: epochs · (D + D_0) · (N + N_0).

        D_0 stands for the per-epoch work independent of D (validation, logging) and N_0 for the
        per-structure work independent of the model size (graph building, data loading); the
        values fit the quick sweep's measured CPU times within about 30 %.
        """
        return float(self.epochs) * (self.train_size + COST_D0) * (self.num_parameters + COST_N0)

    def run_dir(self, out: Path) -> Path:
        return out / "trials" / f"{self.family}_w{self.width}_D{self.train_size}_s{self.seed}_e{self.epochs}"


@cache
def parameter_count(family: str, width: int) -> int:
    from lightning_dielectric.models import count_parameters

    return count_parameters(family, width)


def expand(spec: SweepSpec) -> list[GridPoint]:
    """All grid points of ``spec``, most expensive first (longest-job-first keeps workers busy)."""
    members: dict[tuple[str, int, int, int], list[str]] = {}
    for family in spec.families:
        for seed in spec.seeds:
            pairs = {
                "data": [(spec.fixed_width, d) for d in spec.train_sizes],
                "width": [(w, spec.fixed_train_size) for w in spec.widths],
                "grid": [(w, d) for w in spec.widths for d in spec.train_sizes],
            }
            for design in spec.design:
                for w, d in pairs[design]:
                    members.setdefault((family, w, d, seed), []).append(design)
    points = [
        GridPoint(family, w, d, seed, spec.epochs, tuple(designs))
        for (family, w, d, seed), designs in members.items()
    ]
    return sorted(points, key=lambda p: (-p.cost, p.key))


def trial_config(spec: SweepSpec, point: GridPoint, run_dir: Path) -> dict[str, Any]:
    """The config layered on ``spec.base[point.family]`` for this point (a nested mapping)."""
    from lightning_dielectric.models import FAMILIES, spectra_width_for
    from lightning_dielectric.training.lr_rule import lr_for_width

    source = spec.base[point.family]
    base = _read_yaml(source)
    base_lr = float(_lookup(base, "model.lr", source))
    base_width = int(_lookup(base, "model.model.init_args.width", source))
    lr = lr_for_width(point.family, point.width, base_lr, base_width)  # anchored at the base config
    cls, fixed = FAMILIES[point.family]
    config: dict[str, Any] = {}
    for dotted, value in spec.overrides.items():
        _assign(config, dotted, value)
    _assign(config, "seed_everything", point.seed)
    _assign(config, "data.seed", point.seed)  # per-seed data order too, not only the initialisation
    _assign(config, "trainer.max_epochs", point.epochs)
    _assign(config, "trainer.devices", spec.devices)
    _assign(
        config,
        "trainer.logger",
        {
            "class_path": "pytorch_lightning.loggers.TensorBoardLogger",
            "init_args": {"save_dir": str(run_dir.resolve()), "name": "", "version": ""},
        },
    )
    _assign(config, "checkpoint.dirpath", str((run_dir / "checkpoints").resolve()))
    _assign(config, "result.path", str((run_dir / RECORD_FILE).resolve()))
    _assign(config, "result.family", point.family)
    _assign(
        config,
        "model.model",
        {
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
            "init_args": {**fixed, "width": point.width, "spectra_width": spectra_width_for(point.width)},
        },
    )
    _assign(config, "model.lr", lr)
    _assign(config, "data.root", str(spec.data_root.resolve()))
    _assign(config, "data.train_size", point.train_size)
    return config


def write_trial_config(spec: SweepSpec, point: GridPoint, run_dir: Path) -> Path:
    """Write the trial config to ``run_dir/trial.yaml`` and return its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "trial.yaml"
    path.write_text(yaml.safe_dump(trial_config(spec, point, run_dir), sort_keys=False))
    return path


def _read_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a Lightning config mapping")
    return data


def _lookup(config: dict, dotted: str, source: Path) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"{source}: key '{dotted}' missing (the sweep needs it)")
        node = node[part]
    return node


def _assign(config: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
