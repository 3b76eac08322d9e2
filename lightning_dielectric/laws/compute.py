"""Compute of runs imported without it: FLOPs estimated from per-structure counts.

The paper's JSON holds no compute. For its runs, ``flops_per_structure`` is the forward FLOP
count of the same architecture (this package's family at the run's width) on stand-in
structures (``training.flops.synthetic_batches``: the synthetic generator's crystals with the
paper's 5.5 Å cutoff), and ``flops`` = 3 × that × D × epochs, with the paper's 500 epochs
(``num_epoch`` of its ``research/scaling_law_base_config`` files; no early stopping). Rows get
``flops_estimated = True``; families this package does not build (``optimate``) get NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lightning_dielectric.training.flops import TRAIN_FLOP_FACTOR

PAPER_EPOCHS = 500


def estimate_flops(df: pd.DataFrame, epochs: int = PAPER_EPOCHS, batches=None) -> pd.DataFrame:
    """``df`` with ``flops``, ``flops_per_structure`` and ``flops_estimated`` filled for every
    family this package builds (see the module docstring); ``batches`` default to the synthetic ones."""
    from lightning_dielectric.models.families import FAMILIES
    from lightning_dielectric.training.flops import family_flops_per_structure, synthetic_batches

    if not epochs > 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    df = df.copy()
    per_structure = np.full(len(df), np.nan)
    for family in sorted(set(df["family"]) & set(FAMILIES)):
        rows = (df["family"] == family).to_numpy()
        if batches is None:
            batches = synthetic_batches()
        counts = family_flops_per_structure(family, sorted(set(df.loc[rows, "width"].astype(int))), batches)
        per_structure[rows] = [counts[int(w)] for w in df.loc[rows, "width"]]
    df["flops_per_structure"] = per_structure
    df["flops"] = TRAIN_FLOP_FACTOR * per_structure * df["D"].astype(float) * epochs
    df["flops_estimated"] = np.isfinite(per_structure)
    df["epochs"] = np.where(np.isfinite(per_structure), epochs, df["epochs"])
    return df
