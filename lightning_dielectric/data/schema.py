"""The on-disk dataset format: one Parquet row per material.

Units and conventions (shared by ingest, the synthetic generator and the DataModule):

- ``lattice``: 9 float32, the three lattice vectors as rows (a1, a2, a3), in Å.
- ``positions``: list of [x, y, z] float32, Cartesian coordinates in Å.
- ``atomic_numbers``: list of uint8, 1 <= Z <= 83.
- ``eps_re``, ``eps_im``: 2001 float32 each, the direction-averaged interband dielectric
  function Tr ε_inter(ω)/3 on the grid ``ENERGY_GRID`` (0–20 eV, 0.01 eV steps). The real
  part includes the vacuum term 1 (so Re ε → 1 far above all transitions). Im ε >= 0.
- ``drude``: float32, the Drude plasma frequency in eV as the RMS over the three Cartesian
  components, sqrt((ω_D,x² + ω_D,y² + ω_D,z²)/3).
- ``e_above_hull``: float32 eV/atom, nullable (null for synthetic data).

The same units and meanings travel with the files: every Parquet field carries ``unit`` and
``description`` metadata (``pq.read_schema(path).field("drude").metadata``), and ``dataset.json``
holds the full schema (:func:`schema_description`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 1
N_ENERGIES = 2001
E_MIN_EV = 0.0
E_MAX_EV = 20.0
ENERGY_GRID = np.linspace(E_MIN_EV, E_MAX_EV, N_ENERGIES)  # eV, step 0.01 eV
MAX_Z = 83  # Bi
SPLITS = ("train", "val", "test")

GRID_TEXT = f"{E_MIN_EV:g}-{E_MAX_EV:g} eV in 0.01 eV steps ({N_ENERGIES} points)"
# name -> (type, nullable, unit, meaning)
FIELDS: dict[str, tuple[pa.DataType, bool, str, str]] = {
    "mat_id": (pa.string(), False, "", "material identifier (Materials Project id; tb-NNNNNN for synthetic data)"),
    "formula": (pa.string(), False, "", "reduced chemical formula"),
    "e_above_hull": (pa.float32(), True, "eV/atom", "energy above the convex hull (null for synthetic data)"),
    "lattice": (pa.list_(pa.float32(), 9), False, "Å",
                "lattice vectors a1, a2, a3 as the rows of a 3x3 matrix, row-major"),
    "atomic_numbers": (pa.list_(pa.uint8()), False, "", f"atomic number Z of each site (1 <= Z <= {MAX_Z})"),
    "positions": (pa.list_(pa.list_(pa.float32(), 3)), False, "Å", "Cartesian [x, y, z] of each site"),
    "eps_re": (pa.list_(pa.float32(), N_ENERGIES), False, "1",
               f"Re of the interband dielectric function Tr ε_inter(ω)/3 on {GRID_TEXT}, vacuum 1 included"),
    "eps_im": (pa.list_(pa.float32(), N_ENERGIES), False, "1",
               f"Im of the interband dielectric function Tr ε_inter(ω)/3 on {GRID_TEXT}, >= 0"),
    "drude": (pa.float32(), False, "eV",
              "Drude plasma frequency ω_D, RMS over x, y, z: sqrt((ω_x² + ω_y² + ω_z²)/3)"),
}
SCHEMA = pa.schema(
    [pa.field(name, dtype, nullable=nullable, metadata={"unit": unit, "description": meaning})
     for name, (dtype, nullable, unit, meaning) in FIELDS.items()],
    metadata={"lightning_dielectric.schema_version": str(SCHEMA_VERSION), "energy_grid": GRID_TEXT},
)
COLUMNS = tuple(SCHEMA.names)
STRUCTURE_COLUMNS = ("mat_id", "lattice", "atomic_numbers", "positions")
READ_COLUMNS = [*STRUCTURE_COLUMNS, "eps_re", "eps_im", "drude"]  # what training reads


def schema_description() -> list[dict[str, str]]:
    """The columns as dataset.json lists them: name, Arrow type, nullable, unit, description."""
    return [{"name": name, "type": str(dtype), "nullable": nullable, "unit": unit, "description": meaning}
            for name, (dtype, nullable, unit, meaning) in FIELDS.items()]


def records_to_table(records: list[dict]) -> pa.Table:
    """Convert material records (dicts with the schema's keys, numpy arrays allowed) to a table.

    ``lattice`` may be (3, 3) or (9,), ``positions`` (n, 3); spectra (2001,).
    """
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    for r in records:
        cols["mat_id"].append(str(r["mat_id"]))
        cols["formula"].append(str(r["formula"]))
        eah = r.get("e_above_hull")
        cols["e_above_hull"].append(None if eah is None else float(eah))
        cols["lattice"].append(np.asarray(r["lattice"], dtype=np.float32).reshape(9))
        cols["atomic_numbers"].append(np.asarray(r["atomic_numbers"], dtype=np.uint8))
        cols["positions"].append(np.asarray(r["positions"], dtype=np.float32).reshape(-1, 3))
        cols["eps_re"].append(np.asarray(r["eps_re"], dtype=np.float32))
        cols["eps_im"].append(np.asarray(r["eps_im"], dtype=np.float32))
        cols["drude"].append(float(r["drude"]))
    arrays = [
        pa.array(cols["mat_id"], pa.string()),
        pa.array(cols["formula"], pa.string()),
        pa.array(cols["e_above_hull"], pa.float32()),
        _fixed_list(cols["lattice"], 9),
        pa.array([a.tolist() for a in cols["atomic_numbers"]], pa.list_(pa.uint8())),
        _positions_array(cols["positions"]),
        _fixed_list(cols["eps_re"], N_ENERGIES),
        _fixed_list(cols["eps_im"], N_ENERGIES),
        pa.array(cols["drude"], pa.float32()),
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _fixed_list(rows: list[np.ndarray], size: int) -> pa.FixedSizeListArray:
    flat = np.concatenate(rows).astype(np.float32) if rows else np.zeros(0, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), size)


def _positions_array(rows: list[np.ndarray]) -> pa.ListArray:
    counts = np.array([len(p) for p in rows], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    flat = np.concatenate(rows).reshape(-1) if rows else np.zeros(0, np.float32)
    xyz = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), 3)
    return pa.ListArray.from_arrays(pa.array(offsets), xyz)


def table_to_arrays(table: pa.Table) -> dict[str, object]:
    """Numpy views of a table; ragged columns come back flat with offsets.

    Returns (for the columns present) ``lattice`` (n, 3, 3) Å, ``atomic_numbers`` flat
    (sum atoms,) with ``atom_offsets`` (n + 1,), ``positions`` flat (sum atoms, 3) Å,
    ``eps_re``/``eps_im`` (n, 2001), ``drude`` (n,) eV, ``mat_id`` and ``formula`` as lists.
    """
    out: dict[str, object] = {}
    names = table.column_names
    for key in ("mat_id", "formula"):
        if key in names:
            out[key] = table.column(key).to_pylist()
    if "lattice" in names:
        out["lattice"] = _flat(table, "lattice").reshape(-1, 3, 3)
    if "atomic_numbers" in names:
        z = table.column("atomic_numbers").combine_chunks()
        offsets = _numpy(z.offsets).astype(np.int64)
        out["atom_offsets"] = offsets - offsets[0]
        out["atomic_numbers"] = _numpy(z.flatten())
    if "positions" in names:
        out["positions"] = _flat(table, "positions").reshape(-1, 3)
    for key in ("eps_re", "eps_im"):
        if key in names:
            out[key] = _flat(table, key).reshape(-1, N_ENERGIES)
    if "drude" in names:
        out["drude"] = _numpy(table.column("drude").combine_chunks())
    return out


def _flat(table: pa.Table, key: str) -> np.ndarray:
    """All float values of a (nested) list column, honouring slice offsets."""
    arr = table.column(key).combine_chunks()
    while pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
    return _numpy(arr)


def _numpy(arr: pa.Array) -> np.ndarray:
    """The values of a flat array as numpy: a zero-copy (read-only) view of its data buffer when it
    has a fixed-width numeric type and no nulls, else ``to_numpy``.

    pyarrow's ``to_numpy`` imports pandas on first use (~50 MB resident); the stream's worker
    processes, which need nothing of pandas, read every column through here.
    """
    t = arr.type
    if arr.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        dtype = np.dtype(t.to_pandas_dtype())
        return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    return arr.to_numpy(zero_copy_only=False)
