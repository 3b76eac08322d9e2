"""Element parameters and two-centre Slater–Koster hopping blocks (Harrison's universal form).

Units: energies in eV, distances in Å. Orbital order on every atom: ``s``, then
``p_x, p_y, p_z``, then ``d_xy, d_yz, d_zx, d_{x²−y²}, d_{3z²−r²}`` (the real cubic
harmonics). An atom carries a subset of them (``ElementParams.orbitals``, indices into this
list of nine): ``s p`` (groups 1, 2, 13–16), ``s d`` (groups 3–11, the s–d model of
transition and noble metals) or ``s p d`` (group 12).

Sources (see ``docs/synthetic_data.md``):

- Basis: groups 3–11 carry s and d only — the s–d model of transition and noble metals
  (Mott, Adv. Phys. 13, 325 (1964); Harrison 1980, transition-metal chapters; Wills & Harrison,
  Phys. Rev. B 28, 4363 (1983): a nearly-free-electron s band hybridised with the d states).
  Their free atoms have no bound p level, and a p level guessed as 0.35 ε_s drained the d band
  (docs/synthetic_data.md, §2).
- On-site energies: the atomic LDA eigenvalues of pymatgen's ``Element.atomic_orbitals``
  (NIST atomic reference data), Hartree → eV. Missing valence levels: a missing ``np`` level
  (groups 1, 2, 12) is set to ``0.35 ε_s`` (the LDA ratio ε_p/ε_s of Al, Ga, In and Tl is
  0.31–0.36); a missing valence ``s`` level (Pd, 4d¹⁰) is the mean of the same shell of the
  period neighbours.
- Hoppings: Harrison, *Electronic Structure and the Properties of Solids* (1980), Solid
  State Table: ``V_ll'm = η_ll'm ħ²/(m d²)`` for s, p; ``V_ldm = η_ldm ħ² r_d^{3/2}/(m d^{7/2})``;
  ``V_ddm = η_ddm ħ² (r_d r_d')^{3/2}/(m d⁵)``, with the d-state radii ``R_D`` below.
- Valence electrons: the group number for groups 1–12 (s + d electrons), group − 10 for
  groups 13–16 (s + p electrons).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

HARTREE_EV = 27.211386245988
HBAR2_OVER_M = 7.619964  # ħ²/m_e in eV·Å²

# Harrison's universal dimensionless couplings (Solid State Table, 1980 edition).
ETA = {
    "ss_sigma": -1.40, "sp_sigma": 1.84, "pp_sigma": 3.24, "pp_pi": -0.81,
    "sd_sigma": -3.16, "pd_sigma": -2.95, "pd_pi": 1.36,
    "dd_sigma": -16.2, "dd_pi": 8.75, "dd_delta": 0.0,
}

# d-state radii r_d in Å from Harrison's Solid State Table; Zn, Cd, Hg are linear
# extrapolations along their period (the table lists no r_d for group 12).
R_D = {
    "Sc": 1.24, "Ti": 1.08, "V": 0.98, "Cr": 0.90, "Mn": 0.86, "Fe": 0.80, "Co": 0.76, "Ni": 0.71, "Cu": 0.67, "Zn": 0.63,
    "Y": 1.58, "Zr": 1.41, "Nb": 1.28, "Mo": 1.20, "Tc": 1.11, "Ru": 1.05, "Rh": 0.99, "Pd": 0.94, "Ag": 0.89, "Cd": 0.84,
    "La": 1.58, "Hf": 1.44, "Ta": 1.34, "W": 1.27, "Re": 1.20, "Os": 1.13, "Ir": 1.08, "Pt": 1.04, "Au": 1.01, "Hg": 0.98,
}

P_OVER_S = 0.35  # ε_p / ε_s for a missing valence p level

# Cut-off: hoppings are multiplied by a cosine taper from CUT_ON to CUT_OFF times r_i + r_j.
CUT_ON = 1.20
CUT_OFF = 1.55


S_ORB, P_ORB, D_ORB = (0,), (1, 2, 3), (4, 5, 6, 7, 8)  # indices into the nine orbitals


@dataclass(frozen=True)
class ElementParams:
    """Tight-binding description of one element: ``orbitals`` (indices into s, p_x … d_{3z²−r²})."""

    z: int
    symbol: str
    orbitals: tuple[int, ...]
    onsite: tuple[float, ...]  # eV, one per orbital
    r_d: float  # Å (0 without d orbitals)
    n_electrons: int  # valence electrons per atom
    radius: float  # Å, metallic radius (atomic radius where pymatgen has none)

    @property
    def n_orb(self) -> int:
        return len(self.orbitals)

    @property
    def d_slice(self) -> slice:
        """Position of the five d orbitals within this atom's orbitals (empty without d)."""
        start = len([o for o in self.orbitals if o < D_ORB[0]])
        return slice(start, start + 5) if D_ORB[0] in self.orbitals else slice(start, start)


