"""LaTeX (booktabs) tables of ``laws fit``: the parameters of every form per axis, and AICc."""

from __future__ import annotations

import math

from .forms import FORMS, SCALES


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
