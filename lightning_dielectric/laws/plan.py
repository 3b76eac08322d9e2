"""Data-need planning from a fitted 2D law L(N, D): how many training structures D reach a
target validation loss at N parameters, and the N beyond which more parameters stop paying.

Definitions (``tol`` = 0.01 by default):

* floor at N: L(N, D → ∞); the global floor: L(N → ∞, D → ∞) (0 for Kaplan, ``l_0`` for
  Hoffmann). A target at or below the floor cannot be reached by more data.
* D needed at N: the D with L(N, D) = target (L decreases in D).
* N_sat at D: the N with L(N, D) = (1 + tol) · L(∞, D) — beyond it the loss is within ``tol``
  of what unlimited parameters give at that D.
* Without N: the D with L(∞, D) = target / (1 + tol), paired with its N_sat (then
  L(N_sat, D) = target): the least data that reaches the target with a model not much larger
  than needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .fit import replicate_laws
from .forms import FORMS

HUGE = 1e250  # stands in for N → ∞ or D → ∞ (the forms are evaluated in log space)
LN_RANGE = (0.0, np.log(1e30))  # the solvers search N and D in [1, 1e30]


@dataclass
class Plan:
    """Answer for one parameter set. ``status``: "ok", "below_floor" (global floor) or
    "below_floor_at_n" (reachable only with more parameters)."""

    status: str
    target: float
    n: float | None
    d_needed: float | None = None
    n_sat: float | None = None
    floor: float | None = None
    n_min: float | None = None  # the smallest N whose floor lies below the target


def _loss(form, params, n, d) -> float:
    return float(FORMS[form]((np.atleast_1d(float(n)), np.atleast_1d(float(d))), params)[0])


def _solve_ln(fun, lo=LN_RANGE[0], hi=LN_RANGE[1]) -> float | None:
    """Root of a decreasing fun(ln x) in [lo, hi] as x; x = e^lo if fun(lo) ≤ 0, None if fun(hi) > 0."""
    f_lo, f_hi = fun(lo), fun(hi)
    if f_lo <= 0:
        return float(np.exp(lo))
    if not f_hi < 0:
        return None
    return float(np.exp(brentq(fun, lo, hi, xtol=1e-10)))


def check_decreasing(form: str, params: dict) -> str | None:
    """Why the law cannot be used for planning (not decreasing in N and D), or None."""
    bad = [p for p in ("alpha_n", "alpha_d1", "alpha_d2") if not params[p] > 0]
    if bad:
        return "the fitted law does not decrease in N and D (" + ", ".join(f"{p} = {params[p]:.3g}" for p in bad) + ")"
    return None


def n_saturation(form: str, params: dict, d: float, tol: float) -> float | None:
    """N with L(N, d) = (1 + tol) · L(∞, d)."""
    goal = (1.0 + tol) * _loss(form, params, HUGE, d)
    return _solve_ln(lambda ln_n: np.log(_loss(form, params, np.exp(ln_n), d)) - np.log(goal))


def plan(form: str, params: dict, target: float, n: float | None = None, tol: float = 0.01) -> Plan:
    """Plan for one parameter set (see the module docstring)."""
    if not target > 0:
        raise ValueError(f"target loss must be positive, got {target}")
    floor = _loss(form, params, HUGE, HUGE)
    if target <= floor * (1 + 1e-9):
        return Plan("below_floor", target, n, floor=floor)
    if n is not None:
        floor_n = _loss(form, params, n, HUGE)
        if target <= floor_n:
            n_min = _solve_ln(lambda ln_n: np.log(_loss(form, params, np.exp(ln_n), HUGE)) - np.log(target))
            return Plan("below_floor_at_n", target, n, floor=floor_n, n_min=n_min)
        d = _solve_ln(lambda ln_d: np.log(_loss(form, params, n, np.exp(ln_d))) - np.log(target))
        if d is None:
            return Plan("below_floor_at_n", target, n, floor=floor_n)
        return Plan("ok", target, n, d_needed=d, n_sat=n_saturation(form, params, d, tol), floor=floor_n)
    goal = target / (1.0 + tol)
    if goal <= floor:
        return Plan("below_floor", target, n, floor=floor)
    d = _solve_ln(lambda ln_d: np.log(_loss(form, params, HUGE, np.exp(ln_d))) - np.log(goal))
    if d is None:
        return Plan("below_floor", target, n, floor=floor)
    return Plan("ok", target, n, d_needed=d, n_sat=n_saturation(form, params, d, tol), floor=floor)


def plan_with_interval(result, target: float, n: float | None = None, tol: float = 0.01) -> dict:
    """:func:`plan` for a :class:`fit.FitResult` of a 2D form, with 95 % percentile intervals
    of D and N_sat over its bootstrap replicates (those for which the target is reachable)."""
    form, params = result.form, result.params
    reason = check_decreasing(form, params)
    if reason:
        raise ValueError(f"cannot plan with the {form} fit: {reason}")
    best = plan(form, params, target, n, tol)
    out = {"form": form, "params": params, "aicc": result.aicc, "tol": tol, **best.__dict__}
    if result.boot is not None:
        reachable = []
        for law in replicate_laws(result):
            if check_decreasing(form, law.params):
                continue
            rep = plan(form, law.params, target, n, tol)
            if rep.status == "ok" and rep.d_needed is not None:
                reachable.append((rep.d_needed, rep.n_sat if rep.n_sat is not None else np.nan))
        out["bootstrap"] = {"replicates": int(len(result.boot)), "reachable": len(reachable)}
        if reachable:
            arr = np.array(reachable)
            out["d_ci95"] = [float(v) for v in np.percentile(arr[:, 0], [2.5, 97.5])]
            ns = arr[:, 1][np.isfinite(arr[:, 1])]
            out["n_sat_ci95"] = [float(v) for v in np.percentile(ns, [2.5, 97.5])] if ns.size else None
    return out


def describe(answer: dict, family: str, d_range: tuple[float, float] | None = None,
             n_range: tuple[float, float] | None = None) -> str:
    """The planning answer in plain words, with a warning for every number outside the measured
    ``d_range`` / ``n_range`` ([min, max] of the fitted grid)."""
    t, form = answer["target"], answer["form"]
    head = f"{family}, {form} law (AICc {answer['aicc']:.2f}), target validation loss {t:g}"
    at_n = f" at N = {answer['n']:,.0f}" if answer["n"] is not None else ""
    lines = [head + at_n + ":"]
    status = answer["status"]
    if status == "below_floor":
        lines.append(f"  the target lies below the fitted floor L = {answer['floor']:.4g} "
                     f"(N, D → ∞): no amount of data or parameters reaches it according to this law.")
        return "\n".join(lines)
    if status == "below_floor_at_n":
        lines.append(f"  the target lies below the fitted floor at this N, L(N, D → ∞) = {answer['floor']:.4g}: "
                     "more data alone cannot reach it.")
        if answer.get("n_min"):
            lines.append(f"  with unlimited data it needs N > {answer['n_min']:,.0f} parameters.")
        return "\n".join(lines)
    d = answer["d_needed"]
    ci = answer.get("d_ci95")
    ci_text = f" (95 % bootstrap interval {ci[0]:,.0f} – {ci[1]:,.0f})" if ci else ""
    boot = answer.get("bootstrap")
    if boot and boot["reachable"] < boot["replicates"]:
        ci_text += f"; reachable in {boot['reachable']} of {boot['replicates']} bootstrap replicates"
    if answer["n"] is not None:
        lines.append(f"  needs D ≈ {d:,.0f} training structures{ci_text}.")
    else:
        lines.append(f"  needs D ≈ {d:,.0f} training structures{ci_text} with a model of N ≈ {answer['n_sat']:,.0f} parameters.")
    if answer["n_sat"] is not None:
        tol = answer["tol"]
        nci = answer.get("n_sat_ci95")
        nci_text = f" (95 % interval {nci[0]:,.0f} – {nci[1]:,.0f})" if nci else ""
        lines.append(f"  more parameters stop paying beyond N ≈ {answer['n_sat']:,.0f}{nci_text}: there L is within "
                     f"{tol:.0%} of the unlimited-parameter loss at that D.")
        if answer["n"] is not None and answer["n"] > answer["n_sat"]:
            lines.append(f"  N = {answer['n']:,.0f} is already past that point.")
    lines += range_notes(d_range, {"D": d}, n_range, {"N_sat": answer["n_sat"], "N": answer["n"]})
    return "\n".join(lines + [SEED_NOISE_NOTE])


SEED_NOISE_NOTE = ("  note: the 95 % interval covers seed noise only (bootstrap over seeds); it does not cover the "
                   "choice of law or the error of extrapolating it.")


def range_notes(d_range, d_values: dict, n_range, n_values: dict) -> list[str]:
    """A warning for every answer outside the measured range of its axis."""
    out = []
    for axis, measured, values in (("D", d_range, d_values), ("N", n_range, n_values)):
        if measured is None:
            continue
        lo, hi = measured
        for name, v in values.items():
            if v is None or lo <= v <= hi:
                continue
            where = f"{v / hi:.1f}× beyond the largest" if v > hi else f"{lo / v:.1f}× below the smallest"
            out.append(f"  warning: {name} = {v:,.0f} lies outside the measured {axis} range [{lo:,.0f}, {hi:,.0f}] "
                       f"({where} measured {axis}): an extrapolation of the law.")
    return out