def _valence_level(orbitals: dict[str, float], shell: str) -> tuple[int, float] | None:
    """Highest principal quantum number listed for ``shell`` ('s', 'p', 'd') and its energy (eV)."""
    levels = [(int(k[:-1]), v) for k, v in orbitals.items() if k[-1] == shell]
    if not levels:
        return None
    n, e = max(levels)
    return n, e * HARTREE_EV


@lru_cache(maxsize=None)
def element_params(z: int, max_l: int | None = None) -> ElementParams:
    """Parameters for atomic number ``z``; ``max_l`` (0, 1, 2) truncates the basis (tests)."""
    from pymatgen.core import Element

    el = Element.from_Z(int(z))
    group = el.group
    if not (1 <= group <= 16) or z > 83 or 58 <= z <= 71:
        raise ValueError(f"element {el.symbol} (Z={z}) is outside the tight-binding model (groups 1–16, no 4f)")
    orbitals = el.atomic_orbitals
    has_d = 3 <= group <= 12
    s = _valence_level(orbitals, "s")
    period = el.row
    if has_d and (s is None or s[0] != period):  # Pd: 4d¹⁰ 5s⁰ — take the period neighbours' 5s
        s_val = np.mean([_valence_level(Element.from_Z(z + dz).atomic_orbitals, "s")[1] for dz in (-1, 1)])
    else:
        s_val = s[1]
    orbs, onsite = list(S_ORB), [s_val]
    if not 3 <= group <= 11:  # s–d model: no p orbitals on transition and noble metals
        p = _valence_level(orbitals, "p")
        p_val = p[1] if p is not None and p[0] == period else P_OVER_S * s_val
        orbs += P_ORB
        onsite += [p_val] * 3
    r_d = 0.0
    if has_d:
        d = _valence_level(orbitals, "d")
        orbs += D_ORB
        onsite += [d[1]] * 5
        r_d = R_D[el.symbol]
    n_e = group if group <= 12 else group - 10
    with warnings.catch_warnings():  # pymatgen warns for elements without a metallic radius
        warnings.simplefilter("ignore")
        metallic = el.metallic_radius
    radius = float(metallic) if metallic else float(el.atomic_radius)
    if max_l is not None:
        keep = [i for i, o in enumerate(orbs) if o < (1, 4, 9)[max_l]]
        orbs, onsite = [orbs[i] for i in keep], [onsite[i] for i in keep]
        r_d = r_d if max_l >= 2 else 0.0
        n_e = min(n_e, 2 * len(orbs))
    return ElementParams(int(z), el.symbol, tuple(orbs), tuple(float(e) for e in onsite), r_d, int(n_e), float(radius))


def cutoff(d: np.ndarray, r_sum: float | np.ndarray) -> np.ndarray:
    """Smooth taper: 1 below CUT_ON·r_sum, 0 above CUT_OFF·r_sum, cos² in between (C¹)."""
    x = np.clip((d / r_sum - CUT_ON) / (CUT_OFF - CUT_ON), 0.0, 1.0)
    return np.cos(0.5 * np.pi * x) ** 2


def bond_parameters(d: np.ndarray, a: ElementParams, b: ElementParams) -> dict[str, np.ndarray]:
    """Harrison couplings (eV) for bonds of length ``d`` (Å, shape (n,)) from atom a to atom b.

    Keys ``"xy_m"`` mean orbital x on a, orbital y on b (x ≤ y in s < p < d); the reverse
    (``"ps_sigma"`` etc.) is the same coupling with the d-radius of the other atom.
    """
    c = HBAR2_OVER_M
    out = {
        "ss_sigma": ETA["ss_sigma"] * c / d**2,
        "sp_sigma": ETA["sp_sigma"] * c / d**2,
        "pp_sigma": ETA["pp_sigma"] * c / d**2,
        "pp_pi": ETA["pp_pi"] * c / d**2,
    }
    for name, rd in (("b", b.r_d), ("a", a.r_d)):  # s/p on one atom, d on the other
        f = c * rd**1.5 / d**3.5
        out[f"sd_sigma_{name}"] = ETA["sd_sigma"] * f
        out[f"pd_sigma_{name}"] = ETA["pd_sigma"] * f
        out[f"pd_pi_{name}"] = ETA["pd_pi"] * f
    f = c * (a.r_d * b.r_d) ** 1.5 / d**5
    for m in ("sigma", "pi", "delta"):
        out[f"dd_{m}"] = ETA[f"dd_{m}"] * f
    return out


