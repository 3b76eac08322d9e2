"""Compute-optimal frontier: closed-form allocation exponents, recovery from noisy data, the
empirical Pareto frontier, and compute for a target loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lightning_dielectric.laws.fit import Points, fit_form
from lightning_dielectric.laws.forms import FORMS
from lightning_dielectric.laws.frontier import (ComputeModel, compute_for_loss, compute_model, empirical_frontier,
                                                law_frontier, optimum)

# no break in D (alpha_d1 = alpha_d2): L = l_0 + (n_c/N)^0.6 + (d_c/D)^0.3 → N* ∝ C^(1/3), D* ∝ C^(2/3)
LAW = {"alpha_n": 0.6, "alpha_d1": 0.3, "alpha_d2": 0.3, "n_c": 2.0e4, "d_c": 1.0e3, "l_0": 0.2}
MODEL = ComputeModel(f=2.0, c=1.0, epochs=10.0, n_range=(1e4, 1e7))


def runs_table(noise: float, seeds=(1, 2, 3)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for n in np.geomspace(1e4, 1e7, 6):
        for d in np.geomspace(1e3, 1e6, 6):
            mean = float(FORMS["hoffmann"]((np.array([n]), np.array([d])), LAW)[0])
            for s in seeds:
                rows.append({"family": "toy", "N": n, "D": d, "seed": s, "val_loss": mean * (1 + noise * rng.standard_normal()),
                             "flops": float(MODEL.flops(n, d)), "flops_per_structure": 2.0 * n})
    return pd.DataFrame(rows)


def test_exact_law_gives_the_closed_form_exponents():
    front = law_frontier(type("Fit", (), {"form": "hoffmann", "params": LAW, "boot": None})(), MODEL, (1e12, 1e16))
    assert front["interior"]
    assert front["a"] == pytest.approx(1 / 3, abs=2e-3)
    assert front["b"] == pytest.approx(2 / 3, abs=2e-3)
    # at the optimum the marginal gains balance: α_N (n_c/N)^α_N = β (d_c/D)^β (Lagrange condition)
    _, n, d, _ = optimum("hoffmann", LAW, MODEL, 1e14)
    assert 0.6 * (2e4 / n) ** 0.6 == pytest.approx(0.3 * (1e3 / d) ** 0.3, rel=1e-4)


def test_exponents_recovered_from_noisy_runs():
    df = runs_table(noise=0.002)
    model = compute_model(df)
    assert model.c == pytest.approx(1.0) and model.epochs == pytest.approx(10.0)
    groups = sorted(df.groupby(["N", "D"])["val_loss"], key=lambda g: (g[0][1], g[0][0]))
    points = Points(np.array([k for k, _ in groups]).T, [g.to_numpy() for _, g in groups])
    fit = fit_form("hoffmann", points, bootstrap=30, seed=1)
    front = law_frontier(fit, model, (df["flops"].min(), df["flops"].max()))
    assert front["a"] == pytest.approx(1 / 3, abs=0.05)
    assert front["b"] == pytest.approx(2 / 3, abs=0.05)
    lo, hi = front["ci95"]["a"]
    assert lo <= front["a"] <= hi and hi - lo < 0.2


def test_empirical_frontier_is_the_pareto_set():
    df = pd.DataFrame({"N": [1, 1, 2, 2, 4], "D": [10, 20, 10, 20, 40], "seed": 0,
                       "flops": [10.0, 20.0, 20.0, 40.0, 160.0], "val_loss": [3.0, 2.5, 2.0, 2.2, 1.0]})
    front = empirical_frontier(df, bootstrap=0)
    assert list(front["compute"]) == [10.0, 20.0, 160.0]
    assert list(front["loss"]) == [3.0, 2.0, 1.0]
    assert front["loss_slope"] == pytest.approx(np.polyfit(np.log([10, 20, 160]), np.log([3, 2, 1]), 1)[0])


def test_compute_for_loss_inverts_the_frontier():
    fit = type("Fit", (), {"form": "hoffmann", "params": LAW, "boot": None})()
    c, n, d = compute_for_loss(fit, MODEL, 0.5)
    assert optimum("hoffmann", LAW, MODEL, c)[0] == pytest.approx(0.5, rel=1e-6)
    assert MODEL.flops(n, d) == pytest.approx(c, rel=1e-9)
    assert compute_for_loss(fit, MODEL, 0.19) is None  # below l_0
