"""Composition-only baseline: matminer's Magpie ``ElementProperty`` statistics → MLP → heads.

The 22 Magpie elemental properties are tabulated once per element (from matminer's
``MagpieData``); the 6 statistics per property (minimum, maximum, range, mean, avg_dev, mode —
the ``ElementProperty.from_preset("magpie")`` preset, in its feature order) are computed in torch
from ``batch.z`` / ``batch.batch`` with scatter ops, weighting every atom of the cell equally
(= element fractions). ``mode`` is the value of the most abundant element, the minimum on ties.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from lightning_dielectric.models.embeddings import EMBEDDING_MAX_Z
from lightning_dielectric.models.geometry import graph_batch
from lightning_dielectric.models.heads import DielectricHeads
from lightning_dielectric.models.blocks import mlp
from lightning_dielectric.models.network import DielectricNetwork

MAGPIE_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence", "NsUnfilled",
    "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa", "GSbandgap", "GSmagmom",
    "SpaceGroupNumber",
)
MAGPIE_STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
NUM_FEATURES = len(MAGPIE_PROPERTIES) * len(MAGPIE_STATS)


def magpie_table() -> Tensor:
    """(EMBEDDING_MAX_Z + 1, 22) float64 Magpie elemental properties; row z = element z, row 0 is NaN."""
    from matminer.utils.data import MagpieData
    from pymatgen.core import Element

    source = MagpieData()
    rows = [[float("nan")] * len(MAGPIE_PROPERTIES)]
    for z in range(1, EMBEDDING_MAX_Z + 1):
        element = Element.from_Z(z)
        rows.append([float(source.get_elemental_property(element, p)) for p in MAGPIE_PROPERTIES])
    return torch.tensor(rows, dtype=torch.float64)


class MagpieFeatures(torch.nn.Module):
    """Atomic numbers z (n,) and graph index (n,) → (B, 132) Magpie features (raw units, float64
    by default), ordered property-major as matminer's ``feature_labels()``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", magpie_table(), persistent=False)

    def forward(self, z: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        vals = self.table.index_select(0, z)  # (n, 22)
        ones = torch.ones_like(z, dtype=vals.dtype)
        n_atoms = scatter(ones, batch, dim=0, dim_size=num_graphs, reduce="sum").unsqueeze(-1)
        key = batch * (EMBEDDING_MAX_Z + 1) + z
        per_element = scatter(ones, key, dim=0, dim_size=num_graphs * (EMBEDDING_MAX_Z + 1), reduce="sum")
        count = per_element.index_select(0, key)  # atoms of this atom's element in its structure
        most = scatter(count, batch, dim=0, dim_size=num_graphs, reduce="max").index_select(0, batch)

        minimum = scatter(vals, batch, dim=0, dim_size=num_graphs, reduce="min")
        maximum = scatter(vals, batch, dim=0, dim_size=num_graphs, reduce="max")
        mean = scatter(vals, batch, dim=0, dim_size=num_graphs, reduce="sum") / n_atoms
        dev = (vals - mean.index_select(0, batch)).abs()
        avg_dev = scatter(dev, batch, dim=0, dim_size=num_graphs, reduce="sum") / n_atoms
        candidates = torch.where((count == most).unsqueeze(-1), vals, torch.full_like(vals, float("inf")))
        mode = scatter(candidates, batch, dim=0, dim_size=num_graphs, reduce="min")
        stats = torch.stack([minimum, maximum, maximum - minimum, mean, avg_dev, mode], dim=-1)
        return stats.flatten(1)  # (B, 22 · 6), property-major


class MagpieBaseline(DielectricNetwork):
    """Composition → (ε_inter (B, 2001, 2), ω_D (B,) eV) without any structural information.

    Magpie features are standardised with fixed per-property statistics over elements 1…86
    (location and scale for minimum/maximum/mean/mode, scale only for range/avg_dev), then
    MLP 132 → w → w → w and the spectra/Drude heads of the graph models. It reads the atoms only
    (its graphs keep the default ``cutoff`` and no triplets).
    """

    def __init__(self, width: int = 256, spectra_width: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.features = MagpieFeatures()
        elements = self.features.table[1:]
        mu, sigma = elements.mean(0), elements.std(0)
        is_location = torch.tensor([s in ("minimum", "maximum", "mean", "mode") for s in MAGPIE_STATS])
        shift = mu.unsqueeze(-1) * is_location.to(mu.dtype)
        scale = sigma.unsqueeze(-1).expand(-1, len(MAGPIE_STATS))
        self.register_buffer("shift", shift.flatten(), persistent=False)
        self.register_buffer("scale", scale.flatten(), persistent=False)
        self.trunk = mlp([NUM_FEATURES, width, width, width])
        self.heads = DielectricHeads(width, spectra_width)

    def forward(self, data) -> tuple[Tensor, Tensor]:
        batch, num_graphs = graph_batch(data)
        f = (self.features(data.z, batch, num_graphs) - self.shift) / self.scale
        return self.heads(self.trunk(f.to(self.trunk.lins[0].weight.dtype)))
