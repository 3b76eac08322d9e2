"""Published training subsets: reading ``train_<D>.txt`` lists and choosing the training rows.

The paper publishes, next to ``train.txt``, lists ``train_<D>.txt`` (D = 2,500 … 160,000) of the
materials it trained on at training-set size D: ``random.Random(42).sample`` of its training
list, so they are random and not all nested. ``data ingest --split-files DIR`` stores them as
``ROOT/subsets/train_<D>.txt`` (recorded under ``train_subsets`` in ``dataset.json``);
:func:`train_rows` turns a stored list, or any file of mat_ids, into row positions.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .writer import read_metadata, shard_paths

SUBSET_FILE = re.compile(r"train_([1-9][0-9]*)\.txt")


def read_ids(path: str | Path) -> list[str]:
    """The mat_ids of a list file (one a line, blank lines skipped); a one-line error naming the
    file when it is unreadable, empty or lists a mat_id twice."""
    path = Path(path)
    try:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read mat_id list ({err.strerror})") from None
    if not ids:
        raise ValueError(f"{path}: lists no mat_ids")
    seen: set[str] = set()
    for mat_id in ids:
        if mat_id in seen:
            raise ValueError(f"{path}: mat_id {mat_id!r} is listed twice")
        seen.add(mat_id)
    return ids


def read_subset_files(directory: str | Path, split_of: dict[str, int]) -> dict[int, list[str]]:
    """Every ``train_<D>.txt`` in ``directory`` as D → mat_ids (in listed order).

    ``split_of`` is the split of every listed material (``read_split_files``); a list naming a
    material not in ``train.txt``, or holding other than D mat_ids, is a one-line error.
    """
    out = {}
    for path in sorted(Path(directory).iterdir()):
        match = SUBSET_FILE.fullmatch(path.name)
        if match is None:
            continue
        d, ids = int(match.group(1)), read_ids(path)
        outside = next((m for m in ids if split_of.get(m) != 0), None)
        if outside is not None:
            raise ValueError(f"{path}: mat_id {outside!r} is not in train.txt")
        if len(ids) != d:
            raise ValueError(f"{path}: lists {len(ids)} mat_ids, expected {d} (the D of its name)")
        out[d] = ids
    return out


def train_rows(root: str | Path, train_size: int | None, train_ids: str | None = None) -> np.ndarray | None:
    """Sorted 0-based positions, in stored order across the train shards, of the training rows to use.

    - ``train_ids`` given: the materials of that file (one mat_id a line); ``train_size``, if
      also given, must equal their number.
    - else a list stored for D = ``train_size`` (``ROOT/subsets/train_<D>.txt``): its materials.
    - else None: the caller uses the nested prefix of ``train_size`` rows (or all rows).

    Returns an int64 array of shape (number of materials,). A mat_id not in the training split
    is a one-line error naming the file.
    """
    if train_ids is not None:
        path = Path(train_ids)
        ids = read_ids(path)
        if train_size is not None and train_size != len(ids):
            raise ValueError(f"{path}: lists {len(ids)} mat_ids but train_size is {train_size}")
    else:
        if train_size is None:
            return None
        entry = read_metadata(root).get("train_subsets", {}).get(str(train_size))
        if entry is None:
            return None
        path = Path(root) / entry["path"]
        ids = read_ids(path)
    stored = [m for p in shard_paths(root, "train") for m in pq.read_table(p, columns=["mat_id"])["mat_id"].to_pylist()]
    position = {m: i for i, m in enumerate(stored)}
    unknown = [m for m in ids if m not in position]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ValueError(f"{path}: mat_id {unknown[0]!r}{more} is not in the training split of {root}")
    return np.sort(np.fromiter((position[m] for m in ids), dtype=np.int64, count=len(ids)))
