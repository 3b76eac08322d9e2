"""Outputs of ``laws fit``: ``fits.json``, ``report.md``, LaTeX tables, PNG + SVG plots and a
TensorBoard event file (written with tensorboard's own writer: no torch import).

Layout of DIR: ``fits.json``, ``report.md``, ``tables/{fits_D,fits_N,fits_ND,aicc}.tex``,
``plots/scaling_D.{png,svg}``, ``plots/scaling_N.{png,svg}``, ``plots/grid_<family>.{png,svg}``,
``tensorboard/events.out.tfevents.*``.
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import numpy as np

from .forms import FORMS

AXIS_WORD = {"D": "data", "N": "parameter", "ND": "joint (N, D)"}
AXIS_TITLE = {"D": "Data scaling (x = D, training structures)", "N": "Parameter scaling (x = N, parameters)",
              "ND": "Joint scaling over the (N, D) grid"}
SCALES = {"x0", "xc", "n_c", "d_c"}


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value):
    """NaN/inf → None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return None
    return value


def public(records: list[dict]) -> list[dict]:
    """Records without the private (``_``-prefixed) entries."""
    return [_clean({k: v for k, v in r.items() if not k.startswith("_")}) for r in records]


def write_fits_json(records: list[dict], path: Path) -> None:
    path.write_text(json.dumps(public(records), indent=1, default=_json_default) + "\n")


# ---------------------------------------------------------------------------------------------
# formatting


def fmt_value(name: str, value) -> str:
    if value is None:
        return "–"
    if name in SCALES:
        return f"{value:,.0f}" if 1 <= abs(value) < 1e7 else f"{value:.3g}"
    return f"{value:.3f}"


def fmt_param(rec: dict, name: str) -> str:
    value = rec["params"][name]
    text = fmt_value(name, value)
    err = (rec.get("stderr") or {}).get(name)
    if err is not None:
        text += f" ± {fmt_value(name, err)}"
    if name in SCALES and value > 0:
        text += f" (log10 {math.log10(value):.2f})"
    return text


def fmt_ci(rec: dict, name: str) -> str:
    ci = (rec.get("ci95") or {}).get(name)
    if not ci:
        return "–"
    return f"[{fmt_value(name, ci[0])}, {fmt_value(name, ci[1])}]"


def describe(rec: dict) -> str:
    """The best form of one family and axis, in words."""
    p, axis, form = rec["params"], rec["axis"], rec["form"]
    x = {"D": "D", "N": "N"}.get(axis, "")
    what = AXIS_WORD[axis]
    if form == "broken" or form == "broken_amp":
        amp = f" (amplitude {p['amplitude']:.2f})" if form == "broken_amp" else ""
        return (f"{what} scaling is broken{amp}: α_{x} = {p['alpha1']:.2f} below {x}_c ≈ {p['xc']:,.0f}, "
                f"{p['alpha2']:.2f} above")
    if form == "power":
        return f"{what} scaling is a plain power law: α_{x} = {p['alpha']:.2f} ({x}_0 ≈ {p['x0']:,.0f})"
    if form == "power_floor":
        return (f"{what} scaling saturates: α_{x} = {p['alpha']:.2f} toward a floor L∞ = {p['l_inf']:.2f} "
                f"({x}_0 ≈ {p['x0']:,.0f})")
    tail = f", irreducible loss L_0 = {p['l_0']:.2f}" if form == "hoffmann" else ""
    return (f"joint scaling follows the {form.capitalize()}-type law: α_N = {p['alpha_n']:.2f} "
            f"(N_c ≈ {p['n_c']:,.0f}), α_D = {p['alpha_d1']:.2f} below D_c ≈ {p['d_c']:,.0f}, "
            f"{p['alpha_d2']:.2f} above{tail}")


def best_records(records: list[dict]) -> dict[tuple[str, str], dict]:
    best: dict[tuple[str, str], dict] = {}
    for r in records:
        if r["status"] == "ok" and r["delta_aicc"] == 0:
            best.setdefault((r["family"], r["axis"]), r)
    return best


def _fixed_text(fixed: dict) -> str:
    return ", ".join(f"{k} = {v:,}" for k, v in fixed.items())


