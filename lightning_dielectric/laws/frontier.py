"""The compute-optimal frontier: the least loss reachable with training compute C, and the model
size N*(C) and data size D*(C) that reach it.

Definitions (see ``docs/scaling_laws.md``):

* C is training compute in FLOPs (the runs table's ``flops``: 3 × forward FLOPs per structure ×
  structures seen).
* Compute model of a family (:class:`ComputeModel`): C(N, D) = 3 · F(N) · D · E, with the forward
  FLOPs per structure F(N) = f · N^c fitted (least squares in log–log) to the runs'
  ``flops_per_structure`` and E the median number of epochs (C / (3 F D)) of the runs. This
  assumes every model trains for the same number of epochs, whatever N and D.
* Law frontier (a fitted L(N, D)): L*(C) = min over N of L(N, C / (3 F(N) E)); N*, D* are the
  minimiser. Allocation exponents a, b: slopes of ln N*, ln D* against ln C over the measured
  compute range (N* ∝ C^a, D* ∝ C^b; a + b = 1 when c = 1), with 95 % intervals from the 2D
  fit's bootstrap replicates.
* Empirical frontier (any runs with compute): per (N, D) configuration the seed-mean loss and
  compute; the frontier keeps the configurations that no cheaper one beats. L*, N*, D* against C
  on those points give power-law slopes (≥ 3 points), with 95 % intervals from resampling seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from lightning_dielectric.training.flops import TRAIN_FLOP_FACTOR

from .fit import replicate_laws
from .forms import FORMS

SEARCH_DECADES = 3.0  # N* is searched from 10^-3 × the smallest to 10^3 × the largest measured N


@dataclass(frozen=True)
class ComputeModel:
    """C(N, D) = 3 · f · N^c · D · epochs (FLOPs); N in parameters, D in structures."""

    f: float
    c: float
    epochs: float
    n_range: tuple[float, float]

    def flops(self, n, d):
        return TRAIN_FLOP_FACTOR * self.f * np.power(n, self.c) * d * self.epochs

    def data_for(self, n, compute):
        return compute / (TRAIN_FLOP_FACTOR * self.f * np.power(n, self.c) * self.epochs)


def compute_model(rows: pd.DataFrame) -> ComputeModel:
    """Fit F(N) and E to runs with finite ``flops`` and ``flops_per_structure`` (ValueError if none)."""
    ok = rows[np.isfinite(rows["flops"].astype(float)) & np.isfinite(rows["flops_per_structure"].astype(float))]
    if ok["N"].nunique() < 2:
        raise ValueError("needs runs with FLOPs at ≥ 2 model sizes N")
    ln_n, ln_f = np.log(ok["N"].astype(float)), np.log(ok["flops_per_structure"].astype(float))
    c, ln_a = np.polyfit(ln_n, ln_f, 1)
    epochs = ok["flops"] / (TRAIN_FLOP_FACTOR * ok["flops_per_structure"] * ok["D"])
    return ComputeModel(float(np.exp(ln_a)), float(c), float(np.median(epochs)),
                        (float(ok["N"].min()), float(ok["N"].max())))


def optimum(form: str, params: dict, model: ComputeModel, compute: float) -> tuple[float, float, float, bool]:
    """(L*, N*, D*, interior) at ``compute`` FLOPs; ``interior`` is False when N* lies at the
    edge of the search range (the law keeps rewarding a larger or smaller model)."""
    lo = np.log(model.n_range[0]) - SEARCH_DECADES * np.log(10)
    hi = np.log(model.n_range[1]) + SEARCH_DECADES * np.log(10)

    def ln_loss(ln_n):
        n = np.exp(ln_n)
        d = model.data_for(n, compute)
        return np.log(FORMS[form]((np.atleast_1d(n), np.atleast_1d(d)), params))

    grid = np.linspace(lo, hi, 241)
    values = ln_loss(grid)
    values = np.where(np.isfinite(values), values, np.inf)
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(lambda x: float(ln_loss(np.array([x]))[0]), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-8})
    ln_n = float(res.x) if res.fun <= values[i] else float(grid[i])
    n = float(np.exp(ln_n))
    interior = 0 < i < len(grid) - 1
    return float(np.exp(min(res.fun, values[i]))), n, float(model.data_for(n, compute)), interior


def slopes(compute: np.ndarray, *ys: np.ndarray) -> list[float]:
    """Least-squares slopes of ln y against ln C."""
    lc = np.log(compute)
    return [float(np.polyfit(lc, np.log(y), 1)[0]) for y in ys]


def law_frontier(fit, model: ComputeModel, c_range: tuple[float, float], points: int = 9) -> dict:
    """Frontier of a fitted 2D law (a ``fit.FitResult``) over ``c_range`` FLOPs, with allocation
    exponents and their bootstrap intervals (see the module docstring)."""
    compute = np.logspace(np.log10(c_range[0]), np.log10(c_range[1]), points)
    best = [optimum(fit.form, fit.params, model, c) for c in compute]
    loss, n_star, d_star = (np.array([b[k] for b in best]) for k in range(3))
    a, b, gamma = slopes(compute, n_star, d_star, loss)
    out = {"source": f"{fit.form} law", "compute": compute, "loss": loss, "n_star": n_star, "d_star": d_star,
           "a": a, "b": b, "loss_slope": gamma, "interior": all(x[3] for x in best)}
    if fit.boot is not None:
        reps = []
        for law in replicate_laws(fit):
            rep = [optimum(law.form, law.params, model, c) for c in compute]
            if all(r[3] for r in rep):
                reps.append(slopes(compute, *(np.array([r[k] for r in rep]) for k in (1, 2, 0))))
        if reps:
            lo, hi = np.percentile(np.array(reps), [2.5, 97.5], axis=0)
            out["ci95"] = {"a": [lo[0], hi[0]], "b": [lo[1], hi[1]], "loss_slope": [lo[2], hi[2]]}
            out["bootstrap"] = {"replicates": int(len(fit.boot)), "used": len(reps)}
    return out


def _pareto(configs: pd.DataFrame) -> pd.DataFrame:
    """Configurations that no cheaper configuration beats (sorted by compute)."""
    configs = configs.sort_values(["flops", "val_loss"])
    keep = configs["val_loss"] < configs["val_loss"].cummin().shift(fill_value=np.inf)
    return configs[keep]


def empirical_frontier(rows: pd.DataFrame, bootstrap: int = 200, seed: int = 0) -> dict | None:
    """Pareto frontier of seed-mean configurations of one family's runs (None without compute)."""
    rows = rows[np.isfinite(rows["flops"].astype(float)) & np.isfinite(rows["val_loss"].astype(float))]
    if rows.empty:
        return None
    rows = rows.drop_duplicates(["N", "D", "seed"])  # a point on two design lines is one run

    def frontier_of(table):
        configs = table.groupby(["N", "D"], as_index=False)[["flops", "val_loss"]].mean()
        return _pareto(configs)

    front = frontier_of(rows)
    out = {"source": "measured runs", "compute": front["flops"].to_numpy(float),
           "loss": front["val_loss"].to_numpy(float), "n_star": front["N"].to_numpy(float),
           "d_star": front["D"].to_numpy(float), "a": None, "b": None, "loss_slope": None}
    if len(front) >= 3:
        out["a"], out["b"], out["loss_slope"] = slopes(out["compute"], out["n_star"], out["d_star"], out["loss"])
        rng = np.random.default_rng(seed)
        groups = [g for _, g in rows.groupby(["N", "D"])]
        reps = []
        for _ in range(bootstrap):
            sample = pd.concat([g.iloc[rng.integers(len(g), size=len(g))] for g in groups])
            f = frontier_of(sample)
            if len(f) >= 3:
                reps.append(slopes(f["flops"].to_numpy(float), f["N"].to_numpy(float), f["D"].to_numpy(float),
                                   f["val_loss"].to_numpy(float)))
        if reps:
            lo, hi = np.percentile(np.array(reps), [2.5, 97.5], axis=0)
            out["ci95"] = {"a": [lo[0], hi[0]], "b": [lo[1], hi[1]], "loss_slope": [lo[2], hi[2]]}
    return out


