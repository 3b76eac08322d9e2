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

Every key's type and limits are declared once, on its :class:`SweepSpec` field (``Annotated`` with
the rule that reads it); :func:`parse_spec` applies them, then the checks that relate keys to each
other (:func:`_check_together`). Every error is one line naming the file and the key
(``sweeps/x.yaml: key 'widths[1]': ...``).
Relative paths are taken relative to the current directory (the repository root for ``make``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import yaml

from lightning_dielectric.sweep.retention import KEEP

DESIGNS = ("data", "width", "grid")
DESIGN_NEEDS = {"data": ("train_sizes", "fixed_width"), "width": ("widths", "fixed_train_size"),
                "grid": ("widths", "train_sizes")}


class SweepSpecError(ValueError):
    """A malformed sweep file; the message names the file and the offending key."""


class _BadKey(Exception):
    """Raised by a rule; :func:`parse_spec` adds the file name."""

    def __init__(self, key: str, message: str):
        super().__init__(f"key '{key}': {message}")


@dataclass(frozen=True)
class Value:
    """A single value: ``test`` accepts the YAML value, ``words`` name what is expected,
    ``convert`` makes the field's value of it."""

    words: str
    test: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v

    def read(self, key: str, value: Any) -> Any:
        if not self.test(value):
            raise _BadKey(key, f"expected {self.words}, got {value!r}")
        return self.convert(value)


@dataclass(frozen=True)
class Name:
    """One of the names ``options()`` returns (a function: model families are imported on use)."""

    what: str
    options: Callable[[], Iterable[str]]

    def read(self, key: str, value: Any) -> str:
        known = list(self.options())
        if value not in known:
            raise _BadKey(key, f"unknown {self.what} {value!r} (known: {', '.join(known)})")
        return value


@dataclass(frozen=True)
class Distinct:
    """A non-empty list of distinct ``item`` values, read as a tuple; with ``single`` one value
    stands for a list of one. Items are named ``key[i]`` in errors."""

    item: Value | Name
    single: bool = False

    def read(self, key: str, value: Any) -> tuple:
        if self.single and not isinstance(value, list):
            value = [value]
        if not isinstance(value, list) or not value:
            raise _BadKey(key, f"expected a non-empty list, got {value!r}")
        items = tuple(self.item.read(f"{key}[{i}]", v) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise _BadKey(key, f"duplicate values in {list(items)}")
        return items


class DottedKeys:
    """A mapping of dotted config keys (``data.batch_size``) to values (see ``overrides``)."""

    def read(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _BadKey(key, f"expected a mapping of dotted config keys, got {value!r}")
        for k in value:
            if not isinstance(k, str) or not all(k.split(".")):
                raise _BadKey(f"{key}.{k}", "expected a dotted config key such as 'data.batch_size'")
        return dict(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _model_families() -> list[str]:
    from lightning_dielectric.models import FAMILIES

    return sorted(FAMILIES)


POSITIVE_INT = Value("a positive integer", lambda v: _is_int(v) and v >= 1)
NON_NEGATIVE_INT = Value("a non-negative integer", lambda v: _is_int(v) and v >= 0)
POSITIVE_NUMBER = Value("a positive number", lambda v: (_is_int(v) or isinstance(v, float)) and v > 0, float)
NON_EMPTY = Value("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
PATH = Value("a path", lambda v: isinstance(v, str), Path)
# resolved against 'families' by _check_together
BASE = Value("a config path or a mapping family -> path", lambda v: isinstance(v, (str, dict)))
STORAGE = Value("an SQLAlchemy URL or 'journal:PATH'", lambda v: isinstance(v, str) and bool(v.strip()))
FAMILY_LIST = Distinct(Name("family", _model_families), single=True)
DESIGN_LIST = Distinct(Name("design", lambda: DESIGNS), single=True)
POSITIVE_INTS = Distinct(POSITIVE_INT)
NON_NEGATIVE_INTS = Distinct(NON_NEGATIVE_INT)
OVERRIDES = DottedKeys()


KEEP_CHECKPOINTS = Name("setting", lambda: KEEP)
BOOL = Value("true or false", lambda v: isinstance(v, bool))


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. Every field but ``source`` is a key of the file; fields without a default
    are required. ``Annotated`` gives the rule that reads each key.

    Attributes:
        study_name: Optuna study name (unique within the storage).
        base: family -> base Lightning config (YAML path) that the trial config is layered on.
            In the file: one path for every family, or a mapping family -> path.
        families: model families (keys of ``lightning_dielectric.models.FAMILIES``).
        design: subset of ``data`` / ``width`` / ``grid`` (see module docstring).
        seeds: ``seed_everything`` values; every point is trained once per seed.
        epochs: ``trainer.max_epochs`` of every trial.
        data_root: dataset root passed as ``data.root``.
        out: sweep run directory (trial run dirs, storage, runs table, report).
        widths: hidden widths w of the width line and the grid (spectra width is 4w).
        train_sizes: training-set sizes D (structures) of the data line and the grid.
        fixed_width: w of the data line.
        fixed_train_size: D of the width line.
        devices: ``trainer.devices`` per trial (more than 1: DDP inside the trial).
        workers: device groups of one driver, each ``devices`` GPUs (on CPU: trial slots);
            ``--workers`` overrides.
        trials_per_device: trials sharing each device group at once (``--trials-per-device``
            overrides); a driver runs ``workers * trials_per_device`` trials at once.
        storage: Optuna storage: SQLAlchemy URL, ``journal:PATH``, or None for
            ``sqlite:///<out>/optuna.db``.
        overrides: extra config values for every trial, dotted keys (``data.batch_size: 256``).
        max_retries: reruns of a point whose trial process failed before it counts as failed.
        heartbeat_interval: seconds between a running trial's heartbeats in the storage.
        grace_period: seconds without a heartbeat after which a running trial counts as dead.
        keep_checkpoints: what a completed trial keeps: ``all``, ``best`` or ``best-weights``
            (``sweep/retention.py``); a running trial always keeps its ``last.ckpt``.
        fuse_seeds: train the seeds of each (family, w, D) together in one fused trial
            (``--fuse-seeds`` overrides; ``sweep/grid.py``, docs/sweeps.md).
        source: the sweep file's name, for messages.
    """

    study_name: Annotated[str, NON_EMPTY]
    base: Annotated[dict[str, Path], BASE]
    families: Annotated[tuple[str, ...], FAMILY_LIST]
    design: Annotated[tuple[str, ...], DESIGN_LIST]
    seeds: Annotated[tuple[int, ...], NON_NEGATIVE_INTS]
    epochs: Annotated[int, POSITIVE_INT]
    data_root: Annotated[Path, PATH]
    out: Annotated[Path, PATH]
    widths: Annotated[tuple[int, ...], POSITIVE_INTS] = ()
    train_sizes: Annotated[tuple[int, ...], POSITIVE_INTS] = ()
    fixed_width: Annotated[int | None, POSITIVE_INT] = None
    fixed_train_size: Annotated[int | None, POSITIVE_INT] = None
    devices: Annotated[int, POSITIVE_INT] = 1
    workers: Annotated[int, POSITIVE_INT] = 1
    trials_per_device: Annotated[int, POSITIVE_INT] = 1
    storage: Annotated[str | None, STORAGE] = None
    overrides: Annotated[dict[str, Any], OVERRIDES] = field(default_factory=dict)
    max_retries: Annotated[int, NON_NEGATIVE_INT] = 2
    heartbeat_interval: Annotated[float, POSITIVE_NUMBER] = 15.0
    grace_period: Annotated[float, POSITIVE_NUMBER] = 120.0
    keep_checkpoints: Annotated[str, KEEP_CHECKPOINTS] = "all"
    fuse_seeds: Annotated[bool, BOOL] = False
    source: str = "<sweep>"

    def replace(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    @property
    def storage_url(self) -> str:
        """The storage URL, defaulting to an SQLite file inside ``out``."""
        return self.storage or f"sqlite:///{(self.out / 'optuna.db').resolve()}"


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
    try:
        values = _read_keys(raw)
        _check_together(values)
    except _BadKey as err:
        raise SweepSpecError(f"{source}: {err}") from None
    return SweepSpec(**values, source=source)


def _read_keys(raw: dict) -> dict[str, Any]:
    """Every key of ``raw`` read by its field's rule; unknown and missing keys are errors (a key
    set to null counts as absent)."""
    hints = get_type_hints(SweepSpec, include_extras=True)
    fields = [f for f in dataclasses.fields(SweepSpec) if hasattr(hints[f.name], "__metadata__")]
    rules = {f.name: hints[f.name].__metadata__[0] for f in fields}
    unknown = sorted((k for k in raw if k not in rules), key=str)
    if unknown:
        raise _BadKey(unknown[0], f"unknown key (allowed: {', '.join(rules)})")
    for f in fields:
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and raw.get(f.name) is None:
            raise _BadKey(f.name, "missing")
    return {key: rule.read(key, raw[key]) for key, rule in rules.items() if raw.get(key) is not None}


def _check_together(values: dict[str, Any]) -> None:
    """The rules between keys: what each design needs, a base config for every family, widths every
    family can be built at, and a grace period over two heartbeats. Resolves ``base``."""
    families = values["families"]
    for design in values["design"]:
        for key in DESIGN_NEEDS[design]:
            if not values.get(key):
                raise _BadKey(key, f"missing: design '{design}' needs it")
    values["base"] = _base_configs(values["base"], families)
    widths = [(f"widths[{i}]", w) for i, w in enumerate(values.get("widths", ()))]
    for key, width in widths + [("fixed_width", values.get("fixed_width"))]:
        for family in families if width is not None else ():
            try:
                _check_width(family, width)
            except ValueError as err:
                raise _BadKey(key, f"{family}: {err}") from None
    heartbeat = values.get("heartbeat_interval", SweepSpec.heartbeat_interval)
    grace = values.get("grace_period", SweepSpec.grace_period)
    if grace <= 2 * heartbeat:
        raise _BadKey("grace_period", f"must exceed twice heartbeat_interval ({heartbeat:g} s), got {grace:g}")


def _base_configs(base: str | dict, families: tuple[str, ...]) -> dict[str, Path]:
    """family -> existing base config, from one path for all or a mapping that names every family."""
    if isinstance(base, str):
        paths = {family: (Path(base), "base") for family in families}
    else:
        for family in families:
            if family not in base:
                raise _BadKey(f"base.{family}", "missing: every family needs a base config")
        extra = sorted(set(base) - set(families), key=str)
        if extra:
            raise _BadKey(f"base.{extra[0]}", "family not listed in 'families'")
        paths = {family: (Path(str(base[family])), f"base.{family}") for family in families}
    for path, key in paths.values():
        if not path.is_file():
            raise _BadKey(key, f"base config {str(path)!r} does not exist")
    return {family: path for family, (path, _) in paths.items()}


def _check_width(family: str, width: int) -> None:
    """Raise ValueError when ``family`` cannot be built at ``width`` (e.g. heads must divide it)."""
    from lightning_dielectric.models import count_parameters

    count_parameters(family, width)
