"""Weighted least-squares fits of the scaling-law forms, multi-start, with covariance errors,
AICc and a bootstrap over seeds.

Conventions (these reproduce the paper's published numbers, see ``docs/scaling_laws.md``):

* Each point is the **mean over seeds** of the loss; its sigma is the **population standard
  deviation over seeds** (``ddof=0``, numpy's default). The estimates do not depend on ddof (a
  common factor on all sigmas), only absolute-sigma standard errors do.
* 1D fits use *relative* sigma (``absolute_sigma=False``: the covariance is rescaled by
  chi²/(n − k)); 2D fits use *absolute* sigma.
* The objective is chi² = Σ ((ȳ − f)/σ)²; the reported ``rss`` and the AICc use the
  **unweighted** residuals of the means: AICc = 2k + n ln(RSS/n) + (2k² + 2k)/(n − k − 1).
* Zero sigmas (identical seeds, or one seed) are replaced by the smallest positive sigma of the
  fit; if no sigma is positive the fit is unweighted (``weighting`` says which).
* Every start is optimised (Levenberg–Marquardt; bounded forms polish out-of-bounds end points
  with trust-region reflective, see :func:`_best_fit`); the lowest chi² wins. Standard errors
  come from the covariance of the winning fit, transformed from the internal log10 scales to
  natural units (delta method).
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from .forms import FORMS, Form, starts

MAX_NFEV_LM = 5000  # per start; a start that needs more is a poor start
MAX_NFEV_TRF = 1000


@dataclass
class Points:
    """Seed-aggregated points of one fit. ``x``: (n,) or (2, n) = (N, D); ``runs``: per point,
    the per-seed losses (for the bootstrap); ``mean``/``std`` over seeds: (n,)."""

    x: np.ndarray
    runs: list[np.ndarray]
    mean: np.ndarray = field(init=False)
    std: np.ndarray = field(init=False)

    def __post_init__(self):
        self.mean = np.array([r.mean() for r in self.runs])
        self.std = np.array([r.std(ddof=0) for r in self.runs])

    @property
    def n(self) -> int:
        return len(self.runs)

    def sigma(self) -> tuple[np.ndarray | None, str]:
        """Fit sigma and a word on the weighting (see module docstring)."""
        positive = self.std[self.std > 0]
        if positive.size == 0:
            return None, "unweighted (no spread over seeds)"
        if positive.size < self.std.size:
            return np.where(self.std > 0, self.std, positive.min()), "std over seeds (zeros → smallest positive)"
        return self.std, "std over seeds"


@dataclass
class FitResult:
    form: str
    n: int
    status: str  # "ok" | "failed"
    message: str = ""
    params: dict[str, float] | None = None
    stderr: dict[str, float | None] | None = None
    ci95: dict[str, list[float]] | None = None
    aicc: float | None = None
    rss: float | None = None
    chi2: float | None = None
    weighting: str = ""
    absolute_sigma: bool = False
    starts_ok: int = 0
    starts_total: int = 0
    reference: dict | None = None  # the conventional single-start fit, for comparison
    theta: np.ndarray | None = None  # internal parameters of the optimum
    boot: np.ndarray | None = None  # (B_ok, k) natural parameters of bootstrap replicates

    def record(self) -> dict:
        keys = ("form", "n", "status", "message", "params", "stderr", "ci95", "aicc", "rss", "chi2",
                "weighting", "absolute_sigma", "starts_ok", "starts_total", "reference")
        return {k: getattr(self, k) for k in keys}


def aicc(rss: float, n: int, k: int) -> float | None:
    """Small-sample Akaike criterion for least squares; None when n ≤ k + 1 or RSS = 0."""
    if n <= k + 1 or not rss > 0:
        return None
    return 2 * k + n * math.log(rss / n) + (2 * k * k + 2 * k) / (n - k - 1)


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _curve_fit(form: Form, lx, y, sigma, absolute_sigma, theta0, bounded: bool):
    """One curve_fit call: Levenberg–Marquardt, or trust-region reflective within the form's
    bounds; returns (theta, pcov, chi2) or None if it failed or left the finite range."""
    kw = dict(p0=theta0, sigma=sigma, absolute_sigma=absolute_sigma)
    if bounded:
        lo, hi = form.bounds_internal()
        kw.update(p0=np.clip(theta0, lo, hi), bounds=(lo, hi), method="trf", max_nfev=MAX_NFEV_TRF)
    else:
        kw.update(method="lm", maxfev=MAX_NFEV_LM)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            theta, pcov = curve_fit(form.model, lx, y, **kw)
        except (RuntimeError, ValueError, FloatingPointError, ZeroDivisionError):
            return None
        pred = form.model(lx, *theta)
    if not np.all(np.isfinite(pred)) or not np.all(np.isfinite(theta)):
        return None
    w = 1.0 if sigma is None else sigma
    return theta, pcov, float(np.sum(((y - pred) / w) ** 2))


def _best_fit(form: Form, lx, y, sigma, absolute_sigma, thetas) -> tuple[tuple | None, int]:
    """Lowest-chi² local fit over the starts ``thetas``, and how many starts converged.

    Every start is fitted without bounds first (Levenberg–Marquardt, fast). For a bounded form an
    end point outside the bounds is polished within them (trust-region reflective from its
    clipped value) — but only while its unbounded chi² is below the best feasible chi² so far,
    since the bounded optimum of that basin cannot be lower than it. Starts where the unbounded
    fit fails are retried within the bounds.
    """
    fits = [_curve_fit(form, lx, y, sigma, absolute_sigma, np.asarray(t, dtype=float), bounded=False) for t in thetas]
    if not form.bounded:
        ok = [f for f in fits if f is not None]
        return (min(ok, key=lambda f: f[2]) if ok else None), len(ok)
    lo, _ = form.bounds_internal()
    feasible = [f for f in fits if f is not None and np.all(f[0] >= lo)]
    outside = sorted((f for f in fits if f is not None and not np.all(f[0] >= lo)), key=lambda f: f[2])
    failed = [np.asarray(t, dtype=float) for t, f in zip(thetas, fits) if f is None]
    best = min(feasible, key=lambda f: f[2]) if feasible else None
    converged = len(feasible)
    for f in outside:
        if best is not None and f[2] >= best[2]:
            break
        polished = _curve_fit(form, lx, y, sigma, absolute_sigma, f[0], bounded=True)
        if polished is not None:
            converged += 1
            best = polished if best is None or polished[2] < best[2] else best
    for theta in failed:
        polished = _curve_fit(form, lx, y, sigma, absolute_sigma, theta, bounded=True)
        if polished is not None:
            converged += 1
            best = polished if best is None or polished[2] < best[2] else best
    return best, converged


def _summary(form: Form, lx, y, theta, pcov) -> dict:
    with np.errstate(all="ignore"):
        pred = form.model(lx, *theta)
    rss = float(np.sum((y - pred) ** 2))
    natural = form.to_natural(theta)
    jac = form.jacobian_to_natural(theta)
    var = np.diag(pcov) * jac**2 if pcov is not None else np.full(form.k, np.nan)
    return {
        "params": {p: float(v) for p, v in zip(form.params, natural)},
        "stderr": {p: _finite(np.sqrt(v)) if v >= 0 else None for p, v in zip(form.params, var)},
        "rss": rss,
        "aicc": aicc(rss, len(y), form.k),
    }


def fit_form(form: Form | str, points: Points, *, absolute_sigma: bool | None = None,
             bootstrap: int = 0, seed: int = 0) -> FitResult:
    """Fit ``form`` to ``points`` from every start of :func:`forms.starts` (plus the
    conventional reference start); keep the lowest chi². ``absolute_sigma`` defaults to
    False for 1D and True for 2D forms. ``bootstrap`` > 0 adds percentile 95 % intervals from
    that many resamplings of the seeds at every point (sigma kept fixed), seeded by ``seed``.
    """
    form = FORMS[form] if isinstance(form, str) else form
    absolute_sigma = (form.dim == 2) if absolute_sigma is None else absolute_sigma
    n = points.n
    result = FitResult(form=form.name, n=n, status="failed", absolute_sigma=absolute_sigma)
    if n < form.k:
        result.message = f"{n} points for {form.k} parameters"
        return result
    sigma, result.weighting = points.sigma()
    if sigma is None:
        absolute_sigma = False
        result.absolute_sigma = False
    lx, y = np.log(np.asarray(points.x, dtype=float)), points.mean
    x_nat = np.asarray(points.x, dtype=float)
    reference_theta = form.to_internal(form.reference_start(x_nat, y))
    candidates = starts(form, x_nat, y)
    best, result.starts_ok = _best_fit(form, lx, y, sigma, absolute_sigma, candidates)
    reference, _ = _best_fit(form, lx, y, sigma, absolute_sigma, [reference_theta])
    result.starts_total = len(candidates)
    if best is None or (reference is not None and reference[2] < best[2]):
        best = reference
    if best is None:
        result.message = f"no start of {len(candidates) + 1} converged"
        return result
    theta, pcov, chi2 = best
    summary = _summary(form, lx, y, theta, pcov)
    result.status = "ok"
    result.theta = theta
    result.chi2 = chi2
    result.params, result.stderr = summary["params"], summary["stderr"]
    result.rss, result.aicc = summary["rss"], summary["aicc"]
    if reference is not None:
        ref = _summary(form, lx, y, reference[0], reference[1])
        result.reference = {"params": ref["params"], "rss": ref["rss"], "aicc": ref["aicc"], "chi2": reference[2]}
    if bootstrap > 0:
        _bootstrap(form, points, result, sigma, absolute_sigma, bootstrap, seed, reference_theta)
    return result


def _bootstrap(form, points, result, sigma, absolute_sigma, b, seed, reference_theta):
    """Percentile intervals from resampling each point's seeds with replacement."""
    if all(len(r) < 2 for r in points.runs):
        result.message = "bootstrap skipped: one seed per point"
        return
    rng = np.random.default_rng(seed)
    lx = np.log(np.asarray(points.x, dtype=float))
    samples = []
    for _ in range(b):
        y = np.array([rng.choice(r, size=len(r), replace=True).mean() for r in points.runs])
        best, _ = _best_fit(form, lx, y, sigma, absolute_sigma, [result.theta, reference_theta])
        if best is not None:
            samples.append(form.to_natural(best[0]))
    if len(samples) < max(10, b // 2):
        result.message = f"bootstrap: only {len(samples)} of {b} replicates converged"
        return
    result.boot = np.array(samples)
    lo, hi = np.percentile(result.boot, [2.5, 97.5], axis=0)
    result.ci95 = {p: [float(a), float(c)] for p, a, c in zip(form.params, lo, hi)}


def fit_series(all_series, *, forms_1d=None, forms_2d=None, bootstrap: int = 0, seed: int = 0) -> list[dict]:
    """Fit every form to every series (objects with ``family``, ``axis``, ``points``, ``fixed``,
    ``source``); returns ``fits.json`` records with ``delta_aicc`` against the best form of the
    same family and axis and ``x_range`` (measured [min, max] per axis). Bootstrap seeds are derived from ``seed`` and the fit's name, so one
    fit's interval does not change when others are added."""
    from .forms import FORMS_1D, FORMS_2D

    records = []
    for s in all_series:
        names = (forms_2d or FORMS_2D) if s.axis == "ND" else (forms_1d or FORMS_1D)
        x = np.asarray(s.points.x, dtype=float)
        x_range = ({"N": [x[0].min(), x[0].max()], "D": [x[1].min(), x[1].max()]} if s.axis == "ND"
                   else {s.axis: [x.min(), x.max()]})
        group = []
        for name in names:
            fit_seed = zlib.crc32(f"{s.family}/{s.axis}/{name}".encode()) ^ seed
            result = fit_form(name, s.points, bootstrap=bootstrap, seed=fit_seed)
            rec = {"family": s.family, "axis": s.axis, **result.record(), "fixed": s.fixed, "source": s.source,
                   "x_range": {k: [float(v) for v in r] for k, r in x_range.items()}}
            rec["_result"] = result
            group.append(rec)
        best = min((r["aicc"] for r in group if r["aicc"] is not None), default=None)
        for r in group:
            r["delta_aicc"] = None if best is None or r["aicc"] is None else r["aicc"] - best
        records += group
    return records
