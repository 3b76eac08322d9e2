"""Input featurisations: element (group, period) one-hot, Gaussian radial basis with a polynomial
envelope, and m = 0 spherical harmonics of a bond-angle cosine."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_dielectric.data.graphs import DEFAULT_CUTOFF

EMBEDDING_MAX_Z = 86
"""Heaviest element the group/period features describe (Rn; periods 1–6); datasets stop at Bi
(``data.schema.MAX_Z``)."""

_PERIOD_ENDS = (2, 10, 18, 36, 54, 86)
NUM_GROUPS = 18
MAX_DEGREE = 3
"""Highest degree l of the angle harmonics Y_l⁰."""


def group_period(z: int) -> tuple[int, int]:
    """IUPAC group (1–18) and period (1–6) of element ``z``; lanthanides (La–Lu) are in group 3."""
    if not 1 <= z <= EMBEDDING_MAX_Z:
        raise ValueError(f"element Z={z} is outside the supported range 1..{EMBEDDING_MAX_Z} (periods 1-6)")
    period = next(p for p, end in enumerate(_PERIOD_ENDS, start=1) if z <= end)
    k = z - (_PERIOD_ENDS[period - 2] if period > 1 else 0)  # 1-based position in the period
    if period == 1:
        return (1 if z == 1 else 18), 1
    if period in (2, 3):
        return (k if k <= 2 else k + 10), period
    if period in (4, 5):
        return k, period
    if k <= 2:  # Cs, Ba
        return k, period
    if k <= 17:  # La..Lu
        return 3, period
    return k - 14, period  # Hf (k=18) → group 4 … Rn (k=32) → 18


def check_atomic_numbers(z) -> None:
    """Raise ``ValueError`` naming the elements outside 1..``EMBEDDING_MAX_Z`` (call outside the training loop)."""
    bad = sorted({int(v) for v in torch.as_tensor(z).reshape(-1).tolist() if not 1 <= int(v) <= EMBEDDING_MAX_Z})
    if bad:
        raise ValueError(f"unsupported element(s) Z={bad}: the models describe elements 1..{EMBEDDING_MAX_Z} only")


def element_table() -> Tensor:
    """(EMBEDDING_MAX_Z + 1, ``ElementEncoding.out_dim``) float32: row z = one-hot group (18) ‖
    one-hot period (6); row 0 is zero."""
    table = torch.zeros(EMBEDDING_MAX_Z + 1, ElementEncoding.out_dim)
    for z in range(1, EMBEDDING_MAX_Z + 1):
        group, period = group_period(z)
        table[z, group - 1] = 1.0
        table[z, NUM_GROUPS + period - 1] = 1.0
    return table


class ElementEncoding(torch.nn.Module):
    """Atomic numbers (n,) → (n, ``out_dim`` = 24) group/period one-hot (a fixed lookup table, no parameters)."""

    out_dim = NUM_GROUPS + len(_PERIOD_ENDS)

    def __init__(self):
        super().__init__()
        self.register_buffer("table", element_table(), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        return self.table[z]


def polynomial_envelope(d: Tensor, order: int) -> Tensor:
    """DimeNet polynomial envelope of order p at scaled distance d = r / r_cut:
    u(d) = 1 − (p+1)(p+2)/2 dᵖ + p(p+2) dᵖ⁺¹ − p(p+1)/2 dᵖ⁺², and 0 for d ≥ 1
    (u(0) = 1; u, u′ and u″ vanish at d = 1)."""
    p = order
    dp = d.pow(p)
    u = 1.0 - 0.5 * (p + 1) * (p + 2) * dp + p * (p + 2) * dp * d - 0.5 * p * (p + 1) * dp * d * d
    return torch.where(d < 1.0, u, torch.zeros_like(u))


class GaussianRBF(torch.nn.Module):
    """Distances r (E,) in Å → (E, num) Gaussians exp(−(r − μ_k)² / 2σ²) × envelope(r / cutoff).

    Centres μ_k evenly spaced on [0, cutoff] Å; σ = ``width_factor`` × centre spacing.
    """

    def __init__(self, num: int = 32, cutoff: float = DEFAULT_CUTOFF, width_factor: float = 4.0,
                 envelope_order: int = 4):
        super().__init__()
        self.cutoff = float(cutoff)
        self.envelope_order = int(envelope_order)
        centres = torch.linspace(0.0, cutoff, num)
        sigma = width_factor * cutoff / (num - 1)
        self.register_buffer("centres", centres, persistent=False)
        self.coeff = -0.5 / sigma**2

    def forward(self, r: Tensor) -> Tensor:
        gauss = torch.exp(self.coeff * (r.unsqueeze(-1) - self.centres).pow(2))
        return gauss * polynomial_envelope(r / self.cutoff, self.envelope_order).unsqueeze(-1)


class AngleHarmonics(torch.nn.Module):
    """cos θ (T,) → (T, ``out_dim`` = 4) real spherical harmonics Y_l⁰(θ) = √((2l+1)/4π) P_l(cos θ),
    l = 0…3."""

    out_dim = MAX_DEGREE + 1

    def __init__(self):
        super().__init__()
        norms = torch.tensor([math.sqrt((2 * l + 1) / (4 * math.pi)) for l in range(self.out_dim)])
        self.register_buffer("norms", norms, persistent=False)

    def forward(self, cos: Tensor) -> Tensor:
        x = cos
        legendre = torch.stack(
            [torch.ones_like(x), x, 0.5 * (3.0 * x * x - 1.0), 0.5 * (5.0 * x * x - 3.0) * x], dim=-1
        )
        return legendre * self.norms
