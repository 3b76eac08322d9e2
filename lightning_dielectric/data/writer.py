"""Atomic, memory-bounded writing of a dataset directory.

Layout: ``ROOT/{train,val,test}/part-00000.parquet …`` plus ``ROOT/dataset.json`` holding the
schema (version and every column's type, unit and meaning), energy grid, counts per split, split
method and seed, the training-order seed, a SHA-256 per shard, the stored training subsets and the
provenance; published training subsets go to ``ROOT/subsets/train_<D>.txt`` (one mat_id a line).
Everything is written into a temporary sibling directory that is renamed onto ROOT only when
complete; an existing ROOT is never overwritten unless asked.

Writing is two-pass so that memory does not grow with the dataset: incoming tables are first
staged to disk while only (mat_id, formula, split) are kept in memory; then splits and the
seeded training order are decided, staged rows are bucketed per output shard, and each output
shard is assembled from its bucket alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..outputs import make_temp_dir
from .schema import COLUMNS, E_MAX_EV, E_MIN_EV, N_ENERGIES, SCHEMA, SCHEMA_VERSION, SPLITS, schema_description
from .splits import PAPER_SPLIT_SEED, SPLIT_METHODS, split_by_formula, split_like_paper, training_order

SHARD_ROWS = 4096
ROW_GROUP_ROWS = 256
# Dictionary encoding only pays for the string columns; on float spectra it inflates files ~30 %.
DICTIONARY_COLUMNS = ["mat_id", "formula"]
SUBSET_DIR = "subsets"


class DatasetExistsError(FileExistsError):
    pass


def write_dataset(
    tables: Iterable[pa.Table],
    out: str | Path,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_method: str = "balanced",
    split_seed: int | None = None,
    split_of: dict[str, int] | None = None,
    subsets: dict[int, list[str]] | None = None,
    provenance: dict | None = None,
    overwrite: bool = False,
    shard_rows: int = SHARD_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> dict:
    """Write ``tables`` (each with the columns of ``SCHEMA``) as a dataset at ``out``.

    The split of each row is, in order of precedence: ``split_of[mat_id]`` (split files;
    rows whose mat_id is absent are dropped and counted), a ``split`` column in the tables
    ("train"/"val"/"test", e.g. kept from the HDF5 release), or by reduced formula with
    ``split_method`` (``paper`` or ``balanced``, see ``splits.py``), ``fractions`` and
    ``split_seed`` (default: 42 for ``paper``, ``seed`` for ``balanced``). ``seed`` seeds the
    training order. ``subsets`` (D → mat_ids, e.g. the paper's ``train_<D>.txt``) are stored as
    ``ROOT/subsets/train_<D>.txt``, keeping the listed materials that are in the written
    training split. Returns the metadata written to ``dataset.json``.
    """
    if split_method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {split_method!r} (choose from {', '.join(SPLIT_METHODS)})")
    if split_seed is None:
        split_seed = PAPER_SPLIT_SEED if split_method == "paper" else seed
    split_rule = (split_method, split_seed, fractions)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetExistsError(f"{out}: dataset already exists (pass overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
    try:
        meta = _write(tables, tmp, seed, split_rule, split_of, subsets or {}, provenance or {}, shard_rows,
                      row_group_rows)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return meta
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write(tables, tmp: Path, seed, split_rule, split_of, subsets, provenance, shard_rows, row_group_rows) -> dict:
    method, split_seed, fractions = split_rule
    staging = tmp / "_staging"
    staging.mkdir()
    mat_ids: list[str] = []
    formulas: list[str] = []
    given_split: list[int] = []
    n_staged = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        pq.write_table(
            table.select(list(COLUMNS)).cast(SCHEMA),
            staging / f"stage-{n_staged:06d}.parquet",
            use_dictionary=DICTIONARY_COLUMNS,
        )
        n_staged += 1
        mat_ids.extend(table.column("mat_id").to_pylist())
        formulas.extend(table.column("formula").to_pylist())
        if "split" in table.column_names:
            given_split.extend(SPLITS.index(s) for s in table.column("split").to_pylist())
    n = len(mat_ids)
    if len(set(mat_ids)) != n:
        raise ValueError("duplicate mat_id among the rows to write")

    if split_of is not None:
        split = np.array([split_of.get(m, -1) for m in mat_ids], dtype=np.int8)
        method, split_seed = "split-files", None
    elif given_split and len(given_split) == n:
        split = np.array(given_split, dtype=np.int8)
        method, split_seed = "source", None
    elif not n:
        split = np.zeros(0, np.int8)
    else:
        splitter = split_like_paper if method == "paper" else split_by_formula
        split = splitter(formulas, fractions, split_seed)

    # Destination of every staged row: (split, position within split).
    position = np.full(n, -1, dtype=np.int64)
    counts = {}
    for s, name in enumerate(SPLITS):
        rows = np.flatnonzero(split == s)
        if name == "train":
            rows = rows[training_order(len(rows), seed)]
        else:  # deterministic order for val/test: sorted by mat_id
            rows = rows[np.argsort(np.asarray([mat_ids[i] for i in rows], dtype=object), kind="stable")]
        position[rows] = np.arange(len(rows))
        counts[name] = int(len(rows))

    # Pass 1: bucket staged rows by output shard.
    buckets = tmp / "_buckets"
    offset = 0
    for k in range(n_staged):
        table = pq.read_table(staging / f"stage-{k:06d}.parquet")
        s_part = split[offset : offset + table.num_rows]
        p_part = position[offset : offset + table.num_rows]
        offset += table.num_rows
        for s, name in enumerate(SPLITS):
            for shard in np.unique(p_part[s_part == s] // shard_rows):
                mask = (s_part == s) & (p_part // shard_rows == shard)
                piece = table.filter(pa.array(mask)).append_column("_pos", pa.array(p_part[mask]))
                d = buckets / name / f"{shard:05d}"
                d.mkdir(parents=True, exist_ok=True)
                pq.write_table(piece, d / f"{k:06d}.parquet", use_dictionary=DICTIONARY_COLUMNS)
        (staging / f"stage-{k:06d}.parquet").unlink()
    staging.rmdir()

    # Pass 2: assemble each output shard in order.
    shards = []
    for name in SPLITS:
        (tmp / name).mkdir()
        for shard in range((counts[name] + shard_rows - 1) // shard_rows):
            d = buckets / name / f"{shard:05d}"
            piece = pa.concat_tables([pq.read_table(f) for f in sorted(d.iterdir())])
            piece = piece.take(pc.sort_indices(piece, [("_pos", "ascending")])).drop(["_pos"])
            path = tmp / name / f"part-{shard:05d}.parquet"
            pq.write_table(
                piece.cast(SCHEMA), path, row_group_size=row_group_rows, use_dictionary=DICTIONARY_COLUMNS
            )
            shards.append({"path": f"{name}/{path.name}", "rows": piece.num_rows, "sha256": sha256(path)})
            shutil.rmtree(d)
    if buckets.exists():
        shutil.rmtree(buckets)
    train_set = {mat_ids[i] for i in np.flatnonzero(split == 0)}

    meta = {
        "schema_version": SCHEMA_VERSION,
        "schema": schema_description(),
        "energy_grid_ev": {"start": E_MIN_EV, "stop": E_MAX_EV, "num": N_ENERGIES},
        "counts": counts,
        "dropped_not_in_split_files": int((split < 0).sum()),
        "split": {"method": method, "seed": split_seed, "fractions": list(fractions)},
        "training_order": "seeded permutation; the first D rows are the nested training subset of size D",
        "training_order_seed": seed,
        "shards": shards,
        "train_subsets": _write_subsets(tmp, subsets, train_set),
        "provenance": {"package_version": __version__, "created_unix": int(time.time()), **provenance},
    }
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2))
    return meta


def _write_subsets(tmp: Path, subsets: dict[int, list[str]], train_set: set[str]) -> dict:
    """Write ``tmp/subsets/train_<D>.txt`` for each listed D; return the ``train_subsets`` record.

    Each file keeps the listed order, less materials not in the written training split
    (quarantined, or absent from the source); ``listed`` and ``stored`` count before and after.
    """
    record = {}
    for d, ids in sorted(subsets.items()):
        kept = [m for m in ids if m in train_set]
        path = tmp / SUBSET_DIR / f"train_{d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"{m}\n" for m in kept))
        record[str(d)] = {"path": f"{SUBSET_DIR}/{path.name}", "listed": len(ids), "stored": len(kept),
                          "sha256": sha256(path)}
    return record


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(root: str | Path) -> dict:
    """Load ``ROOT/dataset.json`` with a clear error when it is missing or not a dataset."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a lightning-dielectric dataset (dataset.json missing)")
    meta = json.loads(path.read_text())
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {meta.get('schema_version')} != {SCHEMA_VERSION}")
    return meta


def shard_paths(root: str | Path, split: str) -> list[Path]:
    """The Parquet shards of one split, in their stored order."""
    meta = read_metadata(root)
    return [Path(root) / s["path"] for s in meta["shards"] if s["path"].startswith(f"{split}/")]
