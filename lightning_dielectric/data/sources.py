"""Readers for the two published forms of the dielectric dataset.

Both produce *raw records* (see ``validate.py``) or raise ``BadRecord``; nothing here averages.

- ``cse-json``: directories of JSON files (optionally ``.json.gz``), each a serialized pymatgen
  ``ComputedStructureEntry`` (or a JSON list of them) whose ``data`` holds ``mat_id``,
  ``e_above_hull`` (eV/atom), ``drude_freq`` (3 Cartesian components, eV) and ``eps_inter_re``,
  ``eps_inter_im`` (2001 × 4: column 0 the energy grid in eV, columns 1–3 xx, yy, zz). The JSON is
  read with the standard library and the structure assembled directly (much faster than
  ``ComputedStructureEntry.from_dict``): Cartesian positions are ``abc @ lattice`` as pymatgen
  does, or the site's ``xyz`` when it gives no ``abc``; a site must hold one species with
  occupancy 1.
- ``h5``: the preprocessed release ``train.h5``, ``val.h5``, ``test.h5``; one group per material
  with datasets ``mat_id``, ``e_above_hull``, ``composition``, ``lattice`` (3 × 3 Å),
  ``atomic_number``, ``position`` (Cartesian Å), ``drude`` (RMS, eV) and ``eps`` (complex64,
  2001, Tr ε/3). The split is the file's stem. ``composition`` is not used: the formula is
  recomputed from ``atomic_number`` like for every other source.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson comes with pymatgen
    _fast_loads = json.loads

from .validate import (
    DISORDERED,
    MALFORMED_JSON,
    MALFORMED_VALUE,
    MISSING_KEY,
    UNKNOWN_ELEMENT,
    UNREADABLE,
    BadRecord,
)

JSON_SUFFIXES = (".json", ".json.gz")
H5_SUFFIXES = (".h5", ".hdf5")
H5_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _symbols() -> dict[str, int]:
    from pymatgen.core.periodic_table import Element

    return {el.symbol: el.Z for el in Element}


SYMBOL_TO_Z = _symbols()


# ---------------------------------------------------------------- CSE JSON


def iter_json_files(root: str | Path) -> Iterator[str]:
    """Every ``*.json`` / ``*.json.gz`` under ``root`` (or ``root`` itself), in sorted order, lazily."""
    root = str(root)
    if os.path.isfile(root):
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(JSON_SUFFIXES):
                yield os.path.join(dirpath, name)


def read_json(path: str) -> object:
    """Load a (possibly gzipped) JSON file; ``BadRecord`` when unreadable or malformed.

    Parsed with orjson when installed (a pymatgen dependency, about 3× faster); text it rejects
    is re-read with the standard library, which also accepts NaN / Infinity (caught later as
    non-finite numbers).
    """
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise BadRecord(UNREADABLE, f"{type(err).__name__}: {err}") from None
    try:
        return _fast_loads(raw)
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRecord(MALFORMED_JSON, str(err)) from None


def entry_to_record(entry: object) -> dict:
    """Raw record from a ``ComputedStructureEntry.as_dict()`` mapping."""
    if not isinstance(entry, dict):
        raise BadRecord(MALFORMED_VALUE, f"entry is a JSON {type(entry).__name__}, not an object")
    data = _get(entry, "data")
    structure = _get(entry, "structure")
    lattice = _float_array(_get(_get(structure, "lattice", "structure"), "matrix", "structure.lattice"), "lattice")
    if lattice.shape != (3, 3):
        raise BadRecord(MALFORMED_VALUE, f"lattice has shape {lattice.shape}, expected (3, 3)")
    sites = _get(structure, "sites", "structure")
    if not isinstance(sites, list):
        raise BadRecord(MALFORMED_VALUE, "structure.sites is not a list")
    z, positions = _sites(sites, lattice)
    eps_re = _float_array(_get(data, "eps_inter_re", "data"), "eps_inter_re")
    eps_im = _float_array(_get(data, "eps_inter_im", "data"), "eps_inter_im")
    for key, eps in (("eps_inter_re", eps_re), ("eps_inter_im", eps_im)):
        if eps.ndim != 2 or eps.shape[1] != 4:
            raise BadRecord(MALFORMED_VALUE, f"{key} has shape {eps.shape}, expected (2001, 4)")
    eah = _get(data, "e_above_hull", "data")
    return {
        "mat_id": _mat_id(_get(data, "mat_id", "data")),
        "e_above_hull": None if eah is None else _float(eah, "e_above_hull"),
        "lattice": lattice,
        "atomic_numbers": z,
        "positions": positions,
        "eps_re": eps_re[:, 1:],
        "eps_im": eps_im[:, 1:],
        "energy": [eps_re[:, 0], eps_im[:, 0]],
        "drude": _float_array(_get(data, "drude_freq", "data"), "drude_freq").reshape(-1),
    }


def _sites(sites: list, lattice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers (n,) and Cartesian positions (n, 3) Å of the serialized sites."""
    if not sites:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    z = np.empty(len(sites), dtype=np.int64)
    coords, fractional = [], np.zeros(len(sites), dtype=bool)
    for k, site in enumerate(sites):
        where = f"structure.sites[{k}]"
        species = _get(site, "species", where)
        if not isinstance(species, list) or not species or not isinstance(species[0], dict):
            raise BadRecord(MALFORMED_VALUE, f"{where}.species is not a non-empty list of objects")
        if len(species) != 1 or abs(_float(species[0].get("occu", 1.0), f"{where} occupancy") - 1.0) > 1e-6:
            raise BadRecord(DISORDERED, f"{where} has species {species}")
        symbol = _get(species[0], "element", f"{where}.species[0]")
        if symbol not in SYMBOL_TO_Z:
            raise BadRecord(UNKNOWN_ELEMENT, f"{symbol!r} at {where}")
        z[k] = SYMBOL_TO_Z[symbol]
        fractional[k] = "abc" in site
        coords.append(site["abc"] if fractional[k] else _get(site, "xyz", where))
    positions = _float_array(coords, "site coordinates").reshape(len(sites), -1)
    if positions.shape[1] != 3:
        raise BadRecord(MALFORMED_VALUE, f"site coordinates have shape {positions.shape}")
    positions[fractional] = positions[fractional] @ lattice
    return z, positions


