"""Shared fixtures: a tiny dataset in the project's Parquet format.

Structures are random small cells of metallic elements; spectra are smooth functions of the
composition (not physics: tests that need physics use the synthetic generator directly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightning_dielectric.data.schema import ENERGY_GRID, records_to_table
from lightning_dielectric.data.writer import write_dataset

ELEMENTS = [13, 22, 26, 28, 29, 40, 46, 47, 50, 78, 79, 83]


def random_record(rng: np.random.Generator, index: int) -> dict:
    """One random structure: a cubic-ish cell of 1–4 atoms at least 2 Å apart."""
    n = int(rng.integers(1, 5))
    a = 2.8 * n ** (1 / 3) + rng.uniform(0.0, 0.5)
    lattice = np.eye(3) * a + rng.normal(0, 0.1, (3, 3))
    while True:
        frac = rng.uniform(0, 1, (n, 3))
        cart = frac @ lattice
        d = np.linalg.norm(cart[:, None] - cart[None], axis=-1) + np.eye(n) * 99
        if d.min() > 2.0:
            break
    z = rng.choice(ELEMENTS, n)
    zbar = z.mean() / 83
    peak = 1.0 + 6.0 * zbar
    im = 10 * zbar * np.exp(-((ENERGY_GRID - peak) ** 2) / 2.0)
    re = 1.0 + 8 * zbar * np.exp(-((ENERGY_GRID - peak + 1) ** 2) / 3.0)
    from pymatgen.core import Composition, Element

    formula = Composition({Element.from_Z(int(k)): 1 for k in z}).reduced_formula
    return {
        "mat_id": f"fx-{index:05d}",
        "formula": formula,
        "e_above_hull": float(rng.uniform(0, 0.1)),
        "lattice": lattice,
        "atomic_numbers": z,
        "positions": cart,
        "eps_re": re,
        "eps_im": im,
        "drude": float(2 + 10 * zbar),
    }


def make_dataset(root: Path, n: int = 64, seed: int = 0, **kwargs) -> Path:
    rng = np.random.default_rng(seed)
    records = [random_record(rng, i) for i in range(n)]
    write_dataset([records_to_table(records[i : i + 16]) for i in range(0, n, 16)], root, seed=seed, **kwargs)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 64-material dataset (about 80/10/10 by formula) written with the project's writer."""
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", n=64)
