"""``lightning-dielectric data ingest``: convert the published dataset to the Parquet format.

Sources (``sources.py``): directories of ComputedStructureEntry JSON files (``cse-json``) or the
HDF5 release (``h5``, whose train/val/test split is kept). Files are parsed and validated in a
process pool over small chunks; at most ``2 × workers`` chunks are in flight and results are
consumed in order, so memory does not grow with the number of files. Good records stream to
the dataset writer; bad ones (and duplicates of an already ingested ``mat_id``, and with
``--split-files`` materials listed in no split file) go to ``ROOT/quarantine.jsonl``, one JSON
object a line: ``{"source", "mat_id", "reason", "kind"}``.

Splits: ``--split-files DIR`` (``train.txt``, ``val.txt``, ``test.txt``, and any ``train_<D>.txt``
training subsets, stored with the dataset), else the HDF5 release's own split, else a formula
split of ``--split-method`` (``paper``, the default, or ``balanced``; see ``splits.py``).

Exit status: 0 when every record was written, 3 when some were quarantined, 2 on a usage error
(missing SOURCE, existing ROOT, unreadable split files).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..processes import default_workers, ordered_map
from .schema import SPLITS, records_to_table
from .sources import (
    detect_format,
    h5_files,
    h5_group_names,
    h5_split,
    iter_json_files,
    read_cse_file,
    read_h5_groups,
)
from .splits import SPLIT_METHODS, SplitRule, read_split_files
from .subsets import read_subset_files
from .validate import DUPLICATE, NOT_IN_SPLIT_FILES, BadRecord, check_record, reason_kind
from .writer import DatasetWriter

FORMATS = ("cse-json", "h5")
JSON_FILES_PER_TASK = 32
H5_GROUPS_PER_TASK = 128
WRITE_ROWS = 2048  # rows handed to the writer at a time
EXIT_OK, EXIT_USAGE, EXIT_QUARANTINED = 0, 2, 3


class IngestError(Exception):
    """A usage problem reported as one line (exit status 2)."""


@dataclass(frozen=True)
class IngestSummary:
    source: str
    format: str
    out: str
    records: int  # source records read, good and bad
    written: dict[str, int]  # rows per split
    quarantined: Counter  # kind -> records
    split_method: str
    missing_from_source: int  # mat_ids of the split files that the source does not hold
    subsets: dict  # dataset.json's train_subsets
    seconds: float

    @property
    def n_quarantined(self) -> int:
        return sum(self.quarantined.values())

    def text(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"ingested {sum(self.written.values())} of {self.records} records from {self.source} "
            f"({self.format}) in {self.seconds:.1f} s ({rate:.0f} records/s) into {self.out}",
            "  " + "  ".join(f"{s} {self.written.get(s, 0)}" for s in SPLITS) + f"  (split: {self.split_method})",
        ]
        if self.missing_from_source:
            lines.append(f"  note: {self.missing_from_source} mat_ids of the split files are not in the source")
        if self.subsets:
            lines.append("  training subsets: " + ", ".join(f"D = {d}" for d in self.subsets)
                         + f" -> {Path(self.out) / 'subsets'}")
        for d, entry in self.subsets.items():
            if entry["stored"] < entry["listed"]:
                lines.append(f"  note: train_{d}.txt: {entry['listed'] - entry['stored']} of {entry['listed']} "
                             "listed materials are not in the dataset (quarantined or not in the source)")
        if self.quarantined:
            lines.append(f"  quarantined {self.n_quarantined} records -> {Path(self.out) / 'quarantine.jsonl'}")
            width = max(map(len, self.quarantined))
            lines += [f"    {kind:<{width}}  {n}" for kind, n in sorted(self.quarantined.items())]
        else:
            lines.append("  nothing quarantined")
        return "\n".join(lines)


# ---------------------------------------------------------------- per-chunk work (in workers)


@lru_cache(maxsize=1 << 16)
def reduced_formula(counts: tuple[tuple[int, int], ...]) -> str:
    """pymatgen's reduced formula of a composition given as ((Z, count), …)."""
    from pymatgen.core import Composition, Element

    return Composition({Element.from_Z(z): n for z, n in counts}).reduced_formula


def to_row(rec: dict) -> dict:
    """Schema row of a validated raw record: Tr ε/3 over the given components, RMS Drude (eV)."""
    z = np.asarray(rec["atomic_numbers"], dtype=np.int64)
    elements, counts = np.unique(z, return_counts=True)
    row = {
        "mat_id": rec["mat_id"],
        "formula": reduced_formula(tuple(zip(elements.tolist(), counts.tolist()))),
        "e_above_hull": rec["e_above_hull"],
        "lattice": rec["lattice"],
        "atomic_numbers": z,
        "positions": rec["positions"],
        "drude": float(np.sqrt(np.mean(np.square(rec["drude"])))),
    }
    for key in ("eps_re", "eps_im"):
        eps = np.asarray(rec[key], dtype=np.float64)
        row[key] = eps.mean(axis=1) if eps.ndim == 2 else eps
    return row


