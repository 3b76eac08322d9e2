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

from .forms import FORMS, SCALES
from .ensembles import ensemble_section
from .frontier import frontier_section
from .holdout import holdout_section
from .latex import latex_tables
from .plots import plot_axis, plot_frontier, plot_grid, pyplot, save_figure
from .robust import robust_section
from .summary import best_forms_section, best_records, flags

AXIS_TITLE = {"D": "Data scaling (x = D, training structures)", "N": "Parameter scaling (x = N, parameters)",
              "ND": "Joint scaling over the (N, D) grid"}


def json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value):
    """NaN/inf → None, recursively (strict JSON); arrays become lists."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
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
    path.write_text(json.dumps(public(records), indent=1, default=json_default) + "\n")


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


def _fixed_text(fixed: dict) -> str:
    return ", ".join(f"{k} = {v:,}" for k, v in fixed.items())


def markdown(records: list[dict], *, source: str, n_runs: int, notes: list[str], files: list[str],
             sections: list[str] = ()) -> str:
    """The report; ``sections``: further Markdown lines (frontier, holdout, robust fits) placed
    after the per-axis tables."""
    lines = [f"# Scaling-law fits of `{source}`", "",
             f"{n_runs} runs; families: {', '.join(sorted({r['family'] for r in records})) or 'none'}.", ""]
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    lines += ["Each point is the mean validation loss over seeds, sigma the standard deviation over seeds "
              "(ddof = 0); 1D fits use relative sigma, 2D fits absolute sigma; RSS and AICc use the unweighted "
              "residuals of the means. Parameters ± covariance standard errors; 95 % intervals from the "
              "bootstrap over seeds. ΔAICc is relative to the family's best form on that axis.", ""]
    lines += best_forms_section(records)
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
                params = "<br>".join([f"{p} = {fmt_param(r, p)}" for p in FORMS[r["form"]].params]
                                     + [f"⚠ {flag}" for flag in flags(r)])
                cis = "<br>".join(f"{p} {fmt_ci(r, p)}" for p in FORMS[r["form"]].params) if r["ci95"] else "–"
                aicc = "–" if r["aicc"] is None else f"{r['aicc']:.2f}"
                delta = "–" if r["delta_aicc"] is None else f"{r['delta_aicc']:.2f}"
                lines.append(f"| {r['form']} | {params} | {cis} | {r['rss']:.5g} | {aicc} | {delta} |")
            lines.append("")
    lines += list(sections)
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
                 tensorboard: bool = True, runs=None, frontiers=None, holdout=None, holdout_k: int = 0,
                 robust=None, ensembles=None) -> list[Path]:
    """Every output of ``laws fit`` under ``out``; returns the written paths. Optional parts:
    ``frontiers`` (with the ``runs`` table: ``frontier.json``, ``plots/frontier.*``), ``holdout``
    (``holdout.json``), ``robust`` (``robust.json``) and ``ensembles`` (a table of
    ``laws.ensembles``), each with its report section."""
    plt = pyplot()
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
    sections: list[str] = []
    if frontiers is not None:
        sections += frontier_section(frontiers)
        if frontiers:
            figures["frontier"] = plot_frontier(runs, frontiers)
    if holdout is not None:
        sections += holdout_section(holdout, records, holdout_k)
    if robust is not None:
        sections += robust_section(robust, records)
    if ensembles is not None:
        sections += ensemble_section(ensembles)
    for name, part in (("frontier", frontiers), ("holdout", holdout), ("robust", robust)):
        if part is not None:
            (out / f"{name}.json").write_text(json.dumps(public(part), indent=1, default=json_default) + "\n")
            written.append(out / f"{name}.json")
    images = {}
    for name, fig in figures.items():
        paths, images[name] = save_figure(fig, out / "plots" / name)
        written += paths
    files = [str(p.relative_to(out)) for p in written] + ["report.md"] + (["tensorboard/"] if tensorboard else [])
    report = markdown(records, source=source, n_runs=n_runs, notes=notes, files=files, sections=sections)
    (out / "report.md").write_text(report)
    written.append(out / "report.md")
    if tensorboard:
        written.append(log_tensorboard(out / "tensorboard", images, records, report))
    for fig in figures.values():
        plt.close(fig)
    return written