def compute_for_loss(fit, model: ComputeModel, target: float, c_range=(1.0, 1e40)) -> tuple[float, float, float] | None:
    """Least compute (FLOPs) whose frontier loss reaches ``target``, with its N* and D*; None if
    the frontier stays above it up to 10^40 FLOPs."""
    lo, hi = np.log(c_range[0]), np.log(c_range[1])

    def gap(ln_c):
        return np.log(optimum(fit.form, fit.params, model, float(np.exp(ln_c)))[0]) - np.log(target)

    if gap(hi) > 0:
        return None
    if gap(lo) <= 0:
        c = float(np.exp(lo))
    else:
        from scipy.optimize import brentq

        c = float(np.exp(brentq(gap, lo, hi, xtol=1e-9)))
    _, n, d, _ = optimum(fit.form, fit.params, model, c)
    return c, n, d


def family_frontiers(df: pd.DataFrame, records: list[dict], bootstrap: int = 200, seed: int = 0) -> list[dict]:
    """Per family with compute in the runs table: the empirical frontier and, where the family
    has an ok 2D fit, the frontier of its lowest-AICc law over the runs' compute range."""
    if "flops" not in df.columns:
        return []
    out = []
    for family in sorted(df["family"].unique()):
        rows = df[df["family"] == family]
        measured = empirical_frontier(rows, bootstrap, seed)
        if measured is None:
            continue
        estimated = bool(rows.get("flops_estimated", pd.Series(False)).fillna(False).astype(bool).any())
        out.append({"family": family, "estimated": estimated, **measured})
        fits = [r for r in records if r["family"] == family and r["axis"] == "ND" and r["status"] == "ok"
                and r["delta_aicc"] == 0]
        if fits:
            try:
                model = compute_model(rows)
            except ValueError:
                continue
            grid = rows[rows.get("study", pd.Series("grid", index=rows.index)).fillna("grid") == "grid"]
            c = grid["flops"].astype(float)
            c = c[np.isfinite(c)]
            if c.empty:
                continue
            law = law_frontier(fits[0]["_result"], model, (float(c.min()), float(c.max())))
            measured_range = {k: [float(grid[k].min()), float(grid[k].max())] for k in ("N", "D")}
            out.append({"family": family, "estimated": estimated, "compute_model": model.__dict__,
                        "measured_range": measured_range, **law})
    return out


