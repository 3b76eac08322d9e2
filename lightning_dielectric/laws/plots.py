"""Plots of ``laws fit`` (matplotlib, Agg): per-axis scaling, the (N, D) grid, saved as PNG + SVG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .forms import FORMS
from .summary import best_records


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_axis(records: list[dict], series_by_key: dict, axis: str):
    """Log-log plot of one axis: mean ± std over seeds per family, best-AICc curve of each."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    best = best_records(records)
    families = sorted({fam for fam, _ in series_by_key})
    for (fam, ax_name), s in sorted(series_by_key.items()):
        if ax_name != axis:
            continue
        color = f"C{families.index(fam) % 10}"
        p = s.points
        ax.errorbar(p.x, p.mean, yerr=p.std, fmt="o", ms=4, capsize=3, color=color, label=fam)
        rec = best.get((fam, axis))
        if rec is not None:
            grid = np.logspace(np.log10(p.x.min() / 1.3), np.log10(p.x.max() * 1.3), 200)
            ax.plot(grid, FORMS[rec["form"]](grid, rec["params"]), "--", color=color, lw=1.2,
                    label=f"{fam}: {rec['form']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("D (training structures)" if axis == "D" else "N (parameters)")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_grid(records: list[dict], s) -> object:
    """Measured mean L over (N, D) with the best 2D form's contours, and L(N) / L(D) cuts."""
    plt = pyplot()
    from matplotlib.colors import LogNorm

    rec = best_records(records).get((s.family, "ND"))
    n_vals, d_vals = np.unique(s.points.x[0]), np.unique(s.points.x[1])
    grid = np.full((len(d_vals), len(n_vals)), np.nan)
    for (n, d), m in zip(s.points.x.T, s.points.mean):
        grid[np.searchsorted(d_vals, d), np.searchsorted(n_vals, n)] = m
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.8))
    ax = axes[0]
    mesh = ax.pcolormesh(n_vals, d_vals, grid, shading="nearest", norm=LogNorm(), cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="mean validation loss")
    if rec is not None:
        nn, dd = np.meshgrid(np.logspace(*np.log10(n_vals[[0, -1]]), 100), np.logspace(*np.log10(d_vals[[0, -1]]), 100))
        fitted = FORMS[rec["form"]]((nn.ravel(), dd.ravel()), rec["params"]).reshape(nn.shape)
        cs = ax.contour(nn, dd, fitted, levels=8, colors="white", linewidths=0.8)
        ax.clabel(cs, fontsize=6, fmt="%.2f")
    ax.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="D (training structures)",
           title=f"{s.family}: L(N, D)" + (f", {rec['form']} contours" if rec else ""))
    cmap = plt.get_cmap("viridis_r")
    for ax, (xs, others, other_axis, label) in zip(axes[1:], ((n_vals, d_vals, 1, "N (parameters)"),
                                                             (d_vals, n_vals, 0, "D (training structures)"))):
        for j, other in enumerate(others):
            sel = s.points.x[other_axis] == other
            x = s.points.x[1 - other_axis][sel]
            color = cmap(j / max(len(others) - 1, 1))
            ax.errorbar(x, s.points.mean[sel], yerr=s.points.std[sel], fmt="o", ms=3, capsize=2, color=color,
                        label=f"{'D' if other_axis else 'N'} = {other:,.0f}")
            if rec is not None:
                fine = np.logspace(np.log10(xs[0] / 1.2), np.log10(xs[-1] * 1.2), 100)
                pair = (fine, np.full_like(fine, other)) if other_axis else (np.full_like(fine, other), fine)
                ax.plot(fine, FORMS[rec["form"]](pair, rec["params"]), "--", color=color, lw=1)
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="validation loss")
        ax.legend(fontsize=6)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig, stem: Path, dpi: int = 150) -> tuple[list[Path], bytes]:
    """PNG and SVG next to each other; returns the paths and the PNG bytes (for TensorBoard)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    paths[0].write_bytes(buf.getvalue())
    fig.savefig(paths[1])
    return paths, buf.getvalue()


def plot_frontier(df, frontiers: list[dict]):
    """Left: validation loss against training FLOPs, every run a point, with each family's measured
    frontier (solid) and law frontier (dashed). Right: N* and D* of the frontiers against FLOPs."""
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    families = sorted(df["family"].unique())
    for fam in families:
        color = f"C{families.index(fam) % 10}"
        rows = df[(df["family"] == fam) & np.isfinite(df["flops"].astype(float))]
        ax.scatter(rows["flops"], rows["val_loss"], s=10, alpha=0.5, color=color, label=f"{fam} runs")
    for f in frontiers:
        color = f"C{families.index(f['family']) % 10}"
        style = "--" if f["source"].endswith("law") else "-"
        ax.plot(f["compute"], f["loss"], style, color=color, lw=1.3, label=f"{f['family']}: {f['source']}")
        ax2.plot(f["compute"], f["n_star"], style, color=color, marker="o" if style == "-" else None, ms=3,
                 label=f"{f['family']} N*: {f['source']}")
        ax2.plot(f["compute"], f["d_star"], style, color=color, marker="s" if style == "-" else None, ms=3, alpha=0.6,
                 label=f"{f['family']} D*: {f['source']}")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="validation loss",
           title="loss against compute")
    ax2.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="N* (parameters), D* (structures)",
            title="compute-optimal allocation")
    for a in (ax, ax2):
        a.legend(fontsize=6)
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig
