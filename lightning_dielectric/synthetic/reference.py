"""Plausibility check: the generator on fcc Al, Cu, Ag, Au and Pt against literature ω_D, and the
high-energy limit over the first structures of the default dataset.

Run ``python -m lightning_dielectric.synthetic.reference docs/ [N]`` to print the Markdown
tables and write ``synthetic_reference_metals.png`` (used in ``docs/synthetic_data.md``); N
(default 500) structures of seed 0 enter the high-energy summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .hamiltonian import build_tb_model
from .optics import OpticsResult, optical_response, orbital_occupations

# Experimental room-temperature fcc lattice constants (Å) and Drude plasma energies ħω_D (eV)
# of the Drude fits to optical data by Ordal et al., Appl. Opt. 24, 4493 (1985)
# (ω_p in cm⁻¹ converted with 1 eV = 8065.54 cm⁻¹).
METALS = {
    "Al": (13, 4.050, 14.75),
    "Cu": (29, 3.615, 7.39),
    "Ag": (47, 4.086, 8.99),
    "Au": (79, 4.078, 9.03),
    "Pt": (78, 3.924, 5.15),
}
FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def reference_model(name: str):
    """The tight-binding model of the fcc metal ``name`` (a key of ``METALS``)."""
    z, a, _ = METALS[name]
    return build_tb_model(a * FCC, [z], [[0.0, 0.0, 0.0]])


def reference_results() -> dict[str, OpticsResult]:
    """Default-settings results for the five fcc metals (one atom per primitive cell)."""
    return {name: optical_response(reference_model(name)) for name in METALS}


def d_occupation(name: str) -> float:
    """Projected d electrons (both spins) of the fcc metal ``name``; 0 for an atom without d orbitals."""
    model = reference_model(name)
    return float(orbital_occupations(model)[model.d_orbitals].sum())


def markdown_table(results: dict[str, OpticsResult]) -> str:
    lines = [
        "| metal | a (Å) | k mesh | projected d electrons | ħω_D TB (eV) | ħω_D literature (eV) | TB / literature "
        "| Re ε(0) | Re ε(20 eV) | max Im ε (0–20 eV) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        _, a, lit = METALS[name]
        mesh = "×".join(map(str, r.mesh))
        n_d = d_occupation(name)
        lines.append(
            f"| {name} | {a:.3f} | {mesh} | {n_d:.2f} | {r.drude:.2f} | {lit:.2f} | {r.drude / lit:.2f} "
            f"| {r.eps_re[0]:.1f} | {r.eps_re[-1]:.2f} | {r.eps_im.max():.1f} |"
        )
    return "\n".join(lines)


def high_energy_summary(n: int = 500, seed: int = 0) -> str:
    """Markdown table: |Re ε_inter(20 eV) − 1| over structures 0 … n−1 of ``seed`` (default
    settings, as in the dataset), whether every value is finite, and how many cells are left
    charged by local charge neutrality (an atom without bonds)."""
    from threadpoolctl import threadpool_limits

    from .prototypes import random_structure

    dev, finite, charged = [], 0, 0
    with threadpool_limits(1):
        for i in range(n):
            lattice, numbers, positions, _ = random_structure(np.random.default_rng([seed, i]))
            model = build_tb_model(lattice, numbers, positions)
            r = optical_response(model)
            finite += bool(np.all(np.isfinite(r.eps_re)) and np.all(np.isfinite(r.eps_im)) and np.isfinite(r.drude))
            charged += bool(np.abs(r.site_charges - model.site_electrons).max() > 1e-6)
            dev.append(abs(r.eps_re[-1] - 1.0))
    q = np.quantile(dev, [0.1, 0.5, 0.9])
    return "\n".join([
        "| structures (seed) | median \\|Re ε(20 eV) − 1\\| | 10th / 90th percentile | max | all finite | left charged |",
        "|---|---|---|---|---|---|",
        f"| {n} ({seed}) | {q[1]:.2f} | {q[0]:.2f} / {q[2]:.2f} | {max(dev):.2f} | {finite}/{n} | {charged} |",
    ])


def plot(results: dict[str, OpticsResult], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.schema import ENERGY_GRID

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        axes[0].plot(ENERGY_GRID, r.eps_re, label=f"{name} (ħω_D = {r.drude:.1f} eV)")
        axes[1].plot(ENERGY_GRID, r.eps_im, label=name)
    axes[0].set(xlabel="ħω (eV)", ylabel="Re ε_inter", ylim=(-20, 60), title="Re ε_inter (incl. vacuum 1)")
    axes[1].set(xlabel="ħω (eV)", ylabel="Im ε_inter", ylim=(0, 60), title="Im ε_inter")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    res = reference_results()
    plot(res, out / "synthetic_reference_metals.png")
    print(markdown_table(res))
    print()
    print(high_energy_summary(int(sys.argv[2]) if len(sys.argv) > 2 else 500))
