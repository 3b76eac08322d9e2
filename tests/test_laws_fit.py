"""Scaling-law forms and fits: recovery of known parameters from noisy synthetic seeds, AICc
selection of the generating form, failure reporting, weighting rules, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dielectric.laws.fit import Points, aicc, fit_form, fit_series
from lightning_dielectric.laws.forms import FORMS, FORMS_1D, FORMS_2D

TRUE = {
    "power": {"alpha": 0.3, "x0": 2.0e4},
    "power_floor": {"alpha": 0.5, "x0": 3.0e4, "l_inf": 0.6},
    "broken": {"alpha1": 0.12, "alpha2": 0.5, "xc": 3.0e4},
    "broken_amp": {"alpha1": 0.1, "alpha2": 0.45, "xc": 2.0e4, "amplitude": 1.6},
    "kaplan": {"alpha_n": 0.3, "alpha_d1": 0.2, "alpha_d2": 0.4, "n_c": 2.0e5, "d_c": 3.0e4},
    "hoffmann": {"alpha_n": 0.6, "alpha_d1": 0.15, "alpha_d2": 0.55, "n_c": 5.0e4, "d_c": 1.5e4, "l_0": 0.3},
}
SCALE_PARAMS = {"x0", "xc", "n_c", "d_c", "amplitude"}


def synthetic(form: str, noise: float = 0.004, seeds: int = 3, rng_seed: int = 0) -> Points:
    """Three 'seeds' per point: the true law times (1 + noise·N(0, 1))."""
    rng = np.random.default_rng(rng_seed)
    if FORMS[form].dim == 1:
        x = np.geomspace(1.0e3, 1.0e6, 12)
    else:
        n, d = np.meshgrid(np.geomspace(2.0e5, 1.0e8, 7), np.geomspace(2.5e3, 1.6e5, 7))
        x = np.stack([n.ravel(), d.ravel()])
    mean = FORMS[form](x, TRUE[form])
    runs = [m * (1 + noise * rng.standard_normal(seeds)) for m in mean]
    return Points(x, runs)


@pytest.mark.parametrize("form", FORMS_1D + FORMS_2D)
def test_recovers_known_parameters(form):
    result = fit_form(form, synthetic(form))
    assert result.status == "ok", result.message
    for name, true in TRUE[form].items():
        got = result.params[name]
        if name in SCALE_PARAMS:
            assert abs(np.log10(got) - np.log10(true)) < 0.08, (name, got, true)
        else:
            assert got == pytest.approx(true, abs=0.03), (name, got, true)
        # the covariance error is finite and the truth lies within 5 of them
        err = result.stderr[name]
        assert err is not None and err > 0
        assert abs(got - true) < 5 * err + 1e-9 * abs(true), (name, got, true, err)


@pytest.mark.parametrize("form", FORMS_1D)
def test_aicc_picks_generating_1d_form(form):
    points = synthetic(form, rng_seed=1)
    fits = {name: fit_form(name, points) for name in FORMS_1D}
    ranked = sorted((f for f in fits.values() if f.aicc is not None), key=lambda f: f.aicc)
    assert ranked[0].form == form, {f.form: round(f.aicc, 2) for f in ranked}


@pytest.mark.parametrize("form", FORMS_2D)
def test_aicc_picks_generating_2d_form(form):
    points = synthetic(form, rng_seed=2)
    fits = [fit_form(name, points) for name in FORMS_2D]
    assert min(fits, key=lambda f: f.aicc).form == form, {f.form: f.aicc for f in fits}


def test_forms_match_their_written_equations():
    x = np.array([1.0e3, 3.0e4, 1.0e6])
    p = TRUE["broken_amp"]
    expected = p["amplitude"] * (p["xc"] / x) ** p["alpha2"] * (1 + p["xc"] / x) ** (p["alpha1"] - p["alpha2"])
    assert np.allclose(FORMS["broken_amp"](x, p), expected, rtol=1e-12)
    # broken: slope alpha1 far below xc, alpha2 far above
    q = TRUE["broken"]
    lo, hi = np.array([1.0, 10.0]), np.array([1.0e9, 1.0e10])
    slope = lambda xs: -np.diff(np.log(FORMS["broken"](xs, q)))[0] / np.log(10.0)
    assert slope(lo) == pytest.approx(q["alpha1"], abs=1e-3)
    assert slope(hi) == pytest.approx(q["alpha2"], abs=1e-3)
    k = TRUE["kaplan"]
    n, d = np.array([1.0e6]), np.array([2.0e4])
    expected = ((k["n_c"] / n) ** (k["alpha_n"] / k["alpha_d2"])
                + (k["d_c"] / d) * (1 + k["d_c"] / d) ** (k["alpha_d1"] / k["alpha_d2"] - 1)) ** k["alpha_d2"]
    assert np.allclose(FORMS["kaplan"]((n, d), k), expected, rtol=1e-12)
    h = TRUE["hoffmann"]
    expected = (h["l_0"] + (h["n_c"] / n) ** h["alpha_n"]
                + (h["d_c"] / d) ** h["alpha_d2"] * (1 + h["d_c"] / d) ** (h["alpha_d1"] - h["alpha_d2"]))
    assert np.allclose(FORMS["hoffmann"]((n, d), h), expected, rtol=1e-12)


def test_aicc_formula_and_undefined_cases():
    assert aicc(0.5, 10, 3) == pytest.approx(6 + 10 * np.log(0.05) + 24 / 6)
    assert aicc(0.5, 4, 3) is None  # n ≤ k + 1
    assert aicc(0.0, 10, 3) is None


def test_too_few_points_is_a_reported_failure():
    points = Points(np.array([1.0e3, 1.0e4, 1.0e5]), [np.array([1.0, 1.1])] * 3)
    result = fit_form("broken_amp", points)
    assert result.status == "failed" and "3 points for 4 parameters" in result.message
    assert result.params is None


def test_zero_spread_weighting():
    x = np.geomspace(1e3, 1e6, 8)
    y = FORMS["power"](x, TRUE["power"])
    single = fit_form("power", Points(x, [np.array([v]) for v in y]))
    assert single.status == "ok" and single.weighting.startswith("unweighted")
    assert single.params["alpha"] == pytest.approx(0.3, abs=1e-6)
    mixed = [np.array([v, v]) if i == 0 else np.array([v * 0.99, v * 1.01]) for i, v in enumerate(y)]
    result = fit_form("power", Points(x, mixed))
    assert result.status == "ok" and "zeros" in result.weighting


def test_relative_sigma_estimates_do_not_depend_on_sigma_scale():
    points = synthetic("broken", rng_seed=3)
    base = fit_form("broken", points)
    scaled = Points(points.x, [points.mean[i] + (r - points.mean[i]) * 10 for i, r in enumerate(points.runs)])
    other = fit_form("broken", scaled)
    for name in base.params:  # same means, sigma ×10: same estimates and (relative) errors
        assert other.params[name] == pytest.approx(base.params[name], rel=1e-5)
        assert other.stderr[name] == pytest.approx(base.stderr[name], rel=1e-4)


def test_bootstrap_intervals_are_seeded_and_cover_the_estimate():
    points = synthetic("broken", noise=0.01, rng_seed=4)
    a = fit_form("broken", points, bootstrap=40, seed=7)
    b = fit_form("broken", points, bootstrap=40, seed=7)
    c = fit_form("broken", points, bootstrap=40, seed=8)
    assert a.ci95 == b.ci95
    assert a.ci95 != c.ci95
    for name, (lo, hi) in a.ci95.items():
        assert lo < hi
        assert lo <= a.params[name] * (1 + 1e-6) + 1e-9 and a.params[name] <= hi * (1 + 1e-6) + 1e-9


def test_fit_series_records_delta_aicc():
    class S:
        family, axis, fixed, source = "toy", "D", {"width": 256}, "test"
        points = synthetic("broken", rng_seed=5)

    records = fit_series([S()])
    assert [r["form"] for r in records] == list(FORMS_1D)
    assert min(r["delta_aicc"] for r in records) == 0.0
    best = next(r for r in records if r["delta_aicc"] == 0.0)
    assert best["form"] == "broken"
    assert set(best) >= {"family", "axis", "form", "params", "stderr", "ci95", "aicc", "rss", "n"}
