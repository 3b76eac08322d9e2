"""Checks of a sweep before any trial starts (``sweep run`` and ``sweep status``).

- Each family's generated trial config is parsed, in this process, by the parser of
  ``lightning fit`` that the trial itself uses (base config, then the trial config), without
  building a model or reading data. The points of one family differ only in values the sweep
  file's own validation already checked (width, D, seed, epochs, paths), so one point per family
  covers the keys and types of all of them.
- The dataset (when it exists) holds the largest training-set size of the grid.

Errors are :class:`SweepSpecError`: one line naming the sweep file and the key
(``overrides.data.batchsize``) or the base config that holds the wrong key.
"""

from __future__ import annotations

import json

import yaml

from lightning_dielectric.sweep.grid import GridPoint, trial_config
from lightning_dielectric.sweep.spec import SweepSpec, SweepSpecError


def check_sweep(spec: SweepSpec, points: list[GridPoint]) -> None:
    """Raise :class:`SweepSpecError` if a trial of ``spec`` would stop on its configuration."""
    _check_train_sizes(spec, points)
    from lightning_dielectric.training.cli import config_error, config_parser

    parser = config_parser()
    for family in dict.fromkeys(p.family for p in points):
        point = next(p for p in points if p.family == family)
        trial = trial_config(spec, point, point.run_dir(spec.out))
        err = config_error(parser, [str(spec.base[family]), yaml.safe_dump(trial)])
        if err is None:
            continue
        override = _override_of(spec, err.key, err.text)
        where = f"key 'overrides.{override}'" if override else f"base config {spec.base[family]} ({family})"
        raise SweepSpecError(f"{spec.source}: {where}: {err.describe()}")


def _override_of(spec: SweepSpec, key: str | None, text: str) -> str | None:
    """The override that the failing config key comes from, if any."""
    for name in spec.overrides:
        if key is not None and (key == name or key.startswith(name + ".") or name.startswith(key + ".")):
            return name
        if key is None and name in text:
            return name
    return None


def _check_train_sizes(spec: SweepSpec, points: list[GridPoint]) -> None:
    try:
        counts = json.loads((spec.data_root / "dataset.json").read_text())["counts"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no dataset yet (status) or not one: the trial reports it
    largest = max(p.train_size for p in points)
    if largest > counts.get("train", 0):
        key = "train_sizes" if largest in spec.train_sizes else "fixed_train_size"
        raise SweepSpecError(f"{spec.source}: key '{key}': D={largest} but dataset {spec.data_root} has "
                             f"{counts.get('train', 0)} training structures")
