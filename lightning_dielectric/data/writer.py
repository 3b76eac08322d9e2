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
shard is assembled from its bucket alone. :func:`write_dataset` does it for an iterable of tables;
:class:`DatasetWriter` lets the caller stage tables one by one and hand the provenance (e.g. the
ingest's counts) over when it finishes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..outputs import make_temp_dir
from .schema import COLUMNS, E_MAX_EV, E_MIN_EV, N_ENERGIES, SCHEMA, SCHEMA_VERSION, SPLITS, schema_description
from .splits import SplitRule, training_order

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
    rule = SplitRule.choose(split_method, split_seed, fractions, default_seed=seed)
    with DatasetWriter(out, overwrite=overwrite) as writer:
        for table in tables:
            writer.add(table)
        return writer.finish(seed=seed, rule=rule, split_of=split_of, subsets=subsets, provenance=provenance,
                             shard_rows=shard_rows, row_group_rows=row_group_rows)


class DatasetWriter:
    """A dataset written in two phases: :meth:`add` stages tables to disk, :meth:`finish` decides the
    splits and the training order, writes the shards and ``dataset.json`` and renames the directory
    onto ``out``. A context manager: leaving it without :meth:`finish` leaves nothing behind."""

    def __init__(self, out: str | Path, *, overwrite: bool = False):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise DatasetExistsError(f"{self.out}: dataset already exists (pass overwrite to replace it)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = make_temp_dir(self.out.parent, f".{self.out.name}.tmp-")
        self.staged = _Staged(self.tmp / "_staging")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, table: pa.Table) -> None:
        """Stage ``table`` (the columns of ``SCHEMA``; an optional ``split`` column)."""
        self.staged.add(table)

    def finish(self, *, seed: int, rule: SplitRule, split_of: dict[str, int] | None = None,
               subsets: dict[int, list[str]] | None = None, provenance: dict | None = None,
               shard_rows: int = SHARD_ROWS, row_group_rows: int = ROW_GROUP_ROWS) -> dict:
        """Write the staged rows as the dataset (see :func:`write_dataset`); returns ``dataset.json``."""
        mat_ids = self.staged.mat_ids
        if len(set(mat_ids)) != len(mat_ids):
            raise ValueError("duplicate mat_id among the rows to write")
        split, split_record = _assign_splits(self.staged, rule, split_of)
        position, counts = _order(split, mat_ids, seed)
        buckets = self.tmp / "_buckets"
        _bucket(self.staged, split, position, buckets, shard_rows)
        shards = _assemble(self.tmp, buckets, counts, shard_rows=shard_rows, row_group_rows=row_group_rows)
        train_set = {mat_ids[i] for i in np.flatnonzero(split == 0)}
        meta = {
            "schema_version": SCHEMA_VERSION,
            "schema": schema_description(),
            "energy_grid_ev": {"start": E_MIN_EV, "stop": E_MAX_EV, "num": N_ENERGIES},
            "counts": counts,
            "dropped_not_in_split_files": int((split < 0).sum()),
            "split": split_record,
            "training_order": "seeded permutation; the first D rows are the nested training subset of size D",
            "training_order_seed": seed,
            "shards": shards,
            "train_subsets": _write_subsets(self.tmp, subsets or {}, train_set),
            "provenance": {"package_version": __version__, "created_unix": int(time.time()), **(provenance or {})},
        }
        (self.tmp / "dataset.json").write_text(json.dumps(meta, indent=2))
        if self.out.exists():
            shutil.rmtree(self.out)
        self.tmp.rename(self.out)
        return meta


@dataclass
class _Staged:
    """Incoming rows staged to ``dir`` as ``stage-NNNNNN.parquet``; in memory only what the split and
    the order need: mat_id, formula and the ``split`` column's index where the tables have one."""

    dir: Path
    files: int = 0
    mat_ids: list[str] = field(default_factory=list)
    formulas: list[str] = field(default_factory=list)
    given_split: list[int] = field(default_factory=list)

    def path(self, k: int) -> Path:
        return self.dir / f"stage-{k:06d}.parquet"

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.dir.mkdir(exist_ok=True)
        pq.write_table(table.select(list(COLUMNS)).cast(SCHEMA), self.path(self.files),
                       use_dictionary=DICTIONARY_COLUMNS)
        self.files += 1
        self.mat_ids.extend(table.column("mat_id").to_pylist())
        self.formulas.extend(table.column("formula").to_pylist())
        if "split" in table.column_names:
            self.given_split.extend(SPLITS.index(s) for s in table.column("split").to_pylist())


def _assign_splits(staged: _Staged, rule: SplitRule, split_of: dict[str, int] | None) -> tuple[np.ndarray, dict]:
    """Each staged row's split index (-1: in no split file, dropped) and the ``split`` record."""
    n = len(staged.mat_ids)
    method, seed = rule.method, rule.seed
    if split_of is not None:
        split = np.array([split_of.get(m, -1) for m in staged.mat_ids], dtype=np.int8)
        method, seed = "split-files", None
    elif staged.given_split and len(staged.given_split) == n:
        split = np.array(staged.given_split, dtype=np.int8)
        method, seed = "source", None
    elif not n:
        split = np.zeros(0, np.int8)
    else:
        split = rule.split(staged.formulas)
    return split, {"method": method, "seed": seed, "fractions": list(rule.fractions)}


def _order(split: np.ndarray, mat_ids: list[str], seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """Position of every row within its split (-1 for dropped rows) and the rows per split: the
    training rows in the seeded order, val and test sorted by mat_id."""
    position = np.full(len(split), -1, dtype=np.int64)
    counts = {}
    for s, name in enumerate(SPLITS):
        rows = np.flatnonzero(split == s)
        if name == "train":
            rows = rows[training_order(len(rows), seed)]
        else:
            rows = rows[np.argsort(np.asarray([mat_ids[i] for i in rows], dtype=object), kind="stable")]
        position[rows] = np.arange(len(rows))
        counts[name] = int(len(rows))
    return position, counts


def _bucket(staged: _Staged, split: np.ndarray, position: np.ndarray, buckets: Path, shard_rows: int) -> None:
    """Pass 1: move the staged rows into ``buckets/<split>/<shard>/``, with their position as ``_pos``."""
    offset = 0
    for k in range(staged.files):
        table = pq.read_table(staged.path(k))
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
        staged.path(k).unlink()
    if staged.dir.exists():
        staged.dir.rmdir()


def _assemble(tmp: Path, buckets: Path, counts: dict[str, int], *, shard_rows: int, row_group_rows: int) -> list[dict]:
    """Pass 2: each output shard ``tmp/<split>/part-NNNNN.parquet`` from its bucket, rows in order;
    returns the ``shards`` record (path, rows, SHA-256)."""
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
    return shards


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
