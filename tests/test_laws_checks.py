"""Extrapolation (holdout) on a known law, the log-space Huber fit against an outlier, and the
flags of the report's summaries."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dielectric.laws.fit import Points, fit_form, fit_series
from lightning_dielectric.laws.forms import FORMS
from lightning_dielectric.laws.holdout import best_extrapolating, holdout_fits, holdout_section
from lightning_dielectric.laws.robust import huber_fit
from lightning_dielectric.laws.runs import Series
from lightning_dielectric.laws.summary import best_forms_section, flags

BROKEN = {"alpha1": 0.1, "alpha2": 0.5, "xc": 2.0e4}
X = np.array([2500.0, 5000, 10000, 20000, 40000, 80000, 160000])


def points(form, params, x, noise=0.002, seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    mean = FORMS[form](x, params)
    return Points(x, [m * (1 + noise * rng.standard_normal(seeds)) for m in mean])


def test_holdout_on_a_broken_law_prefers_the_broken_form():
    s = Series("toy", "D", points("broken", BROKEN, X), {"width": 1}, "test")
    held = holdout_fits([s], 1, ["power", "broken"])
    by_form = {r["form"]: r for r in held}
    assert by_form["broken"]["x_held"] == [160000.0] and by_form["broken"]["n_fit"] == 6
    # the held-out truth: a broken law fitted on 6 points predicts it within a few per cent ...
    truth = float(FORMS["broken"](np.array([160000.0]), BROKEN)[0])
    pred = truth * (1 + by_form["broken"]["rel_err"][0])
    assert abs(pred / truth - 1) < 0.03
    # ... while the power law, fitted through the bend, overshoots the loss there
    assert by_form["power"]["rel_err"][0] > 0.05
    assert best_extrapolating(held)[("toy", "D")]["form"] == "broken"
    records = fit_series([s], forms_1d=["power", "broken"])
    text = "\n".join(holdout_section(held, records, 1))
    assert "broken law" in text and "better than a plain power law" in text


def test_holdout_needs_enough_points():
    s = Series("toy", "D", points("broken", BROKEN, X[:3]), {}, "test")
    assert holdout_fits([s], 2) == []
    with pytest.raises(ValueError, match="K ≥ 1"):
        holdout_fits([s], 0)


def test_huber_in_log_space_resists_an_outlier():
    truth = {"alpha": 0.3, "x0": 1.0e3}
    x = np.geomspace(1e3, 1e6, 10)
    p = points("power", truth, x, noise=0.001, seeds=3)
    p.runs[-1] = p.runs[-1] + p.runs[-1].mean()  # one bad point at the end (mean doubled, spread kept)
    p.__post_init__()
    lsq = fit_form("power", p)
    robust = huber_fit("power", p)
    assert robust["status"] == "ok"
    assert abs(lsq.params["alpha"] - 0.3) > 0.05  # least squares is pulled by the outlier
    assert robust["params"]["alpha"] == pytest.approx(0.3, abs=0.005)
    assert robust["params"]["x0"] == pytest.approx(1.0e3, rel=0.05)


def _record(form, params, axis="D", x_range=(2500.0, 160000.0)):
    return {"family": "toy", "axis": axis, "form": form, "status": "ok", "params": params, "aicc": -10.0,
            "delta_aicc": 0.0, "fixed": {}, "x_range": {axis: list(x_range)} if axis != "ND" else x_range}


def test_flags_for_breaks_outside_the_data_and_wrong_signs():
    outside = flags(_record("broken", {"alpha1": 0.1, "alpha2": 0.3, "xc": 7.0e4}, x_range=(150.0, 4800.0)))
    assert len(outside) == 1 and "outside the measured D range" in outside[0]
    inside = flags(_record("broken", {"alpha1": 0.1, "alpha2": 0.3, "xc": 2.0e3}, x_range=(150.0, 4800.0)))
    assert inside == []
    wrong = flags(_record("broken", {"alpha1": 0.1, "alpha2": -0.01, "xc": 1.0e4}))
    assert len(wrong) == 1 and "alpha2 = -0.010 ≤ 0" in wrong[0]
    grid = _record("kaplan", {"alpha_n": 0.3, "alpha_d1": 0.2, "alpha_d2": 0.4, "n_c": 1e5, "d_c": 1e6}, axis="ND",
                   x_range={"N": [1e4, 1e6], "D": [1e3, 1e5]})
    assert any("d_c" in f and "outside" in f for f in flags(grid))


def test_parameter_at_its_bound_is_flagged():
    rec = _record("power_floor", {"alpha": 0.3, "x0": 1e3, "l_inf": 0.0})
    assert any("l_inf" in f and "bound" in f for f in flags(rec))
    assert flags(_record("power_floor", {"alpha": 0.3, "x0": 1e3, "l_inf": 0.2})) == []


def test_close_forms_are_called_indistinguishable():
    best = _record("broken", {"alpha1": 0.1, "alpha2": 0.3, "xc": 7.0e4}, x_range=(150.0, 4800.0))
    close = {**_record("power", {"alpha": 0.2, "x0": 10.0}), "delta_aicc": 1.5, "aicc": -8.5}
    far = {**_record("power_floor", {"alpha": 0.2, "x0": 10.0, "l_inf": 0.1}), "delta_aicc": 2.5, "aicc": -7.5}
    text = "\n".join(best_forms_section([best, close, far]))
    assert "broken, power are indistinguishable (ΔAICc < 2)" in text
    assert "power_floor" not in text
    assert "⚠ break xc ≈ 70,000 lies outside the measured D range [150, 4,800]" in text
