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
from typing import NamedTuple

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from .forms import FORMS, FORMS_1D, FORMS_2D, Form, starts

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
    boot: np.ndarray | None = None  # (B_ok, k) natural parameters of bootstrap replicates

    def record(self) -> dict:
        keys = ("form", "n", "status", "message", "params", "stderr", "ci95", "aicc", "rss", "chi2",
                "weighting", "absolute_sigma", "starts_ok", "starts_total", "reference")
        return {k: getattr(self, k) for k in keys}


class Candidate(NamedTuple):
    """One converged local fit: internal (log10-scale) parameters ``theta`` (k,), their covariance
    ``pcov`` (k, k) and the weighted objective ``chi2``."""

    theta: np.ndarray
    pcov: np.ndarray
    chi2: float


class Law(NamedTuple):
    """A scaling law: the ``form``'s name and its natural ``params`` (name -> value)."""

    form: str
    params: dict[str, float]


def replicate_laws(fit) -> list[Law]:
    """The law of every bootstrap replicate of ``fit`` (a :class:`FitResult`; [] without one)."""
    if fit.boot is None:
        return []
    return [Law(fit.form, dict(zip(FORMS[fit.form].params, theta))) for theta in fit.boot]


def aicc(rss: float, n: int, k: int) -> float | None:
    """Small-sample Akaike criterion for least squares; None when n ≤ k + 1 or RSS = 0."""
    if n <= k + 1 or not rss > 0:
        return None
    return 2 * k + n * math.log(rss / n) + (2 * k * k + 2 * k) / (n - k - 1)


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _curve_fit(form: Form, lx, y, sigma, absolute_sigma, theta0, bounded: bool) -> Candidate | None:
    """One curve_fit call: Levenberg–Marquardt, or trust-region reflective within the form's
    bounds; None if it failed or left the finite range."""
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
    return Candidate(theta, pcov, float(np.sum(((y - pred) / w) ** 2)))


def _best_fit(form: Form, lx, y, sigma, absolute_sigma, thetas) -> tuple[Candidate | None, int]:
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
        return (min(ok, key=lambda f: f.chi2) if ok else None), len(ok)
    lo, _ = form.bounds_internal()
    feasible = [f for f in fits if f is not None and np.all(f.theta >= lo)]
    outside = sorted((f for f in fits if f is not None and not np.all(f.theta >= lo)), key=lambda f: f.chi2)
    failed = [np.asarray(t, dtype=float) for t, f in zip(thetas, fits) if f is None]
    best = min(feasible, key=lambda f: f.chi2) if feasible else None
    converged = len(feasible)
    for f in outside:
        if best is not None and f.chi2 >= best.chi2:
            break
        polished = _curve_fit(form, lx, y, sigma, absolute_sigma, f.theta, bounded=True)
        if polished is not None:
            converged += 1
            best = polished if best is None or polished.chi2 < best.chi2 else best
    for theta in failed:
        polished = _curve_fit(form, lx, y, sigma, absolute_sigma, theta, bounded=True)
        if polished is not None:
            converged += 1
            best = polished if best is None or polished.chi2 < best.chi2 else best
    return best, converged


def _summary(form: Form, lx, y, fit: Candidate) -> dict:
    """Natural parameters, their standard errors, the unweighted RSS and the AICc of ``fit``."""
    with np.errstate(all="ignore"):
        pred = form.model(lx, *fit.theta)
    rss = float(np.sum((y - pred) ** 2))
    natural = form.to_natural(fit.theta)
    jac = form.jacobian_to_natural(fit.theta)
    var = np.diag(fit.pcov) * jac**2 if fit.pcov is not None else np.full(form.k, np.nan)
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
    if n < form.k:
        return FitResult(form=form.name, n=n, status="failed", message=f"{n} points for {form.k} parameters",
                         absolute_sigma=absolute_sigma)
    sigma, weighting = points.sigma()
    absolute_sigma = absolute_sigma and sigma is not None
    lx, y = np.log(np.asarray(points.x, dtype=float)), points.mean
    x_nat = np.asarray(points.x, dtype=float)
    reference_theta = form.to_internal(form.reference_start(x_nat, y))
    candidates = starts(form, x_nat, y)
    best, starts_ok = _best_fit(form, lx, y, sigma, absolute_sigma, candidates)
    reference, _ = _best_fit(form, lx, y, sigma, absolute_sigma, [reference_theta])
    if best is None or (reference is not None and reference.chi2 < best.chi2):
        best = reference
    common = dict(form=form.name, n=n, weighting=weighting, absolute_sigma=absolute_sigma, starts_ok=starts_ok,
                  starts_total=len(candidates))
    if best is None:
        return FitResult(status="failed", message=f"no start of {len(candidates) + 1} converged", **common)
    summary = _summary(form, lx, y, best)
    ref = None
    if reference is not None:
        r = _summary(form, lx, y, reference)
        ref = {"params": r["params"], "rss": r["rss"], "aicc": r["aicc"], "chi2": reference.chi2}
    boot, message = None, ""
    if bootstrap > 0:
        boot, message = _bootstrap(form, points, [best.theta, reference_theta], sigma=sigma,
                                   absolute_sigma=absolute_sigma, replicates=bootstrap, seed=seed)
    return FitResult(status="ok", message=message, params=summary["params"], stderr=summary["stderr"],
                     ci95=None if boot is None else _ci95(form, boot), aicc=summary["aicc"], rss=summary["rss"],
                     chi2=best.chi2, reference=ref, boot=boot, **common)


def _bootstrap(form: Form, points: Points, thetas: list[np.ndarray], *, sigma, absolute_sigma: bool,
               replicates: int, seed: int) -> tuple[np.ndarray | None, str]:
    """Refit ``replicates`` resamplings of each point's seeds (with replacement; sigma fixed),
    starting from ``thetas``: the natural parameters of the converged refits (B_ok, k), or None
    and the reason when there is no spread to resample or too few refits converge."""
    if all(len(r) < 2 for r in points.runs):
        return None, "bootstrap skipped: one seed per point"
    rng = np.random.default_rng(seed)
    lx = np.log(np.asarray(points.x, dtype=float))
    samples = []
    for _ in range(replicates):
        y = np.array([rng.choice(r, size=len(r), replace=True).mean() for r in points.runs])
        best, _ = _best_fit(form, lx, y, sigma, absolute_sigma, thetas)
        if best is not None:
            samples.append(form.to_natural(best.theta))
    if len(samples) < max(10, replicates // 2):
        return None, f"bootstrap: only {len(samples)} of {replicates} replicates converged"
    return np.array(samples), ""


def _ci95(form: Form, boot: np.ndarray) -> dict[str, list[float]]:
    """Percentile 95 % interval of every parameter over the bootstrap replicates ``boot`` (B, k)."""
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {p: [float(a), float(c)] for p, a, c in zip(form.params, lo, hi)}


def fit_series(all_series, *, forms_1d=None, forms_2d=None, bootstrap: int = 0, seed: int = 0) -> list[dict]:
    """Fit every form to every series (objects with ``family``, ``axis``, ``points``, ``fixed``,
    ``source``); returns ``fits.json`` records with ``delta_aicc`` against the best form of the
    same family and axis and ``x_range`` (measured [min, max] per axis). Bootstrap seeds are derived from ``seed`` and the fit's name, so one
    fit's interval does not change when others are added."""
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
