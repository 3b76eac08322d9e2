"""PNG figures of ``info.dataset_stats``: element frequency on the periodic table, atoms per cell,
Drude frequencies and the mean ± standard deviation of the spectra, per split. The spectra figure
has a second row from ZOOM_EV on, scaled to that range: near 0 eV the interband ε of metals is
often an order of magnitude larger and would flatten the rest of the spectrum."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
ZOOM_EV = (2.0, 20.0)


def write_plots(stats: dict, directory: str | Path) -> list[Path]:
    """Write the four figures into ``directory``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    subset = f" (training subset D = {stats['train_size']})" if stats["train_size"] else ""
    paths = [
        _element_heatmap(stats["all"]["elements"], directory / "elements_periodic_table.png", subset),
        _atoms_per_cell(stats["splits"], directory / "atoms_per_cell.png", subset),
        _drude(stats["splits"], directory / "drude_frequency.png", subset),
        _spectra(stats["splits"], directory / "spectra_mean_std.png", subset),
    ]
    return paths


def _element_heatmap(elements: dict[str, int], path: Path, subset: str) -> Path:
    import matplotlib.pyplot as plt
    from pymatgen.util.plotting import periodic_table_heatmap

    data = elements or {"H": 0}
    ax = periodic_table_heatmap(
        data, cbar_label="materials containing the element", cmap="viridis", blank_color="lightgrey",
        symbol_fontsize=11, pymatviz=False,
    )
    ax.set_title(f"Element frequency{subset}")
    ax.figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    return path


def _figure(ncols: int = 1, nrows: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes[0] if nrows == 1 else axes.reshape(-1)


def _atoms_per_cell(splits: dict, path: Path, subset: str) -> Path:
    fig, (ax,) = _figure()
    width = 0.8 / len(splits)
    for k, (name, s) in enumerate(splits.items()):
        hist = s["atoms_per_cell"]["histogram"]
        if hist:
            sizes = np.array(list(hist), dtype=float)
            counts = np.array(list(hist.values()), dtype=float)
            ax.bar(sizes + (k - 1) * width, counts / counts.sum(), width, label=f"{name} ({s['materials']})",
                   color=SPLIT_COLOURS.get(name))
    ax.set(xlabel="atoms per cell", ylabel="fraction of materials", title=f"Atoms per cell{subset}")
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


def _drude(splits: dict, path: Path, subset: str) -> Path:
    fig, (ax,) = _figure()
    values = [s["_drude_values"] for s in splits.values() if len(s["_drude_values"])]
    bins = np.linspace(0.0, max(float(np.max(v)) for v in values) * 1.02, 41) if values else 10
    for name, s in splits.items():
        if len(s["_drude_values"]):
            ax.hist(s["_drude_values"], bins=bins, density=True, histtype="step", lw=1.5,
                    label=f"{name} ({s['materials']})", color=SPLIT_COLOURS.get(name))
    ax.set(xlabel="ω_D (RMS over x, y, z) / eV", ylabel="density", title=f"Drude frequency{subset}")
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


def _spectra(splits: dict, path: Path, subset: str) -> Path:
    spectra_figure(splits, subset).savefig(path, dpi=120)
    return path


def spectra_figure(splits: dict, subset: str = ""):
    """Mean ± std of Re and Im ε_inter per split: 0-20 eV (top) and ZOOM_EV scaled to its own range
    (bottom)."""
    fig, axes = _figure(2, 2)
    for row, zoom in enumerate((None, ZOOM_EV)):
        for ax, part, label in zip(axes[2 * row : 2 * row + 2], ("re", "im"), ("Re ε_inter", "Im ε_inter")):
            low, high = np.inf, -np.inf
            for name, s in splits.items():
                if not s["materials"]:
                    continue
                sp = s["spectra"]
                e = np.asarray(sp["energy_ev"])
                mean, std = np.asarray(sp[f"eps_{part}_mean"]), np.asarray(sp[f"eps_{part}_std"])
                colour = SPLIT_COLOURS.get(name)
                ax.plot(e, mean, color=colour, lw=1.2, label=f"{name} mean")
                ax.fill_between(e, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
                if zoom:
                    inside = (e >= zoom[0]) & (e <= zoom[1])
                    low, high = min(low, (mean - std)[inside].min()), max(high, (mean + std)[inside].max())
            title = f"{label}: mean ± std{subset}" if zoom is None else f"{label}, {zoom[0]:g}-{zoom[1]:g} eV"
            ax.set(xlabel="energy / eV", ylabel=f"{label} (Tr/3)", title=title)
            if zoom and np.isfinite(low):
                pad = 0.05 * (high - low or 1.0)
                ax.set(xlim=zoom, ylim=(low - pad, high + pad))
            ax.legend()
    return fig
