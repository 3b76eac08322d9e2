"""Extrapolation check (``laws fit --holdout K``): every 1D form is fitted without the K largest
points of its axis and judged by its prediction at those points.

Per held-out point: relative error (L_pred − L̄)/L̄ and the error in units of the seed spread σ
(ddof = 0; None when σ = 0). Per fit: the mean |ln(L_pred / L̄)| over the held-out points
(``score``; lower is better). The form with the lowest score extrapolates best; its AICc rank
on the full data is reported next to it.
"""

from __future__ import annotations

import numpy as np

from .fit import Points, fit_form
from .forms import FORMS, FORMS_1D


def holdout_fits(all_series, k: int, forms_1d=None) -> list[dict]:
    """One record per 1D series and form: ``family, axis, form, status, message, n_fit,
    x_held, rel_err, z, score``; series with fewer than k + 2 points are skipped."""
    if k < 1:
        raise ValueError(f"holdout needs K ≥ 1, got {k}")
    out = []
    for s in all_series:
        if s.axis == "ND" or s.points.n < k + 2:
            continue
        order = np.argsort(s.points.x)
        fit_idx, held = order[:-k], order[-k:]
        train = Points(s.points.x[fit_idx], [s.points.runs[i] for i in fit_idx])
        x_held, mean, std = s.points.x[held], s.points.mean[held], s.points.std[held]
        for name in forms_1d or FORMS_1D:
            result = fit_form(name, train)
            rec = {"family": s.family, "axis": s.axis, "form": name, "status": result.status,
                   "message": result.message, "n_fit": train.n, "x_held": [float(v) for v in x_held],
                   "rel_err": None, "z": None, "score": None}
            if result.status == "ok":
                pred = FORMS[name](x_held, result.params)
                rec["rel_err"] = [float(v) for v in (pred - mean) / mean]
                rec["z"] = [float((p - m) / s_) if s_ > 0 else None for p, m, s_ in zip(pred, mean, std)]
                score = float(np.mean(np.abs(np.log(pred / mean))))
                rec["score"] = score if np.isfinite(score) else None
            out.append(rec)
    return out


def best_extrapolating(holdout: list[dict]) -> dict[tuple[str, str], dict]:
    """The lowest-score holdout record of every (family, axis)."""
    best: dict[tuple[str, str], dict] = {}
    for r in holdout:
        key = (r["family"], r["axis"])
        if r["score"] is not None and (key not in best or r["score"] < best[key]["score"]):
            best[key] = r
    return best


def holdout_section(holdout: list[dict], records: list[dict], k: int) -> list[str]:
    """Markdown: the holdout table beside the AICc ranking, and the best extrapolating form."""
    if not holdout:
        return []
    lines = [f"## Extrapolation check (the {k} largest point(s) of each axis held out)", "",
             "Each 1D form fitted without the largest point(s) of its axis; its prediction there against the "
             "measured seed mean. Score = mean |ln(prediction / measured)| (lower is better); error in σ = "
             "in units of the standard deviation over seeds. AICc rank from the fit on all points.", "",
             "| family | axis | form | held-out x | rel. error | error in σ | score | AICc rank (all points) |",
             "|---|---|---|---|---|---|---|---|"]
    ranks = {}
    for fam, axis in {(r["family"], r["axis"]) for r in records}:
        ok = sorted((r for r in records if (r["family"], r["axis"]) == (fam, axis) and r["aicc"] is not None),
                    key=lambda r: r["aicc"])
        ranks.update({(fam, axis, r["form"]): i + 1 for i, r in enumerate(ok)})
    for r in sorted(holdout, key=lambda r: (r["axis"], r["family"], r["score"] is None, r["score"] or 0)):
        x = ", ".join(f"{v:,.0f}" for v in r["x_held"])
        if r["status"] != "ok":
            lines.append(f"| {r['family']} | {r['axis']} | {r['form']} | {x} | failed: {r['message']} | | | |")
            continue
        rel = ", ".join(f"{v:+.1%}" for v in r["rel_err"])
        z = ", ".join("–" if v is None else f"{v:+.1f}" for v in r["z"])
        score = "–" if r["score"] is None else f"{r['score']:.4f}"
        lines.append(f"| {r['family']} | {r['axis']} | {r['form']} | {x} | {rel} | {z} | {score} | "
                     f"{ranks.get((r['family'], r['axis'], r['form']), '–')} |")
    lines.append("")
    for (fam, axis), r in sorted(best_extrapolating(holdout).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        scores = {o["form"]: o["score"] for o in holdout if (o["family"], o["axis"]) == (fam, axis)}
        line = f"- **{fam}**, {axis}: {r['form']} extrapolates best (score {r['score']:.4f})"
        if scores.get("broken") is not None and scores.get("power") is not None:
            verdict = "better" if scores["broken"] < scores["power"] else "worse"
            line += (f"; the broken law (score {scores['broken']:.4f}) predicts the held-out point(s) {verdict} "
                     f"than a plain power law ({scores['power']:.4f})")
        lines.append(line + ".")
    return lines + [""]
