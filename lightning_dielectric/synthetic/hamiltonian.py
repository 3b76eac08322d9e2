"""Bloch Hamiltonian H(k) and its k-gradient for a crystal in the two-centre tight-binding model.

Convention (the "atomic" gauge, positions included):

    H_ab(k) = Σ_R t_ab(R) exp(i k·(R + τ_b − τ_a)),    ∂H_ab/∂k = Σ_R i (R + τ_b − τ_a) t_ab(R) exp(…)

with k in Å⁻¹ (including the 2π), R + τ_b − τ_a the physical bond vector in Å and t in eV,
so ∂H/∂k is in eV·Å and ħv = ∂H/∂k (Peierls substitution with the full intra-cell positions).
Because only physical bond vectors enter, H does not change when an atom is moved by a
lattice vector, and a rigid translation changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.neighbors import periodic_neighbors
from .slater_koster import CUT_OFF, ElementParams, element_params, hopping_blocks


@dataclass
class TBModel:
    """A crystal's tight-binding model.

    ``lattice`` (3, 3) Å rows a1, a2, a3; ``positions`` (n, 3) Cartesian Å; ``offsets`` (n + 1,)
    orbital offsets per atom; ``onsite`` (N,) eV; ``pairs`` a list of (i, j, vectors d (h, 3) Å,
    stacked (h, 4·n_i·n_j)) — every hop from atom i to an image of atom j, with the blocks
    [t, d_x t, d_y t, d_z t] (eV, eV·Å) flattened; ``n_electrons``
    valence electrons per cell (both spins).
    """

    lattice: np.ndarray
    positions: np.ndarray
    numbers: np.ndarray
    offsets: np.ndarray
    onsite: np.ndarray
    pairs: list[tuple[int, int, np.ndarray, np.ndarray]]
    n_electrons: float
    d_orbitals: np.ndarray | None = None  # indices of the d orbitals among all N
    site_electrons: np.ndarray | None = None  # valence electrons per atom (local neutrality target)


    @property
    def n_orb(self) -> int:
        return int(self.offsets[-1])

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(abs(np.linalg.det(self.lattice)))

    def hamiltonian(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H(k) (n_k, N, N) in eV and ∂H/∂k (n_k, 3, N, N) in eV·Å for Cartesian ``k`` (n_k, 3) Å⁻¹."""
        nk, n = len(k), self.n_orb
        h = np.zeros((nk, 4, n, n), dtype=np.complex128)
        for i, j, vec, stacked in self.pairs:
            arg = k @ vec.T  # (n_k, h)
            re, im = np.cos(arg) @ stacked, np.sin(arg) @ stacked  # real products, (n_k, 4 n_i n_j)
            ni, nj = self.offsets[i + 1] - self.offsets[i], self.offsets[j + 1] - self.offsets[j]
            re, im = re.reshape(nk, 4, ni, nj), im.reshape(nk, 4, ni, nj)
            si, sj = slice(self.offsets[i], self.offsets[i + 1]), slice(self.offsets[j], self.offsets[j + 1])
            h[:, 0, si, sj] += re[:, 0] + 1j * im[:, 0]  # t e^{ik·d}
            h[:, 1:, si, sj] += -im[:, 1:] + 1j * re[:, 1:]  # i d t e^{ik·d}
        h[:, 0] += np.diag(self.onsite)
        return h[:, 0], h[:, 1:]


def build_tb_model(
    lattice: np.ndarray,
    numbers: np.ndarray,
    positions: np.ndarray,
    *,
    max_l: int | None = None,
    n_electrons: float | None = None,
) -> TBModel:
    """Tight-binding model of a crystal (lattice rows in Å, Cartesian positions in Å).

    ``max_l`` truncates every atom's basis (0: s only), ``n_electrons`` overrides the
    valence count (tests: a full band).
    """
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    frac = positions @ np.linalg.inv(lattice)
    positions = (frac - np.floor(frac)) @ lattice  # wrap into the cell; H depends only on bond vectors
    numbers = np.asarray(numbers, dtype=np.int64)
    params: list[ElementParams] = [element_params(int(z), max_l) for z in numbers]
    offsets = np.concatenate([[0], np.cumsum([p.n_orb for p in params])]).astype(np.int64)
    onsite = np.concatenate([p.onsite for p in params])
    radii = np.array([p.radius for p in params])
    src, dst, offset, dist = periodic_neighbors(lattice, positions, CUT_OFF * 2 * radii.max())
    bonded = dist < CUT_OFF * (radii[src] + radii[dst])
    src, dst, offset = src[bonded], dst[bonded], offset[bonded]
    bond_vec = positions[dst] + offset @ lattice - positions[src]  # (bonds, 3) Å
    pairs = []
    for i, j in sorted(set(zip(src.tolist(), dst.tolist()))):  # at most n_atoms² pairs
        vec = bond_vec[(src == i) & (dst == j)]
        t = hopping_blocks(vec, params[i], params[j])  # (h, n_i, n_j)
        stacked = np.concatenate([t[:, None], vec[:, :, None, None] * t[:, None]], axis=1)
        pairs.append((i, j, vec, stacked.reshape(len(vec), -1)))
    site_e = np.array([p.n_electrons for p in params], dtype=np.float64)
    n_e = float(site_e.sum()) if n_electrons is None else float(n_electrons)
    d_orb = np.concatenate([np.arange(p.n_orb)[p.d_slice] + off for p, off in zip(params, offsets)]).astype(np.int64)
    return TBModel(lattice, positions, numbers, offsets, onsite, pairs, n_e, d_orb, site_e if n_electrons is None else None)
