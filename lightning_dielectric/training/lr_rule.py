"""Learning rate by width, as in the paper's width sweeps."""

from __future__ import annotations

from lightning_dielectric.models import FAMILIES, count_parameters

SCALED_FAMILIES = ("2b-tc", "3b")
"""TransformerConv families, whose learning rate is scaled by N(base width)/N(w)."""


def lr_for_width(family: str, width: int, base_lr: float, base_width: int = 256) -> float:
    """The learning rate at ``width`` of a family trained at ``base_lr`` at ``base_width``:
    base_lr · N(base_width)/N(width) for the TransformerConv families ("2b-tc", "3b"), base_lr
    unchanged for "2b-cgc" and "magpie". N = exact parameter count (spectra width 4w). The
    paper's rule is base_width 256: lr(w) = lr_256 · N(256)/N(w)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {sorted(FAMILIES)}")
    if family not in SCALED_FAMILIES:
        return float(base_lr)
    return float(base_lr) * count_parameters(family, base_width) / count_parameters(family, width)
