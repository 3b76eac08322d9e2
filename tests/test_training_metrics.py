"""Metrics, colour pipeline and LR schedule (no training)."""

from __future__ import annotations

import math

import colour
import numpy as np
import pytest
import torch

from lightning_dielectric.data.schema import ENERGY_GRID
from lightning_dielectric.training import optics
from lightning_dielectric.training.metrics import (
    METRICS,
    SpectralMetrics,
    latex_table,
    markdown_table,
    per_material_metrics,
    summarise_metrics,
)
from lightning_dielectric.training.schedule import warmup_cosine


def lorentz(w0: float, gamma: float, strength: float) -> np.ndarray:
    """Lorentz oscillator contribution to ε on the energy grid (Im > 0)."""
    return strength * w0**2 / (w0**2 - ENERGY_GRID**2 - 1j * gamma * ENERGY_GRID)


def as_eps(*spectra: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.stack([np.stack([s.real, s.imag], -1) for s in spectra]))


GOLD = 1 + lorentz(3.5, 1.5, 6.0)  # interband edge absorbing blue, ω_D 9 eV
ALUMINIUM = 1 + lorentz(1.5, 0.5, 1.0)  # weak near-IR interband, ω_D 15 eV


def test_similarity_and_r2_known_values():
    true = as_eps(GOLD)
    scaled = true.clone()
    scaled[..., 1] *= 1.1  # 10 % too large Im ε everywhere
    m = per_material_metrics(scaled, torch.tensor([9.0]), true, torch.tensor([10.0]))
    assert m["sc_im"].item() == pytest.approx(0.9, abs=1e-12)
    assert m["sc_re"].item() == pytest.approx(1.0)
    assert m["mae_re"].item() == 0
    assert m["mae_im"].item() == pytest.approx(0.1 * np.abs(GOLD.imag).mean(), rel=1e-9)
    im = true[0, :, 1].numpy()
    expected_r2 = 1 - np.sum((0.1 * im) ** 2) / np.sum((im - im.mean()) ** 2)
    assert m["r2_im"].item() == pytest.approx(expected_r2, rel=1e-9)
    assert m["drude_abs_err"].item() == pytest.approx(1.0)
    assert m["drude_rel_err"].item() == pytest.approx(10.0)


def test_undefined_metrics_are_nan_and_skipped():
    true = torch.zeros(2, len(ENERGY_GRID), 2)
    true[..., 0] = 1.0  # constant Re, zero Im: R² and SC of Im undefined
    true[1, :, 1] = torch.linspace(0, 1, len(ENERGY_GRID))
    m = per_material_metrics(true + 0.1, torch.ones(2), true, torch.ones(2))
    assert math.isnan(m["r2_im"][0]) and math.isnan(m["sc_im"][0]) and math.isnan(m["r2_re"][0])
    summary = summarise_metrics({**m, "drude_pred": torch.ones(2), "drude_true": torch.ones(2)})
    assert summary["sc_im/mean"] == pytest.approx(m["sc_im"][1].item())
    assert summary["n_materials"] == 2


def test_colour_pipeline_matches_colour_science():
    eps, drude = as_eps(GOLD), torch.tensor([9.0])
    refl = optics.visible_reflectance(eps, drude)
    shape = colour.SpectralShape(380, 780, 5)
    sd = colour.SpectralDistribution(dict(zip(optics.WAVELENGTHS_NM, refl[0].numpy())))
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(shape)
    d65 = colour.SDS_ILLUMINANTS["D65"].copy().align(shape)
    xyz = colour.sd_to_XYZ(sd, cmfs, d65, method="Integration")
    np.testing.assert_allclose(optics.reflectance_to_xyz(refl)[0].numpy(), xyz, rtol=1e-9)
    white = colour.sd_to_XYZ(colour.sd_ones(shape), cmfs, d65, method="Integration")
    lab = colour.XYZ_to_Lab(xyz / 100, colour.XYZ_to_xy(white / 100))
    np.testing.assert_allclose(optics.metal_lab(eps, drude)[0].numpy(), lab, atol=1e-9)