def _bond_frame_block(p: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 9, 9) hopping block for a bond along +z: ⟨α on a| H |β on b⟩ in the bond frame.

    Orbitals with l_a > l_b take the coupling of the swapped pair times (−1)^(l_a+l_b).
    """
    n = p["ss_sigma"].shape[0]
    t = np.zeros((n, 9, 9))
    s, px, py, pz, dxy, dyz, dzx, dx2, dz2 = range(9)
    t[:, s, s] = p["ss_sigma"]
    t[:, s, pz] = p["sp_sigma"]
    t[:, pz, s] = -p["sp_sigma"]
    t[:, px, px] = t[:, py, py] = p["pp_pi"]
    t[:, pz, pz] = p["pp_sigma"]
    t[:, s, dz2] = p["sd_sigma_b"]
    t[:, dz2, s] = p["sd_sigma_a"]
    t[:, pz, dz2] = p["pd_sigma_b"]
    t[:, px, dzx] = t[:, py, dyz] = p["pd_pi_b"]
    t[:, dz2, pz] = -p["pd_sigma_a"]
    t[:, dzx, px] = t[:, dyz, py] = -p["pd_pi_a"]
    t[:, dz2, dz2] = p["dd_sigma"]
    t[:, dzx, dzx] = t[:, dyz, dyz] = p["dd_pi"]
    t[:, dxy, dxy] = t[:, dx2, dx2] = p["dd_delta"]
    return t


# Real d orbitals as traceless quadratic forms r·Q·r, all of Frobenius norm² 3/2.
_S3 = np.sqrt(3.0)
_Q = np.zeros((5, 3, 3))
_Q[0, 0, 1] = _Q[0, 1, 0] = _S3 / 2  # xy
_Q[1, 1, 2] = _Q[1, 2, 1] = _S3 / 2  # yz
_Q[2, 2, 0] = _Q[2, 0, 2] = _S3 / 2  # zx
_Q[3] = np.diag([_S3 / 2, -_S3 / 2, 0.0])  # x² − y²
_Q[4] = np.diag([-0.5, -0.5, 1.0])  # 3z² − r² (normalised)


def orbital_rotation(rot: np.ndarray) -> np.ndarray:
    """(n, 9, 9) block-diagonal orbital rotation for rotations ``rot`` (n, 3, 3).

    Column μ holds the lab-frame components of orbital μ rotated by ``rot``:
    φ_μ(rot⁻¹ r) = Σ_ν D_νμ φ_ν(r). p orbitals transform like vectors, d orbitals like
    quadratic forms (D_νμ = tr(Q_ν R Q_μ Rᵀ) / (3/2)).
    """
    n = rot.shape[0]
    out = np.zeros((n, 9, 9))
    out[:, 0, 0] = 1.0
    out[:, 1:4, 1:4] = rot
    rqr = np.einsum("nij,mjk,nlk->nmil", rot, _Q, rot)  # R Q_μ Rᵀ
    out[:, 4:, 4:] = np.einsum("vil,nmil->nvm", _Q, rqr) / 1.5
    return out


def _frames(u: np.ndarray) -> np.ndarray:
    """Rotations (n, 3, 3) taking ẑ to the unit vectors ``u`` (n, 3)."""
    helper = np.where(np.abs(u[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    x = np.cross(helper, u)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(u, x)
    return np.stack([x, y, u], axis=2)  # columns x', y', z' = u


def hopping_blocks(vec: np.ndarray, a: ElementParams, b: ElementParams) -> np.ndarray:
    """Lab-frame hopping blocks (n, a.n_orb, b.n_orb) in eV for bond vectors ``vec`` (n, 3) Å from a to b
    (rows: a's orbitals, columns: b's, each in the order of ``orbitals``).

    Includes the smooth cut-off; the Slater–Koster angular dependence is obtained by
    rotating the bond-frame block: T_lab = D T_bond Dᵀ.
    """
    d = np.linalg.norm(vec, axis=1)
    t = _bond_frame_block(bond_parameters(d, a, b)) * cutoff(d, a.radius + b.radius)[:, None, None]
    rot = orbital_rotation(_frames(vec / d[:, None]))
    lab = rot @ t @ np.transpose(rot, (0, 2, 1))
    return lab[:, a.orbitals][:, :, b.orbitals]
