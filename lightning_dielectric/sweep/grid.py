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

With ``fuse_seeds`` the seeds of one (family, w, D) are trained by one fused trial
(:func:`fused_trials`, ``model.members``; docs/sweeps.md): every seed point keeps its own run
directory, which the fused trial writes as an ordinary run (``member_runs.dirs``); the trial's own
directory (``<family>_w<w>_D<D>_s<first>-<last>_e<epochs>``) holds its ``last.ckpt``. All seeds of
a fused sweep share the data order of its smallest seed (``data.seed``), so that a point's result
does not depend on which of its seeds are trained together.
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
    _assign(config, "data.seed", data_seed(spec, point))
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


def data_seed(spec: SweepSpec, point: GridPoint) -> int:
    """``data.seed`` of the point: its own seed (per-seed data order too, not only the
    initialisation), or with ``fuse_seeds`` the sweep's smallest seed (the order fused members share)."""
    return min(spec.seeds) if spec.fuse_seeds else point.seed


def fused_trials(spec: SweepSpec, points: list[GridPoint]) -> list[tuple[GridPoint, ...]]:
    """``points`` grouped into trials, in their order: one point each, or with ``fuse_seeds`` the
    points that differ only in their seed, split into runs of consecutive seeds (member k of a
    fused run has seed first + k)."""
    if not spec.fuse_seeds:
        return [(p,) for p in points]
    groups: dict[tuple, list[GridPoint]] = {}
    for p in points:
        groups.setdefault((p.family, p.width, p.train_size, p.epochs), []).append(p)
    trials = []
    for group in groups.values():
        run: list[GridPoint] = []
        for p in sorted(group, key=lambda q: q.seed):
            if run and p.seed != run[-1].seed + 1:
                trials.append(tuple(run))
                run = []
            run.append(p)
        trials.append(tuple(run))
    return trials


def trial_dir(spec: SweepSpec, trial: tuple[GridPoint, ...]) -> Path:
    """Where the trial process logs and checkpoints: the point's run directory, or a fused trial's own."""
    first, last = trial[0], trial[-1]
    if len(trial) == 1:
        return first.run_dir(spec.out)
    return spec.out / "trials" / f"{first.family}_w{first.width}_D{first.train_size}_s{first.seed}-{last.seed}_e{first.epochs}"


def write_trial_config(spec: SweepSpec, trial: tuple[GridPoint, ...]) -> Path:
    """Write the trial's config to ``<trial_dir>/trial.yaml`` and return its path."""
    run_dir = trial_dir(spec, trial)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = trial_config(spec, trial[0], run_dir)
    if len(trial) > 1:
        _assign(config, "model.members", len(trial))
        _assign(config, "member_runs.dirs", [str(p.run_dir(spec.out).resolve()) for p in trial])
    path = run_dir / "trial.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
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
