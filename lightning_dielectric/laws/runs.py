"""The runs table (one row per trained model) and the fit series read from it.

Columns (as ``sweep export`` writes them): ``family, width, N, D, seed, val_loss, eps_loss,
drude_loss, epochs, wall_s, run_dir`` (+ optional test metrics) and an optional ``study``:

* ``study = "data"``  — the D line (varying D at one width; the paper's width 256),
* ``study = "width"`` — the N line (varying width, hence N, at one D; the paper's D = 20,000),
* ``study = "grid"``  — the full (N, D) grid.

The same (width, D) can appear in several studies with *different* runs (the paper's data line
at D = 20,000 is not its width line at width 256), so tables that mix studies should carry the
column. Without it the axes are inferred per family: the D line is every row at the most common
width, the N line every row at the most common D (ties: the median of the tied values), and the
grid is every row when the (width, D) cells form a complete product of ≥ 3 widths × ≥ 3 sizes.

``import_optimetal`` converts the paper's published JSON files (``scaling_results.json``: study →
family [→ variant] → size or width → runs; ``scaling_grid_results.json``: family → D → width →
runs) to this table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .fit import Points

REQUIRED = ("family", "width", "N", "D", "seed", "val_loss")
# The runs table, shared with ``sweep export``: ``study`` is "data" (D varies at fixed width),
# "width" (width varies at fixed D) or "grid"; N is the exact parameter count; losses are validation MAEs.
# Compute: ``flops`` training FLOPs (3 × forward per structure × structures seen), ``flops_per_structure``
# forward FLOPs, ``flops_estimated`` True when counted on stand-in structures rather than the run's own,
# ``device`` and ``device_hours`` (wall time × devices / 3600; NaN where unknown).
COLUMNS = (
    "study", "family", "width", "N", "D", "seed", "val_loss", "eps_loss", "drude_loss", "epochs", "wall_s", "run_dir",
    "flops", "flops_per_structure", "flops_estimated", "device", "device_hours",
)
STUDIES = ("data", "width", "grid")

# the paper's JSON names → the package's family names
OPTIMETAL_FAMILIES_1D = {"2b/variant1": "2b-cgc", "2b/variant2": "2b-tc", "3b": "3b", "optimate": "optimate"}
OPTIMETAL_FAMILIES_GRID = {"2b": "2b-tc", "3b": "3b"}


def read_runs(path: str | Path) -> pd.DataFrame:
    """Read a runs table (Parquet or CSV); checks the required columns and their values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such runs table")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix == ".csv":
            df = pd.read_csv(path)
        else:
            raise ValueError(f"{path}: unknown runs-table format {suffix!r} (use .parquet or .csv)")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read runs table ({err})") from err
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (have {', '.join(map(str, df.columns))})")
    for col in ("width", "N", "D", "val_loss"):
        values = pd.to_numeric(df[col], errors="coerce")
        if col != "val_loss" and (values.isna().any() or (values <= 0).any()):
            raise ValueError(f"{path}: column {col!r} needs positive numbers in every row")
        df[col] = values
    if "study" in df.columns:
        bad = sorted(set(df["study"].dropna().astype(str)) - set(STUDIES))
        if bad:
            raise ValueError(f"{path}: column 'study' has unknown value(s) {bad} (expected {list(STUDIES)})")
    df["family"] = df["family"].astype(str)
    return df


