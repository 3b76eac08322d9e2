"""Validation of parsed material records before they enter a dataset.

A *raw record* is what the source readers (``sources.py``) produce, before averaging:

- ``mat_id``: str; ``e_above_hull``: float eV/atom or None;
- ``lattice``: (3, 3) float, lattice vectors as rows, Å;
- ``atomic_numbers``: (n,) int; ``positions``: (n, 3) float, Cartesian Å;
- ``eps_re``, ``eps_im``: (2001,) or (2001, k) float — k Cartesian components (xx, yy, zz)
  that ``to_row`` averages to Tr ε/3;
- ``drude``: (k,) float eV — Cartesian components (k = 3) or the RMS already (k = 1); ``to_row``
  stores sqrt(mean(ω_D,i²)), which leaves a single RMS value unchanged;
- optional ``energy``: list of (2001,) float eV, the energy grids the source gave (checked against
  0–20 eV in 0.01 eV steps); optional ``split``: "train" / "val" / "test".

A problem is reported as a reason string ``"<kind>: <detail>"``; the kinds below are what the
ingest summary counts. Readers raise ``BadRecord`` for problems they meet while parsing.
"""

from __future__ import annotations


import numpy as np

from .neighbors import periodic_neighbors
from .schema import ENERGY_GRID, MAX_Z, N_ENERGIES

UNREADABLE = "unreadable file"
MALFORMED_JSON = "malformed JSON"
MISSING_KEY = "missing key"
MALFORMED_VALUE = "malformed value"
NON_FINITE = "non-finite number"
GRID_LENGTH = "wrong grid length"
GRID_RANGE = "grid not 0-20 eV"
NEGATIVE_DRUDE = "negative Drude frequency"
UNKNOWN_ELEMENT = "unknown element"
Z_TOO_LARGE = "Z > 83"
DISORDERED = "disordered site"
NO_ATOMS = "no atoms"
TOO_CLOSE = "atoms closer than 0.5 Å"
BAD_VOLUME = "non-positive volume"
DUPLICATE = "duplicate mat_id"
NOT_IN_SPLIT_FILES = "not in split files"

MIN_DISTANCE_A = 0.5  # Å, closest allowed approach of two atoms (periodic images included)
MIN_VOLUME_A3 = 1e-3  # Å³, |det(lattice)| at or below this is a degenerate cell
GRID_ATOL_EV = 1e-3  # eV, tolerance of a source energy grid against ENERGY_GRID


class BadRecord(ValueError):
    """A record that cannot enter the dataset; ``str(err)`` is its reason."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def reason_kind(reason: str) -> str:
    """The kind of a reason string (the part before the first ': ')."""
    return reason.split(": ", 1)[0]


def check_record(rec: dict) -> str | None:
    """Return why the raw record ``rec`` is unusable, or None when it is fine."""
    try:
        _check(rec)
    except BadRecord as err:
        return str(err)
    except (ValueError, TypeError, IndexError, np.linalg.LinAlgError) as err:
        return f"{MALFORMED_VALUE}: {type(err).__name__}: {err}"
    return None


def _check(rec: dict) -> None:
    z = np.asarray(rec["atomic_numbers"])
    if z.ndim != 1:
        raise BadRecord(MALFORMED_VALUE, f"atomic_numbers has shape {z.shape}")
    if len(z) == 0:
        raise BadRecord(NO_ATOMS)
    if (z < 1).any():
        raise BadRecord(UNKNOWN_ELEMENT, f"Z = {int(z.min())}")
    if (z > MAX_Z).any():
        raise BadRecord(Z_TOO_LARGE, f"Z = {int(z.max())}")
    lattice = _array(rec, "lattice", (3, 3))
    positions = _array(rec, "positions", (len(z), 3))
    eps = {key: np.asarray(rec[key], dtype=np.float64) for key in ("eps_re", "eps_im")}
    drude = np.asarray(rec["drude"], dtype=np.float64).reshape(-1)
    eah = rec.get("e_above_hull")
    for key, value in [("lattice", lattice), ("positions", positions), ("drude", drude), *eps.items()]:
        if not np.isfinite(value).all():
            raise BadRecord(NON_FINITE, key)
    if eah is not None and not np.isfinite(eah):
        raise BadRecord(NON_FINITE, "e_above_hull")
    volume = abs(np.linalg.det(lattice))
    if not volume > MIN_VOLUME_A3:
        raise BadRecord(BAD_VOLUME, f"|det(lattice)| = {volume:.3g} Å³")
    for key, value in eps.items():
        if value.ndim not in (1, 2) or len(value) != N_ENERGIES:
            raise BadRecord(GRID_LENGTH, f"{key} has shape {value.shape}, expected {N_ENERGIES} energies")
    for grid in rec.get("energy", ()):
        grid = np.asarray(grid, dtype=np.float64)
        if len(grid) != N_ENERGIES:
            raise BadRecord(GRID_LENGTH, f"energy grid has {len(grid)} points, expected {N_ENERGIES}")
        if not np.isfinite(grid).all():
            raise BadRecord(NON_FINITE, "energy grid")
        if not np.allclose(grid, ENERGY_GRID, rtol=0.0, atol=GRID_ATOL_EV):
            raise BadRecord(GRID_RANGE, f"energy grid spans {grid[0]:g}..{grid[-1]:g} eV")
    if len(drude) == 0:
        raise BadRecord(MALFORMED_VALUE, "drude is empty")
    if (drude < 0).any():
        raise BadRecord(NEGATIVE_DRUDE, f"{drude.min():g} eV")
    d = min_image_distance(lattice, positions)
    if d < MIN_DISTANCE_A:
        raise BadRecord(TOO_CLOSE, f"{d:.3f} Å")


def _array(rec: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = np.asarray(rec[key], dtype=np.float64)
    if value.shape != shape:
        raise BadRecord(MALFORMED_VALUE, f"{key} has shape {value.shape}, expected {shape}")
    return value


def min_image_distance(lattice: np.ndarray, positions: np.ndarray, reach: float = MIN_DISTANCE_A) -> float:
    """Shortest distance (Å) between two atoms or an atom and its own periodic image, when it is
    below ``reach``; ``inf`` when no two atoms are within ``reach`` (any cell shape)."""
    *_, dist = periodic_neighbors(np.asarray(lattice, dtype=np.float64), positions, reach)
    return float(dist.min()) if len(dist) and dist.min() < reach else np.inf
