"""``lightning-dielectric params --config CFG [--width W]``: exact parameter count of a configured model.

The config is a ``lightning fit`` YAML whose ``model`` section holds the network as
``model: {model: {class_path, init_args}}`` (or with the LightningModule itself given as
``model: {class_path, init_args: {model: {...}}}``). ``--width W`` builds it at width W with
spectra width 4W; otherwise the configured ``init_args`` are used as they are.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
import yaml

from lightning_dielectric.models import num_parameters, spectra_width_for


def network_spec(config: dict, source: str) -> tuple[str, dict]:
    """(class_path, init_args) of the network in a ``lightning fit`` config dict."""
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise ValueError(f"{source}: missing key 'model'")
    if "model" not in model and isinstance(model.get("init_args"), dict):
        model = model["init_args"]
    spec = model.get("model")
    if isinstance(spec, str):  # jsonargparse shorthand: just the class path
        spec = {"class_path": spec}
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"{source}: missing key 'model.model.class_path'")
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise ValueError(f"{source}: 'model.model.init_args' must be a mapping")
    return str(spec["class_path"]), dict(init_args)


def build_network(class_path: str, init_args: dict, source: str) -> torch.nn.Module:
    """Import ``class_path`` and instantiate it on the meta device (no memory, no initialisation)."""
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"{source}: model.model.class_path {class_path!r} cannot be imported") from None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"{source}: model.model.class_path {class_path!r} is not a torch.nn.Module")
    try:
        with torch.device("meta"):
            return cls(**init_args)
    except TypeError as err:
        raise ValueError(f"{source}: model.model.init_args do not fit {class_path}: {err}") from None


def config_parameter_count(path: str | Path, width: int | None = None) -> int:
    """Exact parameter count of the network configured in ``path`` (at ``width``, spectra 4·width)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read config: {err}") from None
    class_path, init_args = network_spec(config, str(path))
    if width is not None:
        init_args.update(width=width, spectra_width=spectra_width_for(width))
    return num_parameters(build_network(class_path, init_args, str(path)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lightning-dielectric params", description="Print the exact parameter count of a configured model."
    )
    parser.add_argument("--config", required=True, help="lightning fit YAML (configs/*.yaml)")
    parser.add_argument("--width", type=int, help="hidden width w (spectra width 4w); default: the config's")
    args = parser.parse_args(argv)
    if args.width is not None and args.width < 1:
        parser.error("--width must be a positive integer")
    try:
        print(config_parameter_count(args.config, args.width))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
