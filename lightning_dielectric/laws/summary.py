"""Honest one-line summaries of the fits: the best form of each family and axis in words, the
forms it cannot be told from (ΔAICc < 2), and flags for fits that should not be read literally:

* a break (``xc``; ``d_c`` of the 2D forms) outside the measured range of its axis — the fitted
  curve has no break where there is data;
* a second exponent (``alpha2``; ``alpha_d2``) ≤ 0 — the loss would rise beyond the break;
* a parameter at its bound (``l_inf``, ``l_0`` at 0) — the data do not determine it, and its
  covariance error and bootstrap interval mean little.
"""

from __future__ import annotations

AXIS_WORD = {"D": "data", "N": "parameter", "ND": "joint (N, D)"}
INDISTINGUISHABLE = 2.0  # ΔAICc below which two forms are not told apart
BOUND_TOL = 1e-6  # relative distance (to the parameter's scale, at least 1) that counts as "at the bound"


def best_records(records: list[dict]) -> dict[tuple[str, str], dict]:
    """The lowest-AICc fit of every (family, axis)."""
    best: dict[tuple[str, str], dict] = {}
    for r in records:
        if r["status"] == "ok" and r["delta_aicc"] == 0:
            best.setdefault((r["family"], r["axis"]), r)
    return best


def flags(rec: dict) -> list[str]:
    """Reasons not to read ``rec`` (an ok fit record with ``x_range``) literally; see the module docstring."""
    from .forms import FORMS

    p, form, out = rec["params"], FORMS[rec["form"]], []
    ranges = rec.get("x_range") or {}
    breaks = {"xc": (rec["axis"], "alpha2"), "d_c": ("D", "alpha_d2")}
    for name, (axis, second) in breaks.items():
        if name not in p:
            continue
        lo, hi = ranges.get(axis, (None, None))
        if lo is not None and not lo <= p[name] <= hi:
            out.append(f"break {name} ≈ {p[name]:,.0f} lies outside the measured {axis} range "
                       f"[{lo:,.0f}, {hi:,.0f}]: not a break in the data")
        if not p[second] > 0:
            out.append(f"second exponent {second} = {p[second]:.3f} ≤ 0: the loss would rise beyond the break")
    for name, bound in form.lower.items():
        if p[name] <= bound + BOUND_TOL * max(1.0, abs(p[name])):
            out.append(f"{name} = {p[name]:.3g} sits at its bound {bound:g}: not determined by the data")
    return out


def indistinguishable(records: list[dict], family: str, axis: str) -> list[str]:
    """Forms of (family, axis) within ΔAICc < 2 of the best, best first."""
    close = [r for r in records if r["family"] == family and r["axis"] == axis and r["status"] == "ok"
             and r["delta_aicc"] is not None and r["delta_aicc"] < INDISTINGUISHABLE]
    return [r["form"] for r in sorted(close, key=lambda r: r["delta_aicc"])]


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


def best_forms_section(records: list[dict]) -> list[str]:
    """The "Best forms" section: per family and axis the best form, the forms it cannot be told
    from, and its flags."""
    best = best_records(records)
    if not best:
        return []
    lines = ["## Best forms", ""]
    for (fam, axis), rec in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        fixed = ", ".join(f"{k} = {v:,}" for k, v in rec["fixed"].items()) or "grid"
        close = indistinguishable(records, fam, axis)
        if len(close) > 1:
            head = (f"{AXIS_WORD[axis]} scaling: {', '.join(close)} are indistinguishable (ΔAICc < {INDISTINGUISHABLE:g}); "
                    f"lowest AICc {rec['aicc']:.2f}: {describe(rec)}")
        else:
            head = f"{describe(rec)} (AICc {rec['aicc']:.2f})"
        lines.append(f"- **{fam}** ({fixed}): {head}.")
        lines += [f"  - ⚠ {flag}" for flag in flags(rec)]
    return lines + [""]
