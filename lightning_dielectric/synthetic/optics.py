"""Interband dielectric function and Drude plasma frequency of a tight-binding model.

Formulas (SI, spin-degenerate bands, crystal volume N_k V, ħv = ∂H/∂k in eV·Å):

    Im ε_aa(ω) = (π e²/ε₀) · 2/(N_k V) · Σ_k Σ_{n<m} (f_n − f_m) |⟨m|ħv_a|n⟩|² / (E_m − E_n)² · δ(E_m − E_n − ħω)
    (ħω_D,a)²  = (e²/ε₀)   · 2/(N_k V) · Σ_k Σ_{n,m: E_m≈E_n} δ(E_n − μ) |⟨m|ħv_a|n⟩|²

with e²/ε₀ = 180.95 eV·Å, so with energies in eV, ħv in eV·Å and V in Å³ both come out
dimensionless / in eV². Only the traces are computed: Im ε = Σ_a Im ε_aa / 3 and
ω_D = sqrt(Σ_a ω_D,a² / 3) (RMS); both are invariant under the point group, so the k sum
runs over the irreducible wedge with multiplicities as weights.

Each transition is binned on a 0.01 eV grid (linear share between the two nearest bins) and
broadened with the odd line shape G(ω − E) − G(ω + E), G a Gaussian (0.1 eV, widened
adaptively on coarse meshes); Re ε − 1 is its exact Kramers–Kronig partner, the same binned
weights convolved with the Hilbert transform of G (a Dawson function). The grid extends to at
least 40 eV and always past the largest transition, so nothing is truncated. The Drude δ is
an adaptive Gaussian too. Before any of this, compounds are made locally charge neutral: each
atom's on-site levels are shifted rigidly by φ_i (Newton's method on the site charges) until
every atom holds its valence electrons. See docs/synthetic_data.md for the derivation and sources.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import spglib
from scipy.fft import next_fast_len
from scipy.optimize import brentq
from scipy.special import dawsn, expit

from ..data.schema import N_ENERGIES
from .hamiltonian import TBModel

E2_OVER_EPS0 = 180.95128  # e²/ε₀ in eV·Å (= 4π · 14.399645 eV·Å)


@dataclass(frozen=True)
class OpticsSettings:
    """Numerical settings (eV, Å⁻¹).

    ``k_spacing``: Monkhorst–Pack divisions n_i = ceil(|b_i| / k_spacing), |b_i| the reciprocal
    lattice vector lengths including 2π (Γ-centred mesh). ``kT``: Fermi–Dirac smearing.
    ``broadening``: Gaussian σ of each interband line. ``bin_width``: spectral grid step (must
    equal the dataset grid step). ``e_max_ext``: minimal extent of the spectral grid.
    ``adaptive``, ``max_broadening``: adaptive broadening (Yates et al., PRB 75, 195121
    (2007)): a line's width is sqrt(broadening² + (adaptive · Δk · |∇_k ΔE|)²), at most
    ``max_broadening``, with Δk the mesh spacing, so that coarse meshes give smooth spectra;
    the Fermi-surface δ of the Drude term likewise has width sqrt(kT² + (adaptive · Δk · |ħv|)²),
    at most ``max_broadening``. ``symmetry``: use the point group for the irreducible wedge
    (time reversal is always used); ``symprec``: spglib tolerance in Å. ``degeneracy``: pairs
    closer than this (eV) are intraband (Drude) rather than interband. ``neutrality``: local
    charge neutrality — rigid on-site shifts φ_i per atom, solved self-consistently until every
    site holds its valence electrons to ``neutrality_tol`` (electrons), at most
    ``neutrality_max_iter`` iterations (cells of one atom are neutral without shifts).
    """

    k_spacing: float = 0.27
    kT: float = 0.1
    broadening: float = 0.1
    bin_width: float = 0.01
    e_max_ext: float = 40.0
    symprec: float = 1e-5
    degeneracy: float = 1e-4
    adaptive: float = 0.4
    max_broadening: float = 1.0
    symmetry: bool = True
    neutrality: bool = True
    neutrality_tol: float = 1e-6
    neutrality_max_iter: int = 100


@dataclass
class OpticsResult:
    """``eps_re``/``eps_im`` (2001,) on the 0–20 eV dataset grid; ``drude`` eV, the RMS over x, y,
    z (single components are not kept: the irreducible-wedge sum gives only the trace);
    ``fermi`` eV; ``mesh``; ``n_kpoints`` irreducible points; the extended spectra
    ``eps_re_ext``/``eps_im_ext`` on 0, bin_width, … eV (≥ 40 eV); ``site_shifts`` φ_i (eV) and
    ``site_charges`` (electrons) per atom after local charge neutrality, and its iteration count."""

    eps_re: np.ndarray
    eps_im: np.ndarray
    drude: float
    fermi: float
    mesh: tuple[int, int, int]
    n_kpoints: int
    eps_re_ext: np.ndarray
    eps_im_ext: np.ndarray
    site_shifts: np.ndarray
    site_charges: np.ndarray
    neutrality_iterations: int


def reciprocal(lattice: np.ndarray) -> np.ndarray:
    """Reciprocal lattice vectors as rows, in Å⁻¹ including 2π (a_i · b_j = 2π δ_ij)."""
    return 2 * np.pi * np.linalg.inv(lattice).T


def monkhorst_pack(lattice: np.ndarray, k_spacing: float) -> tuple[int, int, int]:
    """Divisions n_i = max(1, ceil(|b_i| / k_spacing)) for a k-point density set per reciprocal length."""
    n = np.maximum(1, np.ceil(np.linalg.norm(reciprocal(lattice), axis=1) / k_spacing - 1e-9)).astype(int)
    return tuple(int(x) for x in n)


def mesh_symmetry(
    lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray, mesh, symprec: float | None = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """The crystal's symmetry operations (spglib) whose rotation maps the Γ-centred ``mesh`` onto itself.

    Returns rotations W (n, 3, 3) integer and translations t (n, 3), acting on fractional
    positions as x → W x + t; ``symprec=None``: the identity only.
    """
    mesh = np.asarray(mesh, dtype=np.int64)
    if symprec is None:
        return np.eye(3, dtype=int)[None], np.zeros((1, 3))
    frac_pos = positions @ np.linalg.inv(lattice)
    with warnings.catch_warnings():  # spglib's deprecation notice about its error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        sym = spglib.get_symmetry((lattice, frac_pos, np.asarray(numbers)), symprec=symprec)
    if sym is None:
        return np.eye(3, dtype=int)[None], np.zeros((1, 3))
    grid = np.stack(np.meshgrid(*[np.arange(m) for m in mesh], indexing="ij"), -1).reshape(-1, 3)
    keep = []
    for rot in sym["rotations"]:  # k_frac → k_frac · W
        image = (grid / mesh) @ rot * mesh
        keep.append(np.allclose(image, np.round(image), atol=1e-8))
    return sym["rotations"][keep], sym["translations"][keep]


def irreducible_kpoints(
    lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray, mesh, symprec: float | None = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """Irreducible points of the Γ-centred ``mesh`` and their multiplicities (sum = Π mesh).

    Uses the crystal's point-group rotations (spglib, those mapping the mesh onto itself)
    and time reversal k → −k (``symprec=None``: time reversal only). Returns fractional k (n, 3) and integer weights (n,).
    """
    mesh = np.asarray(mesh, dtype=np.int64)
    grid = np.stack(np.meshgrid(*[np.arange(m) for m in mesh], indexing="ij"), -1).reshape(-1, 3)
    rotations = np.unique(mesh_symmetry(lattice, positions, numbers, mesh, symprec)[0], axis=0)
    index = np.arange(len(grid))
    strides = np.array([mesh[1] * mesh[2], mesh[2], 1])
    for rot in rotations:  # k_frac → k_frac · W (W acts on fractional positions)
        image = np.round((grid / mesh) @ rot * mesh).astype(np.int64)
        for sign in (1, -1):  # time reversal
            index = np.minimum(index, ((sign * image) % mesh) @ strides)
    reps, weights = np.unique(index, return_counts=True)
    return grid[reps] / mesh, weights


def site_orbits(
    lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray, mesh, symprec: float | None = 1e-5
) -> np.ndarray:
    """Label (n_atoms,) of each atom's orbit under the operations of :func:`mesh_symmetry`.

    A per-site sum over the irreducible wedge (multiplicities as weights) equals the full-mesh
    sum only after averaging over these orbits; time reversal maps every site onto itself.
    """
    rotations, translations = mesh_symmetry(lattice, positions, numbers, mesh, symprec)
    frac = positions @ np.linalg.inv(lattice)
    label = np.arange(len(frac))
    for rot, t in zip(rotations, translations):
        image = frac @ rot.T + t
        diff = image[:, None, :] - frac[None, :, :]
        dist = np.linalg.norm((diff - np.round(diff)) @ lattice, axis=2)  # Å, nearest periodic image
        target = np.argmin(dist, axis=1)
        for i, j in enumerate(target):  # merge the orbits of i and its image j
            a, b = label[i], label[j]
            if a != b:
                label[label == max(a, b)] = min(a, b)
    return label


def fermi_level(energies: np.ndarray, weights: np.ndarray, n_electrons: float, kT: float) -> float:
    """Chemical potential (eV) with 2 Σ_k w_k Σ_n f(E_nk) / Σ w = n_electrons (Brent's method, to 10⁻¹² eV).

    Full or empty bands: μ ends 10 eV beyond all states.
    """
    w = (weights[:, None] / weights.sum()).astype(np.float64)
    lo, hi = energies.min() - 10.0, energies.max() + 10.0

    def excess(mu: float) -> float:
        return 2 * np.sum(w * expit((mu - energies) / kT)) - n_electrons

    f_lo, f_hi = excess(lo), excess(hi)
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    return float(brentq(excess, lo, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps, maxiter=200))


def optical_response(model: TBModel, settings: OpticsSettings = OpticsSettings(), mesh=None) -> OpticsResult:
    """Interband ε(ω) (direction average, vacuum 1 included in Re) and Drude ω_D of ``model``."""
    mesh = monkhorst_pack(model.lattice, settings.k_spacing) if mesh is None else tuple(int(m) for m in mesh)
    symprec = settings.symprec if settings.symmetry else None
    kfrac, wk = irreducible_kpoints(model.lattice, model.positions, model.numbers, mesh, symprec)
    recip = reciprocal(model.lattice)
    dk = float(np.max(np.linalg.norm(recip, axis=1) / np.asarray(mesh)))  # mesh spacing, Å⁻¹
    n_k_full = int(np.prod(mesh))
    h, dh = model.hamiltonian(kfrac @ recip)
    gs = _ground_state(model, h, kfrac, wk, mesh, settings)
    energies, vecs, mu = gs.energies, gs.vecs, gs.fermi
    u = vecs.astype(np.complex64)  # single precision suffices for |⟨m|ħv|n⟩|² and is several times faster
    vel = np.conj(np.swapaxes(u, 1, 2))[:, None] @ (dh.astype(np.complex64) @ u[:, None])  # ⟨m|ħv_a|n⟩ eV·Å
    vel = _resolve_degenerate(energies, vel, settings.degeneracy)
    vel2 = (vel.real**2 + vel.imag**2).astype(np.float64)  # (n_k, 3, N, N)
    band_vel = np.diagonal(vel.real, axis1=2, axis2=3).astype(np.float64)  # ħv_nk, (n_k, 3, N)
    occ = expit((mu - energies) / settings.kT)
    norm = 2.0 / (n_k_full * model.volume)
    gap = energies[:, None, :] - energies[:, :, None]  # E_n − E_m, (n_k, m, n)

    # Drude: Fermi-surface δ(E_n − μ), adaptive Gaussian, over (near-)degenerate pairs incl. n = m.
    width = np.sqrt(settings.kT**2 + (settings.adaptive * dk * np.linalg.norm(band_vel, axis=1)) ** 2)
    width = np.minimum(width, settings.max_broadening)
    delta = np.exp(-0.5 * ((energies - mu) / width) ** 2) / (np.sqrt(2 * np.pi) * width)  # 1/eV, (n_k, N)
    g = np.where(np.abs(gap) < settings.degeneracy, delta[:, None, :], 0.0) * wk[:, None, None]
    drude2 = E2_OVER_EPS0 * norm * np.einsum("kmn,kamn->", g, vel2) / 3.0  # Tr (ħω_D)² / 3, eV²

    # Interband: pairs with E_m > E_n (gap = E_n − E_m < 0) and f_n > f_m.
    df = occ[:, None, :] - occ[:, :, None]  # f_n − f_m
    sel = (gap < -settings.degeneracy) & (df > 1e-12)
    de = -gap[sel]
    strength = (df * vel2.sum(axis=1) * wk[:, None, None])[sel] / de**2 / 3.0
    slope = np.linalg.norm(band_vel[:, :, None, :] - band_vel[:, :, :, None], axis=1)[sel]  # |∇_k(E_m − E_n)|
    sigma = np.sqrt(settings.broadening**2 + (settings.adaptive * dk * slope) ** 2)
    eps_re_ext, eps_im_ext = broadened_spectrum(de, np.pi * E2_OVER_EPS0 * norm * strength, sigma, settings)
    return OpticsResult(
        eps_re=eps_re_ext[:N_ENERGIES],
        eps_im=eps_im_ext[:N_ENERGIES],
        drude=float(np.sqrt(drude2)),
        fermi=float(mu),
        mesh=mesh,
        n_kpoints=len(wk),
        eps_re_ext=eps_re_ext,
        eps_im_ext=eps_im_ext,
        site_shifts=gs.shifts,
        site_charges=gs.site_charges,
        neutrality_iterations=gs.iterations,
    )


@dataclass
class GroundState:
    """Bands on the irreducible mesh after local charge neutrality: ``energies`` (n_k, N) eV,
    ``vecs`` (n_k, N, N), ``fermi`` μ (eV), ``shifts`` φ_i (n_atoms,) eV added to every on-site
    level of atom i, ``site_charges`` electrons per atom (n_atoms,), ``orbital_charges`` (N,)
    (site-orbit averages, see :func:`site_orbits`), ``iterations`` of the self-consistency."""

    energies: np.ndarray
    vecs: np.ndarray
    fermi: float
    shifts: np.ndarray
    site_charges: np.ndarray
    orbital_charges: np.ndarray
    iterations: int


def _populations(energies, vecs, wk, n_electrons, kT, atom_of, orbits):
    """μ, orbital populations (N,) and site populations (n_atoms,), both averaged over site orbits."""
    mu = fermi_level(energies, wk, n_electrons, kT)
    occ = expit((mu - energies) / kT) * (wk / wk.sum())[:, None]
    orb = 2.0 * np.einsum("kab,kb->a", vecs.real**2 + vecs.imag**2, occ)
    site = np.bincount(atom_of, orb, minlength=len(orbits))
    # Orbit averages: equivalent atoms have equal charges on the full mesh (orbital order is the
    # same on atoms of one element, so per-orbital averages are the shell-resolved averages).
    count = np.bincount(orbits, minlength=len(orbits)).astype(np.float64)
    site = (np.bincount(orbits, site, minlength=len(orbits)) / np.maximum(count, 1))[orbits]
    local = np.arange(len(atom_of)) - np.searchsorted(atom_of, atom_of)  # orbital index within its atom
    key = orbits[atom_of] * 64 + local
    _, inv = np.unique(key, return_inverse=True)
    orb = (np.bincount(inv, orb) / np.bincount(inv))[inv]
    return mu, orb, site


def _ground_state(model: TBModel, h: np.ndarray, kfrac, wk, mesh, settings: OpticsSettings) -> GroundState:
    """Diagonalise H(k); with ``settings.neutrality`` and more than one atom, shift each atom's
    on-site levels rigidly by φ_i until every site is neutral: Newton's method on
    N_i(φ) − N_i⁰ = 0 with the first-order (Lindhard) response of the site charges (evaluated
    in single precision), the chemical potential following so that Σ_i N_i stays the electron
    count. Steps are at most 3 eV and halved up to three times until the largest residual
    drops; if none does, the best shifts found are kept (an atom without bonds)."""
    n_atoms = len(model.numbers)
    atom_of = np.repeat(np.arange(n_atoms), np.diff(model.offsets))
    symprec = settings.symprec if settings.symmetry else None
    orbits = site_orbits(model.lattice, model.positions, model.numbers, mesh, symprec) if n_atoms > 1 else np.zeros(1, int)
    phi = np.zeros(n_atoms)
    energies, vecs = np.linalg.eigh(h)
    mu, orb, site = _populations(energies, vecs, wk, model.n_electrons, settings.kT, atom_of, orbits)
    if not settings.neutrality or n_atoms == 1 or model.site_electrons is None:
        return GroundState(energies, vecs, mu, phi, site, orb, 0)
    diag = np.arange(model.n_orb)
    count = np.bincount(orbits, minlength=n_atoms).astype(np.float64)
    average = (orbits[:, None] == orbits[None, :]) / count[orbits][:, None]  # orbit-averaging operator

    def solve(shift):
        shifted = h.copy()
        shifted[:, diag, diag] += shift[atom_of]
        e, v = np.linalg.eigh(shifted)
        return (e, v, *_populations(e, v, wk, model.n_electrons, settings.kT, atom_of, orbits))

    residual = site - model.site_electrons
    iterations = 0
    while np.abs(residual).max() > settings.neutrality_tol and iterations < settings.neutrality_max_iter:
        jac = average @ _charge_response(energies, vecs, wk, mu, settings.kT, atom_of, n_atoms) @ average
        # Newton step; directions the charges do not respond to (an atom without bonds) are left out.
        step = average @ np.linalg.lstsq(jac, -residual, rcond=1e-6)[0]
        step *= min(1.0, 3.0 / max(np.abs(step).max(), 1e-300))  # at most 3 eV per step
        for _ in range(4):  # backtracking: accept the step once it reduces the largest residual
            trial = phi + step
            trial -= trial.mean()
            state = solve(trial)
            iterations += 1
            if np.abs(state[4] - model.site_electrons).max() < np.abs(residual).max():
                break
            step *= 0.5
        else:
            break  # no further progress: the best shifts found are kept
        phi = trial
        energies, vecs, mu, orb, site = state
        residual = site - model.site_electrons
    return GroundState(energies, vecs, mu, phi, site, orb, iterations)


def _charge_response(energies, vecs, wk, mu, kT, atom_of, n_atoms) -> np.ndarray:
    """∂N_i/∂φ_j (n_atoms, n_atoms), electrons per eV, including the shift of μ that keeps Σ N fixed.

    Fixed μ: L_ij = 2 Σ_k w_k Σ_nm (f_n − f_m)/(E_n − E_m) Re[(P_i)_nm (P_j)_mn], with P_i the
    projector on atom i's orbitals in the band basis and f'(E_n) for (near-)equal energies;
    then δμ = −Σ_i (L δφ)_i / Σ_i D_i with D_i = ∂N_i/∂μ.
    """
    w = wk / wk.sum()
    occ = expit((mu - energies) / kT)
    fprime = -occ * (1.0 - occ) / kT  # (n_k, N)
    de = energies[:, :, None] - energies[:, None, :]
    close = np.abs(de) < 1e-6
    ratio = np.where(close, 0.5 * (fprime[:, :, None] + fprime[:, None, :]),
                     (occ[:, :, None] - occ[:, None, :]) / np.where(close, 1.0, de))  # (n_k, n, m)
    v = vecs.astype(np.complex64)  # the response only steers Newton's steps: single precision is enough
    proj = np.empty((len(v), n_atoms) + v.shape[1:], dtype=v.dtype)  # (P_i)_nm, (n_k, n_atoms, N, N)
    for i in range(n_atoms):
        np.matmul(np.conj(np.swapaxes(v[:, atom_of == i], 1, 2)), v[:, atom_of == i], out=proj[:, i])
    weighted = proj * (ratio * w[:, None, None]).astype(np.float32)[:, None]
    lin = 2.0 * np.einsum("kinm,kjnm->ij", weighted, np.conj(proj), optimize=True).real
    dmu = 2.0 * np.einsum("kinn,kn->i", proj.real, -fprime * w[:, None])
    return lin - np.outer(dmu, lin.sum(axis=0)) / max(dmu.sum(), 1e-300)


def orbital_occupations(model: TBModel, settings: OpticsSettings = OpticsSettings(), mesh=None) -> np.ndarray:
    """Electrons per orbital (both spins), shape (N,), in the ground state of ``optical_response``
    (local charge neutrality included).

    The basis is orthonormal, so this is the projection 2 Σ_k w_k Σ_n f(E_nk) |⟨α|nk⟩|² / Σ w_k
    onto orbital α (Mulliken and Löwdin populations coincide), averaged over symmetry-equivalent
    atoms; it sums to ``model.n_electrons``. Shell sums (e.g. the five d orbitals of an atom) are
    exact on the irreducible wedge; single orbitals of a shell may mix under the point group.
    """
    mesh = monkhorst_pack(model.lattice, settings.k_spacing) if mesh is None else tuple(int(m) for m in mesh)
    symprec = settings.symprec if settings.symmetry else None
    kfrac, wk = irreducible_kpoints(model.lattice, model.positions, model.numbers, mesh, symprec)
    h = model.hamiltonian(kfrac @ reciprocal(model.lattice))[0]
    return _ground_state(model, h, kfrac, wk, mesh, settings).orbital_charges


_PROBE = np.array([0.5377, 0.3219, 0.7795])  # a generic direction (no crystal axis)


def _resolve_degenerate(energies: np.ndarray, vel: np.ndarray, tol: float) -> np.ndarray:
    """Rotate the basis inside (near-)degenerate subspaces so that ê·ħv is diagonal there.

    Degenerate perturbation theory fixes the eigenvectors that the adaptive widths (diagonal
    band velocities) need; e.g. bands folded onto one k by a supercell become the primitive
    cell's states again. Only k points with a degeneracy are touched. ``vel`` (n_k, 3, N, N).
    """
    ks = np.flatnonzero((np.diff(energies, axis=1) < tol).any(axis=1))
    if len(ks) == 0:
        return vel
    e, v = energies[ks], vel[ks].astype(np.complex128)
    same = np.abs(e[:, :, None] - e[:, None, :]) < tol
    probe = np.einsum("a,kamn->kmn", _PROBE / np.linalg.norm(_PROBE), v) * same
    # Energies scaled far beyond any velocity keep eigenvectors inside their degenerate block.
    scale = 100.0 * (np.abs(probe).max() + 1.0) / tol
    _, w = np.linalg.eigh(probe + scale * (e[:, :, None] * np.eye(e.shape[1])))
    out = vel.copy()
    out[ks] = (np.conj(np.swapaxes(w, 1, 2))[:, None] @ v @ w[:, None]).astype(vel.dtype)
    return out


def broadened_spectrum(
    energies: np.ndarray, weights: np.ndarray, sigma: np.ndarray, settings: OpticsSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Re ε and Im ε (each (n_bins,)) of lines ``weights`` (eV) at transition ``energies`` (eV > 0).

    Im ε(ω) = Σ w [G_σ(ω − E) − G_σ(ω + E)], Re ε(ω) = 1 + Σ w [R_σ(ω − E) − R_σ(ω + E)], with
    G_σ the normalised Gaussian of standard deviation σ and R_σ its Kramers–Kronig partner.
    Widths are rounded to the classes ``broadening · 1.25^c`` (at most ``max_broadening``);
    each class is binned (linear share between the two nearest bins) and all non-empty classes
    are convolved with real FFTs (one forward transform per class, one inverse each for Re and
    Im). The grid is 0, dE, … up to max(e_max_ext, max E + 6 max_broadening), rounded up to
    whole 20 eV, so no line is cut off.
    """
    de = settings.bin_width
    e_top = max(settings.e_max_ext, float(energies.max(initial=0.0)) + 6 * settings.max_broadening)
    n_bins = int(round(np.ceil(e_top / 20.0) * 20.0 / de)) + 1
    classes = _width_classes(settings.broadening, settings.max_broadening)
    cls = np.clip(np.round(np.log(sigma / classes[0]) / np.log(WIDTH_RATIO)), 0, len(classes) - 1).astype(np.int64)
    x = energies / de
    i0 = np.floor(x).astype(np.int64)
    frac = x - i0
    size = len(classes) * (n_bins + 1)
    hist = np.bincount(cls * (n_bins + 1) + i0, weights * (1 - frac), minlength=size)
    hist += np.bincount(cls * (n_bins + 1) + i0 + 1, weights * frac, minlength=size)
    hist = hist.reshape(len(classes), n_bins + 1)[:, :n_bins]
    used = np.flatnonzero(hist.any(axis=1))  # empty classes contribute exactly nothing
    hist = hist[used]
    odd = np.concatenate([-hist[:, :0:-1], np.zeros((len(used), 1)), hist[:, 1:]], axis=1)  # bins −(n−1) … n−1
    length, gauss_ft, partner_ft = _kernel_ft(n_bins, de, tuple(classes))
    gauss_ft, partner_ft = gauss_ft[used], partner_ft[used]
    odd_ft = np.fft.rfft(odd, length, axis=1)  # real data: half spectra suffice
    start = (n_bins - 1) + 2 * n_bins
    im = np.fft.irfft(np.einsum("cf,cf->f", odd_ft, gauss_ft), length)[start : start + n_bins]
    re = np.fft.irfft(np.einsum("cf,cf->f", odd_ft, partner_ft), length)[start : start + n_bins]
    return 1.0 + re, np.maximum(im, 0.0)  # clip FFT round-off (~1e-15) below zero


WIDTH_RATIO = 1.25


def _width_classes(sigma0: float, sigma_max: float) -> np.ndarray:
    n = int(np.ceil(np.log(sigma_max / sigma0) / np.log(WIDTH_RATIO))) + 1
    return sigma0 * WIDTH_RATIO ** np.arange(n)


@lru_cache(maxsize=4)
def _kernel_ft(n_bins: int, de: float, sigmas: tuple[float, ...]) -> tuple[int, np.ndarray, np.ndarray]:
    """FFT length and real FFTs (rfft) of G_σ(x) and of R_σ(x) on offsets x = −2n … 2n bins, one row per σ."""
    x = np.arange(-2 * n_bins, 2 * n_bins + 1) * de
    s = np.asarray(sigmas)[:, None]
    gauss = np.exp(-0.5 * (x / s) ** 2) / (np.sqrt(2 * np.pi) * s)
    partner = -np.sqrt(2.0) / (np.pi * s) * dawsn(x / (np.sqrt(2.0) * s))  # −H[G_σ]
    length = next_fast_len(2 * n_bins - 1 + len(x) - 1)
    return length, np.fft.rfft(gauss, length, axis=1), np.fft.rfft(partner, length, axis=1)
