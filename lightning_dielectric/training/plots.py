"""Matplotlib figures for TensorBoard and ``predict`` (object-oriented API, no pyplot state, no display)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def spectra_figure(energies: np.ndarray, pred: np.ndarray, true: np.ndarray, titles: list[str]) -> Figure:
    """Predicted (solid) vs true (dashed) Re and Im ε for k materials: energies (2001,) eV, spectra (k, 2001, 2)."""
    k = len(titles)
    fig = Figure(figsize=(3.2 * k, 5.0), layout="constrained")
    axes = fig.subplots(2, k, sharex=True, squeeze=False)
    for col, title in enumerate(titles):
        for row, part in enumerate(("Re ε", "Im ε")):
            ax = axes[row, col]
            ax.plot(energies, true[col, :, row], "k--", lw=1, label="true")
            ax.plot(energies, pred[col, :, row], "C0", lw=1, label="predicted")
            ax.set_ylabel(part) if col == 0 else None
        axes[0, col].set_title(title, fontsize=9)
        axes[1, col].set_xlabel("ħω (eV)")
    axes[0, 0].legend(fontsize=8)
    return fig


def parity_figure(pred: np.ndarray, true: np.ndarray) -> Figure:
    """Predicted vs true Drude frequency ω_D (eV) with the identity line."""
    fig = Figure(figsize=(4.0, 4.0), layout="constrained")
    ax = fig.subplots()
    hi = float(max(np.max(pred, initial=1.0), np.max(true, initial=1.0))) * 1.05
    ax.plot([0, hi], [0, hi], "k--", lw=1)
    ax.scatter(true, pred, s=6, alpha=0.6)
    ax.set(xlim=(0, hi), ylim=(0, hi), xlabel="true ω_D (eV)", ylabel="predicted ω_D (eV)", aspect="equal")
    mae = float(np.mean(np.abs(pred - true))) if len(true) else float("nan")
    ax.set_title(f"Drude parity, MAE {mae:.3f} eV ({len(true)} materials)", fontsize=9)
    return fig


def prediction_figure(energies: np.ndarray, eps: np.ndarray, drude: float, colour_hex: str, title: str,
                      spread: np.ndarray | None = None) -> Figure:
    """One predicted ε_inter (2001, 2) with ω_D (eV) and a swatch of the metal's colour; ``spread``
    (2001, 2): an ensemble's σ per energy, drawn as a ±1σ band."""
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, label in enumerate(("Re ε_inter", "Im ε_inter")):
        (line,) = ax.plot(energies, eps[:, k], label=label)
        if spread is not None:
            ax.fill_between(energies, eps[:, k] - spread[:, k], eps[:, k] + spread[:, k], color=line.get_color(),
                            alpha=0.3, lw=0, label=f"±1σ ({label.split()[0]})")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="ħω (eV)", ylabel="ε_inter", title=f"{title}: ω_D = {drude:.2f} eV, colour {colour_hex}")
    ax.add_patch(Rectangle((0.02, 0.82), 0.1, 0.14, transform=ax.transAxes, facecolor=colour_hex, edgecolor="k"))
    ax.legend(fontsize=8, loc="upper right")
    return fig

