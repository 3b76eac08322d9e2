"""Why a structure file cannot be used, in words (``not a valid CIF: no lattice parameters``).

pymatgen reports unreadable files with whatever its parser hit (``IndexError``, ``Invalid CIF
file with no structures!``); :func:`describe_unreadable` looks at the file itself to say what is
missing. :func:`check_cell` rejects cells a crystal graph cannot be built for.
"""

from __future__ import annotations

import re
from pathlib import Path

MIN_VOLUME_A3 = 1.0  # Å³; a smaller cell is degenerate (zero or collinear lattice vectors)


def describe_unreadable(path: Path, err: Exception) -> str:
    """A one-line reason why pymatgen could not read ``path`` (it raised ``err``)."""
    if isinstance(err, FileNotFoundError) or not path.exists():
        return "file not found"
    if isinstance(err, (IsADirectoryError, PermissionError)):
        return f"cannot open ({err.strerror})"
    text = path.read_text(errors="replace")
    if not text.strip():
        return "empty file"
    name = path.name.lower()
    if name.endswith(".cif") or "data_" in text[:2000]:
        return "not a valid CIF: " + _cif_problem(text)
    if any(key in name for key in ("poscar", "contcar")) or name.endswith(".vasp"):
        return "not a valid POSCAR: " + _poscar_problem(text)
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"cannot read structure ({first})"


def _cif_problem(text: str) -> str:
    if not re.search(r"^\s*data_", text, re.M):
        return "no data_ block"
    missing = [k for k in ("a", "b", "c") if not re.search(rf"^\s*_cell_length_{k}\s+\S", text, re.M)]
    if missing:
        return "no lattice parameters (" + ", ".join(f"_cell_length_{k}" for k in missing) + " missing)"
    if not re.search(r"^\s*_cell_angle_(alpha|beta|gamma)\s+\S", text, re.M):
        return "no cell angles (_cell_angle_alpha/beta/gamma missing)"
    if not re.search(r"^\s*_atom_site_(fract|Cartn)_x", text, re.M):
        return "no atom sites (_atom_site_fract_x/y/z loop missing)"
    return "atom sites or cell values could not be parsed"


def _poscar_problem(text: str) -> str:
    lines = [line.split() for line in text.splitlines()]
    if len(lines) < 5:
        return f"expected a comment, a scale factor and three lattice vectors, file has {len(lines)} lines"
    try:
        [float(x) for row in lines[2:5] for x in row[:3]]
    except ValueError:
        return "lattice vectors (lines 3-5) are not numbers"
    counts_line = 6 if lines[5] and not lines[5][0].lstrip("-").isdigit() else 5
    try:
        n = sum(int(x) for x in lines[counts_line])
    except (IndexError, ValueError):
        return f"no atom counts on line {counts_line + 1}"
    mode_line = lines[counts_line + 1] if len(lines) > counts_line + 1 else []
    start = counts_line + 2 + (1 if mode_line[:1] and mode_line[0].lower().startswith("s") else 0)  # Selective dynamics
    positions = [row for row in lines[start:start + n] if len(row) >= 3]
    if len(positions) < n:
        return f"{n} atoms declared but {len(positions)} positions given"
    return "element names or coordinates could not be parsed"


def check_cell(volume: float, min_distance: float | None) -> None:
    """Raise ValueError for a degenerate cell or atoms on top of each other (Å³, Å)."""
    if not volume >= MIN_VOLUME_A3:
        raise ValueError(f"degenerate cell: volume {volume:.3g} Å³ (lattice vectors zero or linearly dependent)")
    if min_distance is not None and min_distance < 0.5:
        raise ValueError(f"atoms {min_distance:.2f} Å apart (overlapping sites)")