def _get(mapping: object, key: str, where: str = "") -> object:
    if not isinstance(mapping, dict):
        raise BadRecord(MALFORMED_VALUE, f"{where or 'entry'} is not a JSON object")
    if key not in mapping:
        raise BadRecord(MISSING_KEY, f"{where}.{key}" if where else key)
    return mapping[key]


def _float_array(value: object, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRecord(MALFORMED_VALUE, f"{name} is not a numeric array") from None


def _float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecord(MALFORMED_VALUE, f"{name} is not a number")
    return float(value)


def _mat_id(value: object) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise BadRecord(MALFORMED_VALUE, f"mat_id {value!r} is not a non-empty string")
    return str(value).strip()


def read_cse_file(path: str) -> Iterator[tuple[str, dict | BadRecord]]:
    """(source, raw record or BadRecord) for every entry of one JSON file (an object or a list)."""
    try:
        content = read_json(path)
    except BadRecord as err:
        yield path, err
        return
    entries = content if isinstance(content, list) else [content]
    for k, entry in enumerate(entries):
        source = f"{path}#{k}" if isinstance(content, list) else path
        try:
            yield source, entry_to_record(entry)
        except BadRecord as err:
            err.mat_id = _known_mat_id(entry)
            yield source, err
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            bad = BadRecord(MALFORMED_VALUE, f"{type(err).__name__}: {err}")
            bad.mat_id = _known_mat_id(entry)
            yield source, bad


def _known_mat_id(entry: object) -> str | None:
    try:
        return _mat_id(entry["data"]["mat_id"])  # type: ignore[index]
    except (KeyError, TypeError, BadRecord):
        return None


# ---------------------------------------------------------------- HDF5


def h5_files(source: str | Path) -> list[Path]:
    """The HDF5 files of a source (the file itself, or ``*.h5`` / ``*.hdf5`` in a directory), sorted."""
    source = Path(source)
    if source.is_file():
        return [source]
    return sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(H5_SUFFIXES))


def h5_split(path: Path) -> str | None:
    """The split an HDF5 release file holds, from its stem (``train``, ``val``, ``test``), else None."""
    return H5_SPLIT_NAMES.get(path.name.split(".")[0].lower())


def h5_group_names(path: Path) -> list[str]:
    """Names of the material groups of one HDF5 file; ``BadRecord`` when the file is unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return list(f.keys())
    except OSError as err:
        raise BadRecord(UNREADABLE, str(err)) from None


def read_h5_groups(path: str, names: list[str], split: str | None) -> Iterator[tuple[str, dict | BadRecord]]:
    """(source, raw record or BadRecord) for the named groups of one HDF5 file."""
    import h5py

    with h5py.File(path, "r") as f:
        for name in names:
            source = f"{path}:/{name}"
            mat_id = None
            try:
                group = f[name]
                if not isinstance(group, h5py.Group):
                    raise BadRecord(MALFORMED_VALUE, f"{name} is not a group")
                mat_id = _mat_id(_h5_value(group, "mat_id"))
                eps = np.asarray(_h5_value(group, "eps"))
                eah = _h5_value(group, "e_above_hull")
                rec = {
                    "mat_id": mat_id,
                    "e_above_hull": None if eah is None else _float_array(eah, "e_above_hull").item(),
                    "lattice": _float_array(_h5_value(group, "lattice"), "lattice"),
                    "atomic_numbers": np.asarray(_h5_value(group, "atomic_number"), dtype=np.int64).reshape(-1),
                    "positions": _float_array(_h5_value(group, "position"), "position"),
                    "eps_re": eps.real.astype(np.float64),
                    "eps_im": eps.imag.astype(np.float64),
                    "drude": _float_array(_h5_value(group, "drude"), "drude").reshape(-1),
                }
                if split is not None:
                    rec["split"] = split
                yield source, rec
            except BadRecord as err:
                err.mat_id = mat_id
                yield source, err
            except (OSError, ValueError, TypeError) as err:
                bad = BadRecord(MALFORMED_VALUE, f"{type(err).__name__}: {err}")
                bad.mat_id = mat_id
                yield source, bad


def _h5_value(group, key: str):
    try:
        dataset = group[key]
    except KeyError:
        raise BadRecord(MISSING_KEY, key) from None
    return dataset[()]


def detect_format(source: Path) -> str:
    """``h5`` for an HDF5 file or a directory holding some, else ``cse-json``."""
    if source.is_file():
        return "h5" if source.name.endswith(H5_SUFFIXES) else "cse-json"
    return "h5" if h5_files(source) else "cse-json"
