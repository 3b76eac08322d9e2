"""Intermetallic prototype structures and their random decoration.

Each prototype is a primitive cell (1–8 atoms) given by its Bravais lattice, a c/a ratio and
fractional positions with site labels; decorating assigns a distinct element to every label.
The lattice parameter is chosen so that the tightest pair just touches (distance = sum of
the metallic radii), then a random symmetric strain and random atomic displacements are
applied; a structure is accepted only if no pair is closer than 0.85 × the sum of radii.
Lengths in Å; positions returned Cartesian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.neighbors import periodic_neighbors
from .slater_koster import element_params

_FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
_BCC = np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])
_SC = np.eye(3)
_HEX = np.array([[1.0, 0.0, 0.0], [-0.5, np.sqrt(3) / 2, 0.0], [0.0, 0.0, 1.0]])  # c axis scaled by c/a


@dataclass(frozen=True)
class Prototype:
    """``lattice`` (3, 3) in units of a (rows; the z row is scaled by ``c_over_a``);
    ``sites`` (label, position) with positions fractional in the conventional cubic cell
    (cubic prototypes, ``cubic=True``) or in ``lattice`` itself (hexagonal, tetragonal)."""

    name: str
    lattice: np.ndarray
    sites: tuple[tuple[str, tuple[float, float, float]], ...]
    c_over_a: float = 1.0
    cubic: bool = True

    @property
    def labels(self) -> list[str]:
        return sorted({label for label, _ in self.sites})

    def cell(self, a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Lattice (3, 3) Å, Cartesian positions (n, 3) Å and site labels for lattice parameter ``a``."""
        lattice = self.lattice * a
        lattice[:, 2] *= self.c_over_a if not self.cubic else 1.0
        frac = np.array([p for _, p in self.sites], dtype=np.float64)
        cart = frac * a if self.cubic else frac @ lattice
        return lattice, cart, [label for label, _ in self.sites]


def _q(*xs: float) -> tuple[float, float, float]:
    return tuple(float(x) for x in xs)


PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("A1", _FCC, (("A", _q(0, 0, 0)),)),
    Prototype("A2", _BCC, (("A", _q(0, 0, 0)),)),
    Prototype("A3", _HEX, (("A", _q(1 / 3, 2 / 3, 1 / 4)), ("A", _q(2 / 3, 1 / 3, 3 / 4))), 1.633, False),
    Prototype("B2", _SC, (("A", _q(0, 0, 0)), ("B", _q(0.5, 0.5, 0.5)))),
    Prototype("L1_2", _SC, (("A", _q(0, 0, 0)), ("B", _q(0, 0.5, 0.5)), ("B", _q(0.5, 0, 0.5)), ("B", _q(0.5, 0.5, 0)))),
    Prototype("L1_0", _SC, (("A", _q(0, 0, 0)), ("B", _q(0.5, 0.5, 0.5))), 1.31, False),
    Prototype(
        "C15",
        _FCC,
        (("A", _q(0, 0, 0)), ("A", _q(0.25, 0.25, 0.25)))
        + tuple(("B", _q(*p)) for p in np.array([[5, 5, 5], [5, 7, 7], [7, 5, 7], [7, 7, 5]]) / 8),
    ),
    Prototype("L2_1", _FCC, (("A", _q(0.25, 0.25, 0.25)), ("A", _q(0.75, 0.75, 0.75)), ("B", _q(0.5, 0.5, 0.5)), ("C", _q(0, 0, 0)))),
    Prototype("C1_b", _FCC, (("A", _q(0.25, 0.25, 0.25)), ("B", _q(0.5, 0.5, 0.5)), ("C", _q(0, 0, 0)))),
    Prototype(
        "A15",
        _SC,
        (("A", _q(0, 0, 0)), ("A", _q(0.5, 0.5, 0.5)))
        + tuple(("B", _q(*p)) for p in [(0.25, 0, 0.5), (0.75, 0, 0.5), (0.5, 0.25, 0), (0.5, 0.75, 0), (0, 0.5, 0.25), (0, 0.5, 0.75)]),
    ),
    Prototype("C32", _HEX, (("A", _q(0, 0, 0)), ("B", _q(1 / 3, 2 / 3, 0.5)), ("B", _q(2 / 3, 1 / 3, 0.5))), 1.08, False),
    Prototype("B_h", _HEX, (("A", _q(0, 0, 0)), ("B", _q(1 / 3, 2 / 3, 0.5))), 0.976, False),
    Prototype("D0_3", _FCC, (("A", _q(0, 0, 0)), ("B", _q(0.5, 0.5, 0.5)), ("B", _q(0.25, 0.25, 0.25)), ("B", _q(0.75, 0.75, 0.75)))),
)

# Metals and metalloids up to Bi handled by the tight-binding model (no 4f elements).
ELEMENTS: tuple[int, ...] = tuple(
    [3, 4, 5, 11, 12, 13, 14, 19, 20]
    + list(range(21, 33))
    + [33, 37, 38]
    + list(range(39, 52))
    + [52, 55, 56, 57]
    + list(range(72, 84))
)

MIN_DISTANCE_RATIO = 0.85


def min_distance_ratio(lattice: np.ndarray, positions: np.ndarray, radii: np.ndarray) -> float:
    """Smallest d_ij / (r_i + r_j) over all pairs and periodic images (i = j images included)
    within 3 max r of each other.

    The search stops just past the shortest cell vector a (a row of ``lattice``): the largest
    atom's image along it has the ratio |a| / (2 max r), which every farther pair exceeds, so the
    minimum is inside.
    """
    cutoff = min(3.0 * radii.max(), 1.01 * np.linalg.norm(lattice, axis=1).min())
    src, dst, _, dist = periodic_neighbors(lattice, positions, cutoff)
    return float(np.min(dist / (radii[src] + radii[dst]), initial=np.inf))


def random_structure(
    rng: np.random.Generator, strain: float = 0.03, displacement: float = 0.05, max_tries: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Draw (lattice (3, 3) Å, atomic_numbers (n,), positions (n, 3) Å, prototype name).

    Strain: symmetric matrix with entries ~ N(0, ``strain``); displacements ~ N(0,
    ``displacement`` Å) per Cartesian component. Redrawn until every pair is at least
    0.85 × the sum of the metallic radii apart.
    """
    for _ in range(max_tries):
        proto = PROTOTYPES[rng.integers(len(PROTOTYPES))]
        labels = proto.labels
        chosen = rng.choice(ELEMENTS, size=len(labels), replace=False)
        z_of = dict(zip(labels, chosen.tolist()))
        lattice, positions, site_labels = proto.cell(1.0)
        numbers = np.array([z_of[label] for label in site_labels], dtype=np.int64)
        radii = np.array([element_params(int(z)).radius for z in numbers])
        scale = min_distance_ratio(lattice, positions, radii)
        lattice, positions = lattice / scale, positions / scale
        eps = rng.normal(scale=strain, size=(3, 3))
        deform = np.eye(3) + 0.5 * (eps + eps.T)
        lattice, positions = lattice @ deform, positions @ deform
        positions = positions + rng.normal(scale=displacement, size=positions.shape)
        if min_distance_ratio(lattice, positions, radii) >= MIN_DISTANCE_RATIO:
            return lattice, numbers, positions, proto.name
    raise RuntimeError("could not draw a structure satisfying the distance check")