def write_runs(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as Parquet or CSV, chosen by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise ValueError(f"{path}: unknown runs-table format {suffix!r} (use .parquet or .csv)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# import of the paper's JSON


def _int_key(key: str, where: str) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: key {key!r} is not an integer size or width") from None


def _run_rows(runs, where: str, **fixed) -> list[dict]:
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{where}: expected a non-empty list of runs, got {type(runs).__name__}")
    rows = []
    for i, run in enumerate(runs):
        at = f"{where}[{i}]"
        if not isinstance(run, dict):
            raise ValueError(f"{at}: expected a run object, got {type(run).__name__}")
        for key in ("seed", "val_loss", "num_parameter"):
            if key not in run:
                raise ValueError(f"{at}: missing key {key!r}")
        try:
            loss = float(run["val_loss"])
            n_params = int(run["num_parameter"])
            seed = int(run["seed"])
            parts = {k: float(run.get(k, np.nan)) for k in ("eps_loss", "drude_loss")}
        except (TypeError, ValueError):
            raise ValueError(f"{at}: 'seed', 'val_loss', 'num_parameter', 'eps_loss' and 'drude_loss' "
                             "must be numbers") from None
        if not np.isfinite(loss) or n_params <= 0:
            raise ValueError(f"{at}: val_loss must be finite and num_parameter positive")
        rows.append({
            **fixed, "N": n_params, "seed": seed, "val_loss": loss,
            **parts, "epochs": np.nan, "wall_s": np.nan, "run_dir": str(run.get("study_dir", "")),
            "flops": np.nan, "flops_per_structure": np.nan, "flops_estimated": False, "device": "",
            "device_hours": np.nan,
        })
    return rows


def _leaf_groups(node, path: tuple[str, ...], where: str):
    """Yield (family path, {size: runs}) for nested dicts whose values are run lists."""
    if not isinstance(node, dict) or not node:
        raise ValueError(f"{where}: expected a non-empty object, got {type(node).__name__}")
    if all(isinstance(v, list) for v in node.values()):
        yield path, node
        return
    for key, child in node.items():
        if isinstance(child, list):
            raise ValueError(f"{where}/{key}: runs mixed with nested groups")
        yield from _leaf_groups(child, path + (key,), f"{where}/{key}")


def import_optimetal(paths, *, data_width: int = 256, width_d: int = 20000) -> pd.DataFrame:
    """The paper's published JSON file(s) → one runs table with a ``study`` column.

    ``data_width``: the width of the data line's models; ``width_d``: the training-set size of
    the width line (the JSON stores neither). Raises ValueError naming the file and key path of
    anything malformed.
    """
    rows: list[dict] = []
    for path in [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(doc, dict) or not doc:
            raise ValueError(f"{path}: expected a JSON object of studies or families")
        if set(doc) <= {"data", "parameter"}:
            for study, node in doc.items():
                for fam_path, groups in _leaf_groups(node, (), f"{path}:{study}"):
                    key = "/".join(fam_path)
                    family = OPTIMETAL_FAMILIES_1D.get(key, key.replace("/", "-"))
                    for size, runs in groups.items():
                        where = f"{path}:{study}/{key}/{size}"
                        value = _int_key(size, where)
                        if study == "data":
                            fixed = {"family": family, "study": "data", "width": data_width, "D": value}
                        else:
                            fixed = {"family": family, "study": "width", "width": value, "D": width_d}
                        rows += _run_rows(runs, where, **fixed)
        else:
            for fam, by_d in doc.items():
                family = OPTIMETAL_FAMILIES_GRID.get(fam, fam)
                if not isinstance(by_d, dict) or not by_d:
                    raise ValueError(f"{path}:{fam}: expected an object of training-set sizes")
                for d_key, by_w in by_d.items():
                    d_value = _int_key(d_key, f"{path}:{fam}/{d_key}")
                    if not isinstance(by_w, dict) or not by_w:
                        raise ValueError(f"{path}:{fam}/{d_key}: expected an object of widths")
                    for w_key, runs in by_w.items():
                        where = f"{path}:{fam}/{d_key}/{w_key}"
                        fixed = {"family": family, "study": "grid", "width": _int_key(w_key, where), "D": d_value}
                        rows += _run_rows(runs, where, **fixed)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.sort_values(["study", "family", "D", "width", "seed"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# series for the fits


@dataclass
class Series:
    """The points of one fit: ``axis`` "D", "N" or "ND"; ``fixed``: the held quantity
    (e.g. {"width": 256, "N": 8268707} for the D line, {"D": 20000} for the N line)."""

    family: str
    axis: str
    points: Points
    fixed: dict
    source: str  # "study column" or "inferred"


def _mode(values: pd.Series):
    counts = values.value_counts()
    tied = sorted(counts[counts == counts.max()].index)
    return tied[(len(tied) - 1) // 2]


def _points_1d(rows: pd.DataFrame, xcol: str) -> Points:
    groups = sorted(rows.groupby(xcol)["val_loss"], key=lambda g: g[0])
    return Points(np.array([float(k) for k, _ in groups]), [g.to_numpy(float) for _, g in groups])


def _points_2d(rows: pd.DataFrame) -> Points:
    groups = sorted(rows.groupby(["N", "D"])["val_loss"], key=lambda g: (g[0][1], g[0][0]))
    x = np.array([[float(n), float(d)] for (n, d), _ in groups]).T
    return Points(x, [g.to_numpy(float) for _, g in groups])


def series(df: pd.DataFrame) -> tuple[list[Series], list[str]]:
    """Every fit series of the table, per family, and notes (dropped rows, inferred axes)."""
    notes: list[str] = []
    bad = df["val_loss"].isna() | ~np.isfinite(df["val_loss"].astype(float))
    if bad.any():
        notes.append(f"{int(bad.sum())} run(s) without a finite val_loss ignored")
    df = df[~bad]
    out: list[Series] = []
    has_study = "study" in df.columns and bool(df["study"].notna().all())
    for family in sorted(df["family"].unique()):
        rows = df[df["family"] == family]
        if has_study:
            d_rows, n_rows, g_rows = (rows[rows["study"] == s] for s in STUDIES)
            source = "study column"
            if not d_rows.empty:
                d_rows = d_rows[d_rows["width"] == _mode(d_rows["width"])]
            if not n_rows.empty:
                n_rows = n_rows[n_rows["D"] == _mode(n_rows["D"])]
        else:
            source = "inferred"
            d_rows = rows[rows["width"] == _mode(rows["width"])]
            n_rows = rows[rows["D"] == _mode(rows["D"])]
            widths, sizes = rows["width"].nunique(), rows["D"].nunique()
            cells = rows.groupby(["width", "D"]).ngroups
            complete = widths >= 3 and sizes >= 3 and cells == widths * sizes
            g_rows = rows if complete else rows.iloc[:0]
        if d_rows["D"].nunique() >= 2:
            fixed = {"width": int(d_rows["width"].iloc[0])}
            if d_rows["N"].nunique() == 1:
                fixed["N"] = int(d_rows["N"].iloc[0])
            out.append(Series(family, "D", _points_1d(d_rows, "D"), fixed, source))
        if n_rows["N"].nunique() >= 2:
            out.append(Series(family, "N", _points_1d(n_rows, "N"), {"D": int(n_rows["D"].iloc[0])}, source))
        if g_rows["N"].nunique() >= 2 and g_rows["D"].nunique() >= 2:
            out.append(Series(family, "ND", _points_2d(g_rows), {}, source))
    if not has_study:
        notes.append("no 'study' column: D line = rows at the most common width, N line = rows at the most "
                     "common D, grid = all rows of a family whose (width, D) cells form a complete product")
    return out, notes