def frontier_section(frontiers: list[dict]) -> list[str]:
    """Markdown table of the frontiers (see the module docstring for the definitions)."""
    if not frontiers:
        return ["## Compute-optimal frontier", "", "No run in the table records its training FLOPs.", ""]
    lines = ["## Compute-optimal frontier", "",
             "C = training FLOPs (3 × forward FLOPs per structure × structures seen; `docs/scaling_laws.md`). "
             "Measured: the runs (seed means per (N, D)) that no cheaper run beats, with log–log slopes over "
             "them (≥ 3 points; 95 % interval from resampling seeds). Law: L*(C) = min over N of the best 2D "
             "law at D = C / (3 F(N) E), with F(N) fitted to the forward FLOPs per structure and E the runs' "
             "epochs — it assumes every model trains for E epochs; N* ∝ C^a, D* ∝ C^b over the runs' compute "
             "range, 95 % interval from the 2D fit's bootstrap; with F(N) ∝ N^c, c·a + b = 1. Plot: "
             "`plots/frontier.png`.", "",
             "| family | frontier | points | C range (FLOPs) | L* slope | a (N* ∝ C^a) | b (D* ∝ C^b) |",
             "|---|---|---|---|---|---|---|"]

    def cell(f, key):
        if f[key] is None:
            return "–"
        ci = (f.get("ci95") or {}).get(key)
        return f"{f[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    for f in frontiers:
        c = f["compute"]
        source = f["source"] + (" (FLOPs estimated)" if f["estimated"] else "")
        if f.get("interior") is False:
            source += " ⚠ N* at the edge of the search range"
        for key, star in (("N", "n_star"), ("D", "d_star")):
            lo, hi = (f.get("measured_range") or {}).get(key, (None, None))
            if lo is not None and (f[star].min() < lo * 0.999 or f[star].max() > hi * 1.001):
                source += (f" ⚠ {key}* spans {f[star].min():.3g} – {f[star].max():.3g}, outside the measured "
                           f"{key} range [{lo:.3g}, {hi:.3g}]: extrapolated")
        lines.append(f"| {f['family']} | {source} | {len(c)} | {c.min():.3g} – {c.max():.3g} | {cell(f, 'loss_slope')} "
                     f"| {cell(f, 'a')} | {cell(f, 'b')} |")
    if any(f["estimated"] for f in frontiers):
        lines += ["", "FLOPs marked estimated were counted on the same architectures over synthetic stand-in "
                  "structures (`laws import-optimetal`), not measured during the runs."]
    return lines + [""]