def process_task(task: tuple) -> tuple[pa.Table | None, list[str], list[tuple], int]:
    """Parse and validate one chunk: (table of good rows or None, their sources, bad entries, units done).

    ``task`` is ``("cse", [paths])``, ``("h5", path, [group names], split)`` or
    ``("bad", source, reason, units)``; a bad entry is ``(source, mat_id or None, reason)``.
    """
    if task[0] == "bad":
        return None, [], [(task[1], None, task[2])], task[3]
    if task[0] == "cse":
        items = itertools.chain.from_iterable(read_cse_file(p) for p in task[1])
        units = len(task[1])
    else:
        items = read_h5_groups(task[1], task[2], task[3])
        units = len(task[2])
    rows, sources, bad = [], [], []
    for source, rec in items:
        reason = str(rec) if isinstance(rec, BadRecord) else check_record(rec)
        if reason is not None:
            mat_id = getattr(rec, "mat_id", None) if isinstance(rec, BadRecord) else rec["mat_id"]
            bad.append((source, mat_id, reason))
            continue
        rows.append(to_row(rec))
        sources.append(source)
        if "split" in rec:
            rows[-1]["split"] = rec["split"]
    if not rows:
        return None, [], bad, units
    table = records_to_table(rows)
    if "split" in rows[0]:
        table = table.append_column("split", pa.array([r["split"] for r in rows], pa.string()))
    return table, sources, bad, units


# ---------------------------------------------------------------- driver (main process)


def _tasks(source: Path, fmt: str) -> tuple[int, Iterator[tuple]]:
    """(progress total, lazy task iterator) for a source."""
    if fmt == "cse-json":
        total = sum(1 for _ in iter_json_files(source))
        paths = iter_json_files(source)
        return total, (("cse", chunk) for chunk in _batched(paths, JSON_FILES_PER_TASK))
    files = h5_files(source)
    splits = [h5_split(p) for p in files]
    if any(s is None for s in splits) and any(s is not None for s in splits):
        unknown = next(p for p, s in zip(files, splits) if s is None)
        raise IngestError(f"{unknown}: cannot tell its split (name HDF5 files train.h5, val.h5, test.h5)")
    import h5py

    total = 0
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                total += len(f)
        except OSError:
            total += 1

    def gen() -> Iterator[tuple]:
        for path, split in zip(files, splits):
            try:
                names = h5_group_names(path)
            except BadRecord as err:
                yield ("bad", str(path), str(err), 1)
                continue
            for chunk in _batched(iter(names), H5_GROUPS_PER_TASK):
                yield ("h5", str(path), chunk, split)

    return total, gen()


def _batched(it: Iterator, n: int) -> Iterator[list]:
    while chunk := list(itertools.islice(it, n)):
        yield chunk


