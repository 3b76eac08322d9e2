"""``lightning-dielectric data info``: what a dataset holds, per split.

Statistics (streamed one Parquet row group at a time; only one scalar per material — atoms per
cell and ω_D — is kept, spectra are reduced to running sums):

- materials per split (training with ``--train-size D``: the stored ``train_<D>.txt`` list when
  the dataset has one, else the first D rows, the nested subset);
- elements present: number of materials containing each element;
- atoms per cell: histogram, min / median / mean / max;
- ω_D (RMS Drude frequency, eV): mean, standard deviation, quantiles;
- spectra: mean and standard deviation over materials of Re and Im of Tr ε_inter/3 at each
  energy of the 0–20 eV grid (Re includes the vacuum 1).

With ``--plots DIR``: an element-frequency periodic-table heat map and figures of the other
three (``plots.py``). ``--json FILE`` writes every number (spectra included) for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .schema import ENERGY_GRID, MAX_Z, N_ENERGIES, SPLITS, table_to_arrays
from .subsets import train_rows
from .writer import read_metadata, shard_paths

COLUMNS = ["atomic_numbers", "eps_re", "eps_im", "drude"]
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
REPORT_ENERGIES_EV = (1.0, 2.0, 5.0, 10.0)


class _Accumulator:
    """Running per-split statistics; ``add`` takes the arrays of one row group."""

    def __init__(self):
        self.n = 0
        self.element_materials = np.zeros(MAX_Z + 1, dtype=np.int64)
        self.natoms: list[np.ndarray] = []
        self.drude: list[np.ndarray] = []
        self.eps_sum = np.zeros((2, N_ENERGIES))
        self.eps_sq = np.zeros((2, N_ENERGIES))

    def add(self, arrays: dict) -> None:
        offsets = arrays["atom_offsets"]
        counts = np.diff(offsets)
        row = np.repeat(np.arange(len(counts)), counts)
        present = np.unique(row * (MAX_Z + 1) + arrays["atomic_numbers"].astype(np.int64)) % (MAX_Z + 1)
        self.element_materials += np.bincount(present, minlength=MAX_Z + 1)
        self.natoms.append(counts)
        self.drude.append(np.asarray(arrays["drude"], dtype=np.float64))
        for k, key in enumerate(("eps_re", "eps_im")):
            eps = np.asarray(arrays[key], dtype=np.float64)
            self.eps_sum[k] += eps.sum(axis=0)
            self.eps_sq[k] += np.square(eps).sum(axis=0)
        self.n += len(counts)

    def merge(self, other: _Accumulator) -> None:
        self.n += other.n
        self.element_materials += other.element_materials
        self.natoms += other.natoms
        self.drude += other.drude
        self.eps_sum += other.eps_sum
        self.eps_sq += other.eps_sq

    def result(self) -> dict:
        from pymatgen.core.periodic_table import Element

        natoms = np.concatenate(self.natoms) if self.natoms else np.zeros(0, np.int64)
        drude = np.concatenate(self.drude) if self.drude else np.zeros(0)
        n = max(self.n, 1)
        mean = self.eps_sum / n
        std = np.sqrt(np.maximum(self.eps_sq / n - mean**2, 0.0))
        sizes, size_counts = np.unique(natoms, return_counts=True)
        return {
            "materials": self.n,
            "elements": {Element.from_Z(z).symbol: int(c) for z, c in enumerate(self.element_materials) if c},
            "atoms_per_cell": {
                "min": int(natoms.min()) if self.n else None,
                "median": float(np.median(natoms)) if self.n else None,
                "mean": float(natoms.mean()) if self.n else None,
                "max": int(natoms.max()) if self.n else None,
                "histogram": {int(s): int(c) for s, c in zip(sizes, size_counts)},
            },
            "drude_ev": {
                "mean": float(drude.mean()) if self.n else None,
                "std": float(drude.std()) if self.n else None,
                "quantiles": {f"{q:g}": float(np.quantile(drude, q)) for q in QUANTILES} if self.n else {},
            },
            "spectra": {
                "energy_ev": ENERGY_GRID.tolist(),
                "eps_re_mean": mean[0].tolist(),
                "eps_re_std": std[0].tolist(),
                "eps_im_mean": mean[1].tolist(),
                "eps_im_std": std[1].tolist(),
            },
            "_drude_values": drude,
        }


def split_stats(
    root: str | Path, split: str, limit: int | None = None, rows: np.ndarray | None = None
) -> _Accumulator:
    """Accumulate one split, row group by row group: the first ``limit`` rows, or only the
    sorted stored positions ``rows`` (a listed training subset), or all."""
    acc = _Accumulator()
    start = 0  # stored position of the row group's first row
    for path in shard_paths(root, split):
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            if limit is not None and acc.n >= limit:
                return acc
            table = pf.read_row_group(g, columns=COLUMNS)
            if rows is not None:
                mine = rows[(rows >= start) & (rows < start + table.num_rows)] - start
                start += table.num_rows
                table = table.take(mine)
            elif limit is not None:
                table = table.slice(0, limit - acc.n)
            acc.add(table_to_arrays(table))
    return acc


def dataset_stats(root: str | Path, train_size: int | None = None) -> dict:
    """Statistics of every split and of all of them together (see the module docstring)."""
    meta = read_metadata(root)
    if train_size is not None and not 0 < train_size <= meta["counts"]["train"]:
        raise ValueError(f"--train-size {train_size}: {root} has {meta['counts']['train']} training rows")
    listed = train_rows(root, train_size)
    total = _Accumulator()
    splits = {}
    for split in SPLITS:
        train = split == "train"
        acc = split_stats(root, split, train_size if train and listed is None else None, listed if train else None)
        splits[split] = acc.result()
        total.merge(acc)
    return {
        "root": str(root),
        "train_size": train_size,
        "train_subset": None if train_size is None else f"subsets/train_{train_size}.txt" if listed is not None
        else "prefix",
        "split_method": meta["split"],
        "splits": splits,
        "all": total.result(),
    }


def summary_text(stats: dict) -> str:
    """A readable multi-line summary of ``dataset_stats``."""
    method = stats["split_method"]
    subset = f", training subset D = {stats['train_size']}: {stats['train_subset']}" if stats["train_size"] else ""
    seed = f", seed {method['seed']}" if method["seed"] is not None else ""
    lines = [f"dataset {stats['root']} (split: {method['method']}{seed}{subset})", ""]
    header = f"{'split':<6} {'materials':>9} {'elements':>8}  {'atoms/cell min/med/mean/max':<28} {'ω_D eV mean ± std [5%, 95%]'}"
    lines.append(header)
    for name, s in [*stats["splits"].items(), ("all", stats["all"])]:
        a, d = s["atoms_per_cell"], s["drude_ev"]
        if s["materials"]:
            cells = f"{a['min']}/{a['median']:g}/{a['mean']:.1f}/{a['max']}"
            drude = f"{d['mean']:.2f} ± {d['std']:.2f} [{d['quantiles']['0.05']:.2f}, {d['quantiles']['0.95']:.2f}]"
        else:
            cells, drude = "-", "-"
        lines.append(f"{name:<6} {s['materials']:>9} {len(s['elements']):>8}  {cells:<28} {drude}")
    elements = sorted(stats["all"]["elements"].items(), key=lambda kv: -kv[1])
    lines += ["", f"elements present ({len(elements)}), materials containing each:"]
    lines += ["  " + ", ".join(f"{el} {n}" for el, n in elements[i : i + 10]) for i in range(0, len(elements), 10)]
    spectra = stats["all"]["spectra"]
    lines += ["", "spectra over all materials, mean ± std of Tr ε_inter/3:"]
    for e in REPORT_ENERGIES_EV:
        k = int(np.argmin(np.abs(ENERGY_GRID - e)))
        lines.append(
            f"  {e:5.1f} eV: Re ε {spectra['eps_re_mean'][k]:8.3f} ± {spectra['eps_re_std'][k]:7.3f}"
            f"   Im ε {spectra['eps_im_mean'][k]:8.3f} ± {spectra['eps_im_std'][k]:7.3f}"
        )
    return "\n".join(lines)


def _jsonable(stats: dict) -> dict:
    """``stats`` without the raw per-material arrays (keys starting with "_")."""
    return {k: _jsonable(v) if isinstance(v, dict) else v for k, v in stats.items() if not str(k).startswith("_")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightning-dielectric data info",
        description="Counts per split, elements, atoms per cell, Drude frequencies and spectra of a dataset.",
    )
    parser.add_argument("root", help="dataset directory (holding dataset.json)")
    parser.add_argument("--plots", help="directory to write PNG figures into")
    parser.add_argument("--train-size", type=int, help="describe the training subset of size D (the stored "
                        "train_<D>.txt list, else the first D rows)")
    parser.add_argument("--json", help="write all statistics (spectra included) to this JSON file")
    args = parser.parse_args(argv)
    try:
        stats = dataset_stats(args.root, args.train_size)
    except (FileNotFoundError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(summary_text(stats))
    if args.json:
        Path(args.json).write_text(json.dumps(_jsonable(stats)))
    if args.plots:
        from .plots import write_plots

        for path in write_plots(stats, args.plots):
            print(f"wrote {path}")
    return 0
