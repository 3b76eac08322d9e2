"""The paper's invariant GNNs (OptiMetal2B, OptiMetal3B) and a composition-only baseline.

Every model is a ``DielectricNetwork``: it maps a ``CrystalGraph`` batch to ``(eps, drude)``:
ε_inter (B, 2001, 2) = (Re, Im) on the 0–20 eV grid and the Drude frequency ω_D (B,) in eV, and
declares the graph it reads (``graph_cutoffs``).
"""

from lightning_dielectric.models.embeddings import EMBEDDING_MAX_Z, check_atomic_numbers
from lightning_dielectric.models.families import FAMILIES, build_model, count_parameters, num_parameters
from lightning_dielectric.models.heads import spectra_width_for
from lightning_dielectric.models.magpie import MagpieBaseline, MagpieFeatures
from lightning_dielectric.models.network import DielectricNetwork
from lightning_dielectric.models.optimetal2b import OptiMetal2B
from lightning_dielectric.models.optimetal3b import OptiMetal3B

__all__ = [
    "FAMILIES",
    "DielectricNetwork",
    "EMBEDDING_MAX_Z",
    "MagpieBaseline",
    "MagpieFeatures",
    "OptiMetal2B",
    "OptiMetal3B",
    "build_model",
    "check_atomic_numbers",
    "count_parameters",
    "num_parameters",
    "spectra_width_for",
]
