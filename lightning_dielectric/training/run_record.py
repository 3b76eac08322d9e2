"""``RunRecord``: the one summary of a training run, the file ``result.json`` in its run directory.

The ``RunResult`` callback writes it after every validation epoch; the sweep driver reads it to
score a trial, to tell a finished run from an interrupted one and to show progress. The file is a
JSON object with a ``version`` key (``RECORD_VERSION``) and the fields below. A file without
``version`` was written before the record had one and reads as version 1, which lacked ``family``
and ``delta_e``; version 2 lacked ``stopped_epoch`` (missing fields of older versions read as
None). Standard library only: the sweep's stand-in trial imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

RECORD_FILE = "result.json"
RECORD_VERSION = 3


class RunRecordError(ValueError):
    """A run record that cannot be read; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class RunRecord:
    """One training run: best validation losses, progress, model size and compute.

    Losses are the validation values at ``best_epoch`` (0-based), the epoch with the lowest
    ``val_loss`` so far: ``val_loss`` = eps_weight · ``eps_loss`` + drude_weight · ``drude_loss``,
    ``eps_loss`` the MAE of Re and Im ε over the 2001-point energy grid (dimensionless),
    ``drude_loss`` the MAE of the Drude frequency ω_D (eV), ``delta_e`` the per-material mean
    CIE76 colour difference ΔE*ab. ``epochs_done`` of ``max_epochs`` (the trainer's limit; None
    when unset) ran; ``finished`` once all ran or ``fit`` returned normally (early stopping).
    ``num_parameters`` is the model's exact parameter count N; ``family`` the sweep's family
    name (``"2b-tc"``, ...) from the config (``--result.family``; None when not given).
    Compute: ``flops_per_structure`` forward FLOPs per structure (None when not measured),
    ``structures_seen`` structures in training steps (all ranks), ``flops`` training FLOPs
    (3 × forward per structure × structures seen), ``train_wall_s`` seconds in ``fit``,
    ``device`` (``cpu`` / ``cuda:<model>``), ``num_devices`` (processes, all nodes) and
    ``device_hours`` (train_wall_s × num_devices / 3600). ``stopped_epoch``: for a member of a fused
    run, the epoch (0-based) in which its training loss became non-finite; it trained no further, and
    its losses are its best before that (None when it did not stop, and for solo runs).
    """

    val_loss: float
    eps_loss: float
    drude_loss: float
    delta_e: float | None = field(metadata={"since": 2})
    best_epoch: int
    epochs_done: int
    max_epochs: int | None
    finished: bool
    num_parameters: int
    family: str | None = field(metadata={"since": 2})
    flops_per_structure: float | None
    structures_seen: int
    flops: float | None
    train_wall_s: float
    device: str
    num_devices: int
    device_hours: float
    stopped_epoch: int | None = field(default=None, metadata={"since": 3})

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any, source: str | Path) -> RunRecord:
        """The record in ``data`` (a parsed JSON object); ``source`` names it in errors."""
        if not isinstance(data, dict):
            raise RunRecordError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("version", 1)
        if isinstance(version, bool) or version not in range(1, RECORD_VERSION + 1):
            raise RunRecordError(f"{source}: key 'version': unknown run-record version {version!r} "
                                 f"(this package reads 1 to {RECORD_VERSION})")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data and f.metadata.get("since", 1) > version:
                values[f.name] = None
            elif f.name not in data:
                raise RunRecordError(f"{source}: key {f.name!r} missing (run record version {version})")
            else:
                values[f.name] = _typed(data[f.name], hints[f.name], f"{source}: key {f.name!r}")
        unknown = sorted(set(data) - set(values) - {"version"})
        if unknown:
            raise RunRecordError(f"{source}: unknown key {unknown[0]!r} (run record version {version})")
        return cls(**values)

    def write(self, path: str | Path) -> None:
        """Replace ``path`` atomically (readers never see a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """The record in the file ``path`` (``OSError`` when unreadable, ``RunRecordError`` when invalid)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunRecordError(f"{path}: not JSON ({err})") from None
        return cls.from_json(data, path)


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the annotation ``hint`` (an int is accepted as a float)."""
    allowed = get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):  # a JSON true/false is only a bool, never a number
        if bool in allowed:
            return value
    elif float in allowed and isinstance(value, (int, float)):
        return float(value)
    elif any(isinstance(value, t) for t in allowed if t not in (type(None), bool)):
        return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise RunRecordError(f"{where}: expected {names}, got {value!r}")
