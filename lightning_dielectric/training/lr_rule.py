"""Learning rate by width, as in the paper's width sweeps."""

from __future__ import annotations

from lightning_dielectric.models import FAMILIES, count_parameters

SCALED_FAMILIES = ("2b-tc", "3b")
"""TransformerConv families, whose learning rate is scaled by N(256)/N(w)."""


def lr_for_width(family: str, width: int, lr_256: float) -> float:
    """lr(w) = lr_256 · N(256)/N(w) for TransformerConv families ("2b-tc", "3b");
    lr_256 unchanged for "2b-cgc" and "magpie". N = exact parameter count (spectra width 4w)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {sorted(FAMILIES)}")
    if family not in SCALED_FAMILIES:
        return float(lr_256)
    return float(lr_256) * count_parameters(family, 256) / count_parameters(family, width)
