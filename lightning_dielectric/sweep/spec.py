"""The sweep file: a YAML mapping validated on load into a :class:`SweepSpec`.

Example (``sweeps/quick.yaml``)::

    study_name: quick
    base: configs/quick/optimetal2b_cgc.yaml    # or a mapping family -> config
    families: [2b-cgc]
    design: [data, width]        # data: D line at fixed_width; width: w line at fixed_train_size;
                                 # grid: every width x every train size
    widths: [8, 16, 32, 64, 128]
    train_sizes: [250, 500, 1000, 2000, 4000]
    fixed_width: 32
    fixed_train_size: 4000
    seeds: [0]
    epochs: 20
    data_root: data/synthetic
    out: runs/quick

Every error is one line naming the file and the key (``sweeps/x.yaml: key 'widths[1]': ...``).
Relative paths are taken relative to the current directory (the repository root for ``make``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DESIGNS = ("data", "width", "grid")


class SweepSpecError(ValueError):
    """A malformed sweep file; the message names the file and the offending key."""


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep.

    Attributes:
        study_name: Optuna study name (unique within the storage).
        base: family -> base Lightning config (YAML path) that the trial config is layered on.
        families: model families (keys of ``lightning_dielectric.models.FAMILIES``).
        design: subset of ``data`` / ``width`` / ``grid`` (see module docstring).
        widths: hidden widths w of the width line and the grid (spectra width is 4w).
        train_sizes: training-set sizes D (structures) of the data line and the grid.
        fixed_width: w of the data line.
        fixed_train_size: D of the width line.
        seeds: ``seed_everything`` values; every point is trained once per seed.
        epochs: ``trainer.max_epochs`` of every trial.
        devices: ``trainer.devices`` per trial (more than 1: DDP inside the trial).
        workers: device groups of one driver, each ``devices`` GPUs (on CPU: trial slots);
            ``--workers`` overrides.
        trials_per_device: trials sharing each device group at once (``--trials-per-device``
            overrides); a driver runs ``workers * trials_per_device`` trials at once.
        storage: Optuna storage: SQLAlchemy URL, ``journal:PATH``, or None for
            ``sqlite:///<out>/optuna.db``.
        data_root: dataset root passed as ``data.root``.
        out: sweep run directory (trial run dirs, storage, runs table, report).
        overrides: extra config values for every trial, dotted keys (``data.batch_size: 256``).
        max_retries: reruns of a point whose trial process failed before it counts as failed.
        heartbeat_interval: seconds between a running trial's heartbeats in the storage.
        grace_period: seconds without a heartbeat after which a running trial counts as dead.
    """

    study_name: str
    base: dict[str, Path]
    families: tuple[str, ...]
    design: tuple[str, ...]
    widths: tuple[int, ...]
    train_sizes: tuple[int, ...]
    fixed_width: int | None
    fixed_train_size: int | None
    seeds: tuple[int, ...]
    epochs: int
    data_root: Path
    out: Path
    devices: int = 1
    workers: int = 1
    trials_per_device: int = 1
    storage: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 2
    heartbeat_interval: float = 15.0
    grace_period: float = 120.0
    source: str = "<sweep>"

    def replace(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    @property
    def storage_url(self) -> str:
        """The storage URL, defaulting to an SQLite file inside ``out``."""
        return self.storage or f"sqlite:///{(self.out / 'optuna.db').resolve()}"


_REQUIRED = ("study_name", "base", "families", "design", "seeds", "epochs", "data_root", "out")
_OPTIONAL = (
    "widths", "train_sizes", "fixed_width", "fixed_train_size", "devices", "workers", "trials_per_device",
    "storage",
    "overrides", "max_retries", "heartbeat_interval", "grace_period",
)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; raises :class:`SweepSpecError` naming the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SweepSpecError(f"{path}: cannot read sweep file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise SweepSpecError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return parse_spec(raw, source=str(path))


def parse_spec(raw: Any, source: str = "<sweep>") -> SweepSpec:
    """Validate an already-parsed sweep mapping (see :func:`load_spec`)."""
    if not isinstance(raw, dict):
        raise SweepSpecError(f"{source}: expected a mapping of sweep keys, got {type(raw).__name__}")

    def fail(key: str, msg: str) -> SweepSpecError:
        return SweepSpecError(f"{source}: key '{key}': {msg}")

    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise fail(unknown[0], f"unknown key (allowed: {', '.join(_REQUIRED + _OPTIONAL)})")
    for key in _REQUIRED:
        if raw.get(key) is None:
            raise fail(key, "missing")

    def pos_int(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(key, f"expected a positive integer, got {value!r}")
        return value

    def int_list(key: str, positive: bool = True) -> tuple[int, ...]:
        values = raw.get(key)
        if values is None:
            return ()
        if not isinstance(values, list) or not values:
            raise fail(key, f"expected a non-empty list of integers, got {values!r}")
        out = []
        for i, v in enumerate(values):
            if positive:
                out.append(pos_int(f"{key}[{i}]", v))
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise fail(f"{key}[{i}]", f"expected a non-negative integer, got {v!r}")
            else:
                out.append(v)
        if len(set(out)) != len(out):
            raise fail(key, f"duplicate values in {out}")
        return tuple(out)

    def pos_float(key: str, default: float) -> float:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise fail(key, f"expected a positive number, got {value!r}")
        return float(value)

    study_name = raw["study_name"]
    if not isinstance(study_name, str) or not study_name.strip():
        raise fail("study_name", f"expected a non-empty string, got {study_name!r}")

    families = raw["families"]
    if isinstance(families, str):
        families = [families]
    if not isinstance(families, list) or not families:
        raise fail("families", f"expected a non-empty list of family names, got {families!r}")
    known = _known_families()
    for i, fam in enumerate(families):
        if fam not in known:
            raise fail(f"families[{i}]", f"unknown family {fam!r} (known: {', '.join(sorted(known))})")
    if len(set(families)) != len(families):
        raise fail("families", f"duplicate families in {families}")

    base_raw = raw["base"]
    if isinstance(base_raw, str):
        base = {fam: Path(base_raw) for fam in families}
        base_keys = {fam: "base" for fam in families}
    elif isinstance(base_raw, dict):
        for fam in families:
            if fam not in base_raw:
                raise fail(f"base.{fam}", "missing: every family needs a base config")
        extra = sorted(set(base_raw) - set(families))
        if extra:
            raise fail(f"base.{extra[0]}", "family not listed in 'families'")
        base = {fam: Path(str(base_raw[fam])) for fam in families}
        base_keys = {fam: f"base.{fam}" for fam in families}
    else:
        raise fail("base", f"expected a config path or a mapping family -> path, got {base_raw!r}")
    for fam, cfg in base.items():
        if not cfg.is_file():
            raise fail(base_keys[fam], f"base config {str(cfg)!r} does not exist")

    design = raw["design"]
    if isinstance(design, str):
        design = [design]
    if not isinstance(design, list) or not design:
        raise fail("design", f"expected one of {DESIGNS} or a list of them, got {design!r}")
    for i, d in enumerate(design):
        if d not in DESIGNS:
            raise fail(f"design[{i}]", f"unknown design {d!r} (choose from {', '.join(DESIGNS)})")
    design = tuple(dict.fromkeys(design))

    widths = int_list("widths")
    train_sizes = int_list("train_sizes")
    fixed_width = pos_int("fixed_width", raw["fixed_width"]) if raw.get("fixed_width") is not None else None
    fixed_d = (
        pos_int("fixed_train_size", raw["fixed_train_size"]) if raw.get("fixed_train_size") is not None else None
    )
    needs = {
        "data": (("train_sizes", train_sizes), ("fixed_width", fixed_width)),
        "width": (("widths", widths), ("fixed_train_size", fixed_d)),
        "grid": (("widths", widths), ("train_sizes", train_sizes)),
    }
    for d in design:
        for key, value in needs[d]:
            if not value:
                raise fail(key, f"missing: design '{d}' needs it")
    for key, width in [(f"widths[{i}]", w) for i, w in enumerate(widths)] + [("fixed_width", fixed_width)]:
        for fam in families if width is not None else ():
            try:
                _check_width(fam, width)
            except ValueError as err:
                raise fail(key, f"{fam}: {err}") from None

    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise fail("overrides", f"expected a mapping of dotted config keys, got {overrides!r}")
    for key in overrides:
        if not isinstance(key, str) or not all(key.split(".")):
            raise fail(f"overrides.{key}", "expected a dotted config key such as 'data.batch_size'")

    storage = raw.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise fail("storage", f"expected an SQLAlchemy URL or 'journal:PATH', got {storage!r}")
    max_retries = raw.get("max_retries", 2)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise fail("max_retries", f"expected a non-negative integer, got {max_retries!r}")

    heartbeat = pos_float("heartbeat_interval", 15.0)
    grace = pos_float("grace_period", 120.0)
    if grace <= 2 * heartbeat:
        raise fail("grace_period", f"must exceed twice heartbeat_interval ({heartbeat:g} s), got {grace:g}")

    for key in ("data_root", "out"):
        if not isinstance(raw[key], str):
            raise fail(key, f"expected a path, got {raw[key]!r}")

    return SweepSpec(
        study_name=study_name,
        base=base,
        families=tuple(families),
        design=design,
        widths=widths,
        train_sizes=train_sizes,
        fixed_width=fixed_width,
        fixed_train_size=fixed_d,
        seeds=int_list("seeds", positive=False),
        epochs=pos_int("epochs", raw["epochs"]),
        data_root=Path(raw["data_root"]),
        out=Path(raw["out"]),
        devices=pos_int("devices", raw.get("devices", 1)),
        workers=pos_int("workers", raw.get("workers", 1)),
        trials_per_device=pos_int("trials_per_device", raw.get("trials_per_device", 1)),
        storage=storage,
        overrides=dict(overrides),
        max_retries=max_retries,
        heartbeat_interval=heartbeat,
        grace_period=grace,
        source=source,
    )


def _known_families() -> set[str]:
    from lightning_dielectric.models import FAMILIES

    return set(FAMILIES)


def _check_width(family: str, width: int) -> None:
    """Raise ValueError when ``family`` cannot be built at ``width`` (e.g. heads must divide it)."""
    from lightning_dielectric.sweep.grid import parameter_count

    parameter_count(family, width)