class Quarantine:
    """Appends bad records to a JSON-lines file and counts them by kind."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "w", encoding="utf-8")
        self.counts: Counter = Counter()

    def add(self, source: str, mat_id: str | None, reason: str) -> None:
        kind = reason_kind(reason)
        self.counts[kind] += 1
        entry = {"source": source, "mat_id": mat_id, "reason": reason, "kind": kind}
        self.file.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class ReadCounts:
    """What :func:`_add_good_rows` saw: source records read (good and bad), and the mat_ids of the
    split files that the source does not hold (0 without split files)."""

    records: int
    missing_from_source: int


def _add_good_rows(results: Iterable, add: Callable[[pa.Table], None], quarantine: Quarantine,
                   split_of: dict | None, advance: Callable[[int], None]) -> ReadCounts:
    """Quarantine bad entries and later duplicates; ``add`` tables of about WRITE_ROWS good rows."""
    seen: set[str] = set()
    buffer: list[pa.Table] = []
    buffered = records = 0
    for table, sources, bad, units in results:
        advance(units)
        records += len(bad) + len(sources)
        for entry in bad:
            quarantine.add(*entry)
        if table is None:
            continue
        keep = np.ones(table.num_rows, dtype=bool)
        for k, mat_id in enumerate(table.column("mat_id").to_pylist()):
            if mat_id in seen:
                keep[k] = False
                quarantine.add(sources[k], mat_id, f"{DUPLICATE}: {mat_id} appeared earlier in the source")
            elif split_of is not None and mat_id not in split_of:
                keep[k] = False
                quarantine.add(sources[k], mat_id, f"{NOT_IN_SPLIT_FILES}: {mat_id}")
            else:
                seen.add(mat_id)
        buffer.append(table if keep.all() else table.filter(pa.array(keep)))
        buffered += int(keep.sum())
        if buffered >= WRITE_ROWS:
            add(pa.concat_tables(buffer))
            buffer, buffered = [], 0
    if buffer:
        add(pa.concat_tables(buffer))
    return ReadCounts(records, 0 if split_of is None else len(split_of) - len(seen))


def ingest(source: str | Path, out: str | Path, *, fmt: str | None = None, workers: int = 1, seed: int = 0,
           split_method: str = "paper", split_seed: int | None = None, split_files: str | Path | None = None,
           overwrite: bool = False, progress: bool = True) -> IngestSummary:
    """Convert ``source`` into a dataset at ``out`` (see the module docstring); raises ``IngestError``."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise IngestError(f"{source}: no such file or directory")
    if out.exists() and not overwrite:
        raise IngestError(f"{out}: already exists (pass --overwrite to replace it)")
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    try:
        rule = SplitRule.choose(split_method, split_seed, default_seed=seed)
        split_of = read_split_files(split_files) if split_files is not None else None
        subsets = read_subset_files(split_files, split_of) if split_files is not None else None
    except (OSError, ValueError) as err:
        raise IngestError(str(err)) from None
    total, tasks = _tasks(source, fmt)
    if total == 0:
        kind = "JSON (.json, .json.gz)" if fmt == "cse-json" else "HDF5 (.h5, .hdf5)"
        raise IngestError(f"{source}: no {kind} files found")

    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    quarantine = Quarantine(out.parent / f".{out.name}.quarantine-{os.getpid()}.jsonl")
    provenance = {"source": str(source.resolve()), "format": fmt, "split_files": None if split_files is None
                  else str(Path(split_files).resolve())}
    try:
        with progress_bar(total, enabled=progress) as advance, DatasetWriter(out, overwrite=overwrite) as writer:
            read = _add_good_rows(ordered_map(process_task, tasks, workers), writer.add, quarantine, split_of, advance)
            meta = writer.finish(seed=seed, rule=rule, split_of=split_of, subsets=subsets, provenance={
                **provenance, "records_read": read.records, "quarantined": dict(quarantine.counts)})
        quarantine.close()
        os.replace(quarantine.path, out / "quarantine.jsonl")
    finally:
        quarantine.close()
        quarantine.path.unlink(missing_ok=True)
    split = meta["split"]
    return IngestSummary(
        source=str(source), format=fmt, out=str(out), records=read.records, written=meta["counts"],
        quarantined=quarantine.counts, missing_from_source=read.missing_from_source, subsets=meta["train_subsets"],
        split_method=split["method"] + (f", seed {split['seed']}" if split["seed"] is not None else ""),
        seconds=time.perf_counter() - start)


@contextmanager
def progress_bar(total: int, enabled: bool, label: str = "ingest") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` for a rich progress bar named ``label`` on stderr (a no-op when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightning-dielectric data ingest",
        description="Convert the published dielectric dataset (ComputedStructureEntry JSON files or the "
        "HDF5 release) into a Parquet dataset. Exit status: 0 all records written, 3 some quarantined "
        "(see ROOT/quarantine.jsonl), 2 usage error.",
    )
    parser.add_argument("source", help="directory of JSON / JSON.gz files, an HDF5 file, or a directory of them")
    parser.add_argument("--out", required=True, help="dataset directory to create (must not exist)")
    parser.add_argument("--format", choices=FORMATS, help="source format, one of {%(choices)s} (default: detected)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="parsing processes (default: CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training order (and of the balanced split) (default: %(default)s)")
    parser.add_argument("--split-method", choices=SPLIT_METHODS, default="paper",
                        help="formula split when neither split files nor the source give one: paper (the paper's "
                        "algorithm) or balanced (cut by material counts) (default: %(default)s; {%(choices)s})")
    parser.add_argument("--split-seed", type=int, help="seed of the formula split (default: 42 for paper, --seed "
                        "for balanced)")
    parser.add_argument("--split-files", help="directory with train.txt, val.txt, test.txt (one mat_id a line) and "
                        "optionally train_<D>.txt training subsets, stored with the dataset")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        summary = ingest(args.source, args.out, fmt=args.format, workers=args.workers, seed=args.seed,
                         split_method=args.split_method, split_seed=args.split_seed, split_files=args.split_files,
                         overwrite=args.overwrite, progress=not args.quiet)
    except IngestError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(summary.text())
    return EXIT_QUARANTINED if summary.n_quarantined else EXIT_OK
