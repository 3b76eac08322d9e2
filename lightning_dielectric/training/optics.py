"""From a predicted (ε_inter, ω_D) to a metal's reflectance and colour.

Conventions (all energies in eV, photon energy ħω):

- Time dependence e^{-iωt}, so absorption means Im ε > 0.
- Total dielectric function ε(ω) = ε_inter(ω) + ε_D(ω), with ε_inter's real part already holding the
  vacuum 1 (see ``data/schema.py``) and the intraband Drude term ε_D(ω) = −ω_D² / (ω² + iγω),
  γ = 0.1 eV; Im ε_D = ω_D² γ / (ω (ω² + γ²)) > 0.
- Complex refractive index n = sqrt(ε) (principal branch, Im n >= 0); normal-incidence reflectance
  from vacuum R = |(n − 1)/(n + 1)|².
- Colour: R(λ) on 380–780 nm in 5 nm steps (photon energies 1.59–3.26 eV, λ = hc/E with
  hc = 1239.84198 eV nm), D65 illuminant, CIE 1931 2° observer, all tables from ``colour-science``;
  XYZ normalised so that a perfect reflector has Y = 100 and its chromaticity is the white point of
  CIE L*a*b*. ε is linearly interpolated from the 0.01 eV grid to the wavelength samples.

Everything is batched over materials and runs in torch (float64) so it works on any device and
inside DDP metric states; ``srgb_hex`` uses ``colour`` on the host for display.
"""

from __future__ import annotations

from functools import lru_cache

import colour
import numpy as np
import torch

from lightning_dielectric.data.schema import ENERGY_GRID

GAMMA_EV = 0.1
HC_EV_NM = 1239.84198
WAVELENGTHS_NM = np.arange(380.0, 781.0, 5.0)
VISIBLE_EV = HC_EV_NM / WAVELENGTHS_NM  # (81,), 3.26 → 1.59 eV
_SHAPE = colour.SpectralShape(380, 780, 5)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation onto ``VISIBLE_EV`` (lower grid index (81,), weight of the upper point (81,)),
    XYZ weights (81, 3) and white point XYZ (3,), float64."""
    lo = np.searchsorted(ENERGY_GRID, VISIBLE_EV) - 1
    frac = (VISIBLE_EV - ENERGY_GRID[lo]) / (ENERGY_GRID[lo + 1] - ENERGY_GRID[lo])
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(_SHAPE).values
    d65 = colour.SDS_ILLUMINANTS["D65"].copy().align(_SHAPE).values
    weights = cmfs * d65[:, None]
    weights = weights * (100.0 / weights[:, 1].sum())
    return lo, frac, weights, weights.sum(axis=0)


def _tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float64, device=like.device)


def total_epsilon(eps_inter: torch.Tensor, drude: torch.Tensor, energies: torch.Tensor) -> torch.Tensor:
    """Complex ε(ω) = ε_inter + ε_D at ``energies`` (eV, (K,), > 0).

    ``eps_inter``: (B, K, 2) real (Re, Im); ``drude``: (B,) ω_D in eV. Returns (B, K) complex128.
    """
    w = energies.to(torch.float64)
    e = torch.complex(eps_inter[..., 0].double(), eps_inter[..., 1].double())
    return e - drude.double()[:, None] ** 2 / torch.complex(w**2, GAMMA_EV * w)


def reflectance(eps: torch.Tensor) -> torch.Tensor:
    """Normal-incidence reflectance |(n − 1)/(n + 1)|² with n = sqrt(ε); same shape as ``eps``, real."""
    n = torch.sqrt(eps)
    return ((n - 1) / (n + 1)).abs() ** 2


def visible_reflectance(eps_inter: torch.Tensor, drude: torch.Tensor) -> torch.Tensor:
    """R(λ) at ``WAVELENGTHS_NM`` for ε_inter (B, 2001, 2) on ``ENERGY_GRID`` and ω_D (B,) eV: (B, 81)."""
    lo, frac, _, _ = _tables()
    index = torch.as_tensor(lo, device=eps_inter.device)
    w = _tensor(frac, eps_inter)[None, :, None]
    eps_vis = eps_inter[:, index].double() * (1 - w) + eps_inter[:, index + 1].double() * w
    return reflectance(total_epsilon(eps_vis, drude, _tensor(VISIBLE_EV, eps_inter)))


def reflectance_to_xyz(refl: torch.Tensor) -> torch.Tensor:
    """CIE XYZ (D65, 2°, perfect reflector Y = 100) of reflectances (B, 81): (B, 3)."""
    _, _, weights, _ = _tables()
    return refl.double() @ _tensor(weights, refl)


def xyz_to_lab(xyz: torch.Tensor) -> torch.Tensor:
    """CIE 1976 L*a*b* of XYZ (…, 3) relative to the perfect reflector under D65."""
    white = _tables()[3]
    t = xyz / _tensor(white, xyz)
    delta = 6.0 / 29.0
    f = torch.where(t > delta**3, t.clamp_min(delta**3) ** (1.0 / 3.0), t / (3 * delta**2) + 4.0 / 29.0)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def metal_lab(eps_inter: torch.Tensor, drude: torch.Tensor) -> torch.Tensor:
    """L*a*b* colour (B, 3) of metals given ε_inter (B, 2001, 2) and ω_D (B,) in eV."""
    return xyz_to_lab(reflectance_to_xyz(visible_reflectance(eps_inter, drude)))


def delta_e(pred_eps: torch.Tensor, pred_drude: torch.Tensor, true_eps: torch.Tensor, true_drude: torch.Tensor) -> torch.Tensor:
    """CIE76 colour difference ΔE*ab (B,) between predicted and true metals."""
    return (metal_lab(pred_eps, pred_drude) - metal_lab(true_eps, true_drude)).norm(dim=-1)


def srgb_hex(eps_inter: torch.Tensor, drude: torch.Tensor) -> list[str]:
    """Display colour (sRGB, clipped to the gamut) of each metal as ``#rrggbb``."""
    xyz = reflectance_to_xyz(visible_reflectance(eps_inter, drude)).cpu().numpy() / 100.0
    white = _tables()[3]
    rgb = np.clip(colour.XYZ_to_sRGB(xyz, illuminant=colour.XYZ_to_xy(white / 100.0)), 0.0, 1.0)
    return [colour.notation.RGB_to_HEX(row) for row in np.atleast_2d(rgb)]