def test_visible_reflectance_matches_numpy_reference():
    eps, drude = as_eps(GOLD), torch.tensor([9.0])
    energy = 1239.84198 / np.arange(380.0, 781.0, 5.0)  # eV
    total = np.interp(energy, ENERGY_GRID, GOLD.real) + 1j * np.interp(energy, ENERGY_GRID, GOLD.imag)
    total += -(9.0**2) / (energy**2 + 1j * 0.1 * energy)
    n = np.sqrt(total)
    expected = np.abs((n - 1) / (n + 1)) ** 2
    np.testing.assert_allclose(optics.visible_reflectance(eps, drude)[0].numpy(), expected, rtol=1e-6)


def test_reflectance_physics():
    # A perfect Drude metal (ω_D ≫ ω, ε_inter = 1) reflects almost everything; vacuum (ε = 1) nothing.
    eps = as_eps(np.ones_like(ENERGY_GRID, dtype=complex), np.ones_like(ENERGY_GRID, dtype=complex))
    refl = optics.visible_reflectance(eps, torch.tensor([200.0, 0.0]))
    assert refl[0].min() > 0.98 and refl[1].abs().max() < 1e-12
    lab = optics.metal_lab(eps, torch.tensor([200.0, 0.0]))
    assert lab[0, 0] > 99 and lab[0, 1:].abs().max() < 0.5  # near-white
    # Drude sign convention: absorption, Im ε_D > 0.
    total = optics.total_epsilon(torch.zeros(1, 3, 2), torch.tensor([9.0]), torch.tensor([1.0, 2.0, 3.0]))
    assert (total.imag > 0).all() and (total.real < 0).all()


def test_delta_e_zero_for_identical_and_gold_vs_aluminium_plausible():
    eps, drude = as_eps(GOLD, ALUMINIUM), torch.tensor([9.0, 15.0])
    assert optics.delta_e(eps, drude, eps, drude).abs().max() == 0
    gold_lab, al_lab = optics.metal_lab(eps, drude)
    assert gold_lab[2] > 15  # yellow: b* clearly positive
    assert al_lab[0] > 90 and al_lab[1:].abs().max() < 3  # bright, neutral
    de = optics.delta_e(eps[:1], drude[:1], eps[1:], drude[1:]).item()
    assert 15 < de < 60
    gold_hex, al_hex = optics.srgb_hex(eps, drude)
    r, g, b = (int(gold_hex[i : i + 2], 16) for i in (1, 3, 5))
    assert r > g > b  # gold-ish
    assert min(int(al_hex[i : i + 2], 16) for i in (1, 3, 5)) > 230  # silvery white


def test_spectral_metrics_deduplicates_and_summarises():
    eps, drude = as_eps(GOLD, ALUMINIUM), torch.tensor([9.0, 15.0])
    pred = eps * 1.05
    metric = SpectralMetrics()
    metric.update(pred, drude + 1, eps, drude, ["a", "b"])
    metric.update(pred[:1], drude[:1] + 1, eps[:1], drude[:1], ["a"])  # a padded repeat
    values = metric.compute()
    assert values["mae_re"].shape == (2,)
    direct = per_material_metrics(pred, drude + 1, eps, drude)
    for name in METRICS:
        np.testing.assert_allclose(values[name].numpy(), direct[name].numpy())
    summary = summarise_metrics(values)
    assert summary["drude_abs_err/mean"] == pytest.approx(1.0)
    assert summary["drude_abs_err/std"] == pytest.approx(0.0)
    assert summary["mae_im/median"] == pytest.approx(direct["mae_im"].mean().item())
    md, tex = markdown_table(summary), latex_table(summary)
    assert "| ΔE*ab (CIE76) |" in md and "2 materials" in md
    assert r"\begin{tabular}" in tex and tex.count(r"\\") == len(METRICS) + 1


def test_warmup_cosine_schedule():
    start = 1e-7 / 1e-3
    assert warmup_cosine(0, 50, 500, start) == pytest.approx(start)
    assert warmup_cosine(25, 50, 500, start) == pytest.approx(start + (1 - start) / 2)
    assert warmup_cosine(50, 50, 500, start) == pytest.approx(1.0)
    assert warmup_cosine(275, 50, 500, start) == pytest.approx(0.5)
    assert warmup_cosine(500, 50, 500, start) == pytest.approx(0.0, abs=1e-12)
    values = [warmup_cosine(s, 50, 500, start) for s in range(50, 501)]
    assert all(a >= b for a, b in zip(values, values[1:]))
