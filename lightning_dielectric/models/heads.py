"""Output heads shared by all model families."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_dielectric.data.schema import N_ENERGIES
from lightning_dielectric.models.blocks import mlp


def spectra_width_for(width: int) -> int:
    """The spectra head's width s for hidden width w when none is given: 4w (the paper's rule)."""
    return 4 * int(width)


class DielectricHeads(torch.nn.Module):
    """Structure features (B, w) → ε_inter (B, 2001, 2) = (Re, Im) on ``ENERGY_GRID`` (0–20 eV) and
    ω_D (B,) in eV.

    Spectra head MLP w → s → s → 2·2001 (s = ``spectra_width``, default ``spectra_width_for(w)``); Drude head
    MLP w → w → w → 1 followed by ReLU (ω_D ≥ 0). Member-major features (B, K·w) of a fused
    network of K > 1 members (``models.members``) give (K, B, 2001, 2) and (K, B).
    """

    def __init__(self, width: int, spectra_width: int | None = None):
        super().__init__()
        s = spectra_width_for(width) if spectra_width is None else int(spectra_width)
        self.spectra = mlp([width, s, s, 2 * N_ENERGIES])
        self.drude = mlp([width, width, width, 1])

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        members = h.size(-1) // self.drude.lins[0].weight.size(1)
        eps = self.spectra(h).view(-1, members, N_ENERGIES, 2).transpose(0, 1)
        drude = torch.relu(self.drude(h)).T
        return (eps[0], drude[0]) if members == 1 else (eps, drude)