def markdown(records: list[dict], *, source: str, n_runs: int, notes: list[str], files: list[str]) -> str:
    lines = [f"# Scaling-law fits of `{source}`", "",
             f"{n_runs} runs; families: {', '.join(sorted({r['family'] for r in records})) or 'none'}.", ""]
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    lines += ["Each point is the mean validation loss over seeds, sigma the standard deviation over seeds "
              "(ddof = 0); 1D fits use relative sigma, 2D fits absolute sigma; RSS and AICc use the unweighted "
              "residuals of the means. Parameters ± covariance standard errors; 95 % intervals from the "
              "bootstrap over seeds. ΔAICc is relative to the family's best form on that axis.", ""]
    best = best_records(records)
    if best:
        lines += ["## Best forms", ""]
        lines += [f"- **{fam}** ({_fixed_text(rec['fixed']) or 'grid'}): {describe(rec)} "
                  f"(AICc {rec['aicc']:.2f})." for (fam, axis), rec in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
        lines.append("")
    for axis in ("D", "N", "ND"):
        recs = [r for r in records if r["axis"] == axis]
        if not recs:
            continue
        lines += [f"## {AXIS_TITLE[axis]}", ""]
        for fam in sorted({r["family"] for r in recs}):
            fam_recs = sorted((r for r in recs if r["family"] == fam),
                              key=lambda r: (r["aicc"] is None, r["aicc"] if r["aicc"] is not None else 0))
            fixed = _fixed_text(fam_recs[0]["fixed"])
            lines += [f"### {fam}" + (f" ({fixed})" if fixed else "") + f" — {fam_recs[0]['n']} points", "",
                      "| form | parameters | 95 % CI (bootstrap) | RSS | AICc | ΔAICc |",
                      "|---|---|---|---|---|---|"]
            for r in fam_recs:
                if r["status"] != "ok":
                    lines.append(f"| {r['form']} | **failed**: {r['message']} | | | | |")
                    continue
                params = "<br>".join(f"{p} = {fmt_param(r, p)}" for p in FORMS[r["form"]].params)
                cis = "<br>".join(f"{p} {fmt_ci(r, p)}" for p in FORMS[r["form"]].params) if r["ci95"] else "–"
                aicc = "–" if r["aicc"] is None else f"{r['aicc']:.2f}"
                delta = "–" if r["delta_aicc"] is None else f"{r['delta_aicc']:.2f}"
                lines.append(f"| {r['form']} | {params} | {cis} | {r['rss']:.5g} | {aicc} | {delta} |")
            lines.append("")
    lines += _optimizer_section(records)
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["## Failed fits", ""]
        lines += [f"- {r['family']} / {r['axis']} / {r['form']}: {r['message']}" for r in failed]
        lines.append("")
    lines += ["## Files", ""] + [f"- `{f}`" for f in files] + [""]
    return "\n".join(lines)


def _optimizer_section(records: list[dict]) -> list[str]:
    """Fits where the multi-start optimum beats the conventional single start (the paper's p0)."""
    rows = []
    for r in records:
        ref = r.get("reference")
        if r["status"] != "ok":
            continue
        if ref is None:
            rows.append(f"| {r['family']} | {r['axis']} | {r['form']} | failed | – | {r['chi2']:.6g} | {r['rss']:.6g} |")
        elif ref["chi2"] > r["chi2"] * (1 + 1e-6) + 1e-12:
            ref_aicc = "–" if ref["aicc"] is None else f"{ref['aicc']:.2f}"
            rows.append(f"| {r['family']} | {r['axis']} | {r['form']} | {ref['chi2']:.6g} | {ref['rss']:.6g} (AICc {ref_aicc}) "
                        f"| {r['chi2']:.6g} | {r['rss']:.6g} |")
    out = ["## Multi-start against the conventional single start", ""]
    if not rows:
        return out + ["Every conventional single-start fit (the paper's p0) reached the multi-start optimum.", ""]
    return out + ["Fits where the single start (the paper's p0) stops in a worse local optimum or fails:", "",
                  "| family | axis | form | χ² single start | RSS single start | χ² multi-start | RSS multi-start |",
                  "|---|---|---|---|---|---|---|"] + rows + [""]


def latex_tables(records: list[dict]) -> dict[str, str]:
    """LaTeX (booktabs) tables: one per axis with the parameters of every form, and AICc."""
    tables = {}
    for axis in ("D", "N", "ND"):
        recs = [r for r in records if r["axis"] == axis and r["status"] == "ok"]
        if not recs:
            continue
        body = [r"\begin{tabular}{llll}", r"\toprule", r"Family & Form & Parameters & AICc \\", r"\midrule"]
        for r in sorted(recs, key=lambda r: (r["family"], r["form"])):
            params = "; ".join(f"${_tex_name(p, axis)} = {_tex_value(p, r['params'][p], (r['stderr'] or {}).get(p))}$"
                               for p in FORMS[r["form"]].params)
            aicc = "--" if r["aicc"] is None else f"{r['aicc']:.2f}"
            form = r["form"].replace("_", r"\_")
            body.append(f"{r['family']} & {form} & {params} & ${aicc}$ \\\\")
        body += [r"\bottomrule", r"\end{tabular}", ""]
        tables[f"fits_{axis}.tex"] = "\n".join(body)
    forms = list(dict.fromkeys(r["form"] for r in records))
    keys = sorted({(r["family"], r["axis"]) for r in records}, key=lambda k: (k[1], k[0]))
    if keys:
        head = " & ".join(f.replace("_", r"\_") for f in forms)
        body = [r"\begin{tabular}{ll" + "r" * len(forms) + "}", r"\toprule", f"Family & Axis & {head} \\\\", r"\midrule"]
        for fam, axis in keys:
            cells = []
            for f in forms:
                match = [r for r in records if (r["family"], r["axis"], r["form"]) == (fam, axis, f)]
                cells.append("--" if not match or match[0]["aicc"] is None else f"${match[0]['aicc']:.2f}$")
            body.append(f"{fam} & {axis} & " + " & ".join(cells) + r" \\")
        body += [r"\bottomrule", r"\end{tabular}", ""]
        tables["aicc.tex"] = "\n".join(body)
    return tables


def _tex_name(p: str, axis: str) -> str:
    """LaTeX symbol of a parameter; 1D scales and exponents carry the axis (D or N)."""
    x = axis if axis in ("D", "N") else "x"
    names = {"alpha": rf"\alpha_{x}", "alpha1": rf"\alpha_{{{x},1}}", "alpha2": rf"\alpha_{{{x},2}}",
             "x0": f"{x}_0", "xc": f"{x}_c", "l_inf": r"L_\infty", "amplitude": "A", "alpha_n": r"\alpha_N",
             "alpha_d1": r"\alpha_{D,1}", "alpha_d2": r"\alpha_{D,2}", "n_c": "N_c", "d_c": "D_c", "l_0": "L_0"}
    return names[p]


def _tex_value(p: str, value: float, err) -> str:
    if p in SCALES:
        text = f"10^{{{math.log10(value):.2f}}}" if value > 0 else f"{value:.3g}"
        return text
    return f"{value:.3f}" + (rf" \pm {err:.3f}" if err is not None else "")


# ---------------------------------------------------------------------------------------------
# plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_axis(records: list[dict], series_by_key: dict, axis: str):
    """Log-log plot of one axis: mean ± std over seeds per family, best-AICc curve of each."""
    plt = _pyplot()
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
    plt = _pyplot()
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


# ---------------------------------------------------------------------------------------------
# TensorBoard


def log_tensorboard(logdir: Path, images: dict[str, bytes], records: list[dict], report: str) -> Path:
    """One event file: the plots as images (tag ``laws/<name>``), the report as text, and the
    best-form parameters as scalars (tag ``<axis>/<family>/<param>``, step 0)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(logdir))
    values = []
    from PIL import Image

    for name, png in images.items():
        width, height = Image.open(io.BytesIO(png)).size
        values.append(Summary.Value(tag=f"laws/{name}", image=Summary.Image(
            height=height, width=width, colorspace=4, encoded_image_string=png)))
    text_meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    tensor = TensorProto(dtype=7, string_val=[report.encode()],  # DT_STRING
                         tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    values.append(Summary.Value(tag="laws/report", metadata=text_meta, tensor=tensor))
    for (fam, axis), rec in best_records(records).items():
        for p, v in rec["params"].items():
            values.append(Summary.Value(tag=f"{axis}/{fam}/{rec['form']}/{p}", simple_value=float(v)))
    writer.add_event(Event(wall_time=time.time(), step=0, summary=Summary(value=values)))
    writer.flush()
    writer.close()
    return logdir


def write_report(out: Path, records: list[dict], all_series, *, source: str, n_runs: int, notes: list[str],
                 tensorboard: bool = True) -> list[Path]:
    """Every output of ``laws fit`` under ``out``; returns the written paths."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    written = [out / "fits.json"]
    write_fits_json(records, written[0])
    for name, text in latex_tables(records).items():
        (out / "tables" / name).write_text(text)
        written.append(out / "tables" / name)
    by_key = {(s.family, s.axis): s for s in all_series}
    figures = {}
    for axis in ("D", "N"):
        if any(k[1] == axis for k in by_key):
            figures[f"scaling_{axis}"] = plot_axis(records, by_key, axis)
    for (fam, axis), s in sorted(by_key.items()):
        if axis == "ND":
            figures[f"grid_{fam}"] = plot_grid(records, s)
    images = {}
    for name, fig in figures.items():
        paths, images[name] = save_figure(fig, out / "plots" / name)
        written += paths
    files = [str(p.relative_to(out)) for p in written] + ["report.md"] + (["tensorboard/"] if tensorboard else [])
    report = markdown(records, source=source, n_runs=n_runs, notes=notes, files=files)
    (out / "report.md").write_text(report)
    written.append(out / "report.md")
    if tensorboard:
        written.append(log_tensorboard(out / "tensorboard", images, records, report))
    for fig in figures.values():
        plt.close(fig)
    return written
