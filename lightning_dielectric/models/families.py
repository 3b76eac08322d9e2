"""Model families used by configs and sweeps, and their exact parameter counts."""

from __future__ import annotations

import torch

from lightning_dielectric.models.magpie import MagpieBaseline
from lightning_dielectric.models.optimetal2b import OptiMetal2B
from lightning_dielectric.models.optimetal3b import OptiMetal3B

FAMILIES: dict[str, tuple[type[torch.nn.Module], dict]] = {
    "2b-cgc": (OptiMetal2B, {"conv": "cgc"}),
    "2b-tc": (OptiMetal2B, {"conv": "tc"}),
    "3b": (OptiMetal3B, {}),
    "magpie": (MagpieBaseline, {}),
}


def build_model(family: str, width: int, **kwargs) -> torch.nn.Module:
    """Instantiate ``family`` at hidden width ``width`` (spectra width ``spectra_width_for(width)`` unless given)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {sorted(FAMILIES)}")
    cls, fixed = FAMILIES[family]
    return cls(width=width, **fixed, **kwargs)


def num_parameters(model: torch.nn.Module) -> int:
    """Σ numel over all parameters (buffers such as batch-norm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_parameters(family: str, width: int) -> int:
    """Exact parameter count N of ``family`` at width w (default spectra width), built without memory."""
    with torch.device("meta"):
        return num_parameters(build_model(family, width))
