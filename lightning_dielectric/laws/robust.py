"""Robust fits (``laws fit --huber``): each form fitted in log space with a Huber loss, as in the
replication of the Chinchilla fits (Besiroglu et al. 2024): minimise Σ Huber_δ(ln f(x_i) − ln L̄_i)
over the seed-mean losses L̄_i, unweighted, δ = 10⁻³ (residuals beyond δ count linearly, so one
outlying point moves the fit much less than in least squares). Solved with
``scipy.optimize.least_squares(loss="huber", f_scale=δ)`` from the least-squares optimum and
up to ``MAX_STARTS`` of the least-squares fit's starts (evenly picked); the lowest objective wins.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import least_squares

from .fit import Points
from .forms import FORMS, starts

HUBER_DELTA = 1e-3
MAX_STARTS = 12


def huber_fit(form: str, points: Points, delta: float = HUBER_DELTA, extra_starts=()) -> dict:
    """``{"form", "status", "params", "objective"}`` of the log-space Huber fit of ``form``."""
    f = FORMS[form]
    x = np.asarray(points.x, dtype=float)
    lx, ly = np.log(x), np.log(points.mean)
    if points.n < f.k or not np.all(points.mean > 0):
        return {"form": form, "status": "failed", "params": None, "objective": None}
    lo, hi = f.bounds_internal()

    def residual(theta):
        with np.errstate(all="ignore"):
            r = np.log(f.model(lx, *theta)) - ly
        return np.where(np.isfinite(r), r, 1e3)

    best = None
    grid = starts(f, x, points.mean)
    picked = [grid[i] for i in np.unique(np.linspace(0, len(grid) - 1, min(MAX_STARTS, len(grid))).astype(int))]
    for theta0 in [*extra_starts, *picked]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = least_squares(residual, np.clip(theta0, lo, hi), bounds=(lo, hi), loss="huber",
                                    f_scale=delta, max_nfev=500)
            except ValueError:
                continue
        if np.all(np.isfinite(res.x)) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        return {"form": form, "status": "failed", "params": None, "objective": None}
    params = {p: float(v) for p, v in zip(f.params, f.to_natural(best.x))}
    return {"form": form, "status": "ok", "params": params, "objective": float(best.cost)}


def robust_fits(records: list[dict], all_series) -> list[dict]:
    """A Huber fit for every ok least-squares record (started also from its optimum)."""
    by_key = {(s.family, s.axis): s for s in all_series}
    out = []
    for r in records:
        if r["status"] != "ok":
            continue
        s = by_key[(r["family"], r["axis"])]
        theta = FORMS[r["form"]].to_internal([r["params"][p] for p in FORMS[r["form"]].params])
        out.append({"family": r["family"], "axis": r["axis"], **huber_fit(r["form"], s.points, extra_starts=[theta])})
    return out


def robust_section(robust: list[dict], records: list[dict]) -> list[str]:
    """Markdown: least-squares against log-space Huber parameters, form by form."""
    if not robust:
        return []
    lsq = {(r["family"], r["axis"], r["form"]): r for r in records}
    lines = ["## Robust fits: least squares against Huber in log space", "",
             f"Huber loss on ln L residuals, δ = {HUBER_DELTA:g}, unweighted (see `laws/robust.py`). "
             "Largest relative change: max over parameters of |Huber − LSQ| / |LSQ|.", "",
             "| family | axis | form | least squares | Huber (log space) | largest relative change |", "|---|---|---|---|---|---|"]
    for h in sorted(robust, key=lambda h: (h["axis"], h["family"], h["form"])):
        ref = lsq[(h["family"], h["axis"], h["form"])]["params"]
        left = ", ".join(f"{p} = {v:.4g}" for p, v in ref.items())
        if h["status"] != "ok":
            lines.append(f"| {h['family']} | {h['axis']} | {h['form']} | {left} | failed | |")
            continue
        right = ", ".join(f"{p} = {v:.4g}" for p, v in h["params"].items())
        change = max(abs(h["params"][p] - v) / max(abs(v), 1e-12) for p, v in ref.items())
        lines.append(f"| {h['family']} | {h['axis']} | {h['form']} | {left} | {right} | {change:.1%} |")
    return lines + [""]