def plan_compute(fit, model: ComputeModel, target: float | None = None, compute: float | None = None) -> dict:
    """``laws plan``'s compute answers on the law frontier: the least compute for loss ``target``
    and/or the least loss for ``compute`` FLOPs, each with N*, D* and 95 % percentile intervals
    over the fit's bootstrap replicates (seed noise only)."""
    out: dict = {"compute_model": model.__dict__}
    replicates = replicate_laws(fit)
    if target is not None:
        best = compute_for_loss(fit, model, target)
        out["for_loss"] = {"target": target, "reachable": best is not None}
        if best is not None:
            out["for_loss"].update(dict(zip(("compute", "n_star", "d_star"), best)))
            reps = [r for r in (compute_for_loss(rep, model, target) for rep in replicates) if r is not None]
            if reps:
                out["for_loss"]["compute_ci95"] = [float(v) for v in np.percentile([r[0] for r in reps], [2.5, 97.5])]
                out["for_loss"]["bootstrap"] = {"replicates": len(replicates), "reachable": len(reps)}
    if compute is not None:
        loss, n, d, interior = optimum(fit.form, fit.params, model, compute)
        out["for_compute"] = {"compute": compute, "loss": loss, "n_star": n, "d_star": d, "interior": interior}
        if replicates:
            losses = [optimum(rep.form, rep.params, model, compute)[0] for rep in replicates]
            out["for_compute"]["loss_ci95"] = [float(v) for v in np.percentile(losses, [2.5, 97.5])]
    return out


def describe_compute(answer: dict, c_range: tuple[float, float]) -> list[str]:
    """The compute answers in words, with a warning for every number outside the measured range."""
    lines = []
    m = answer["compute_model"]
    model_text = (f"C = 3 · {m['f']:.3g} · N^{m['c']:.3f} · D · {m['epochs']:.0f} epochs (FLOPs, fitted to the runs)")
    f = answer.get("for_loss")
    if f is not None:
        if not f["reachable"]:
            lines.append(f"  compute-optimal: no compute up to 1e40 FLOPs reaches L = {f['target']:g} on this law's frontier.")
        else:
            ci = f.get("compute_ci95")
            ci_text = f" (95 % interval {ci[0]:.3g} – {ci[1]:.3g})" if ci else ""
            lines.append(f"  compute-optimal: the least compute for L = {f['target']:g} is C ≈ {f['compute']:.3g} FLOPs"
                         f"{ci_text}, with N* ≈ {f['n_star']:,.0f} parameters and D* ≈ {f['d_star']:,.0f} structures.")
            lines += _compute_note(f["compute"], c_range)
    f = answer.get("for_compute")
    if f is not None:
        ci = f.get("loss_ci95")
        ci_text = f" (95 % interval {ci[0]:.4g} – {ci[1]:.4g})" if ci else ""
        lines.append(f"  with C = {f['compute']:.3g} FLOPs the least loss is L* ≈ {f['loss']:.4g}{ci_text}, at "
                     f"N* ≈ {f['n_star']:,.0f} parameters and D* ≈ {f['d_star']:,.0f} structures.")
        if not f["interior"]:
            lines.append("  warning: N* lies at the edge of the searched range: the law keeps favouring a larger "
                         "(or smaller) model; do not read N* literally.")
        lines += _compute_note(f["compute"], c_range)
    return lines + [f"  compute model: {model_text}."]


def _compute_note(c: float, c_range: tuple[float, float]) -> list[str]:
    lo, hi = c_range
    if lo <= c <= hi:
        return []
    return [f"  warning: C = {c:.3g} FLOPs lies outside the measured compute range [{lo:.3g}, {hi:.3g}]: "
            "an extrapolation of the law."]
