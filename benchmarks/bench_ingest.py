"""Ingest throughput and peak memory (CSE JSON files and the HDF5 form).

The benchmark writes its own sources: intermetallic-like cells (bcc/fcc prototypes, 1–4 atoms,
random metals) as serialized ComputedStructureEntry JSON files (spectra 2001 × 4 with 5
significant digits, about 180 kB a file) and as an HDF5 release. Each ingest runs as a child
process (``lightning-dielectric data ingest``); the peak RSS of it and its workers together is
sampled every 20 ms. Running N and 2N files shows whether memory grows with the source size.
Run: ``python -m benchmarks.bench_ingest [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

SYMBOLS = ["Al", "Ti", "V", "Cr", "Fe", "Co", "Ni", "Cu", "Zn", "Nb", "Mo", "Pd", "Ag", "Sn", "Ta", "W", "Pt", "Au"]
Z = {"Al": 13, "Ti": 22, "V": 23, "Cr": 24, "Fe": 26, "Co": 27, "Ni": 28, "Cu": 29, "Zn": 30, "Nb": 41,
     "Mo": 42, "Pd": 46, "Ag": 47, "Sn": 50, "Ta": 73, "W": 74, "Pt": 78, "Au": 79}
PROTOTYPES = {"bcc": [[0, 0, 0], [0.5, 0.5, 0.5]], "fcc": [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]}
GRID = np.linspace(0.0, 20.0, 2001)


def _material(rng: np.random.Generator) -> tuple[np.ndarray, list[str], np.ndarray]:
    frac = np.array(PROTOTYPES[str(rng.choice(list(PROTOTYPES)))])
    a = (16.0 * len(frac)) ** (1 / 3)
    lattice = a * (np.eye(3) + rng.normal(0, 0.02, (3, 3)))
    return lattice, [str(s) for s in rng.choice(SYMBOLS, len(frac))], frac


def _spectrum(rng: np.random.Generator, offset: float) -> list:
    m = np.empty((len(GRID), 4))
    m[:, 0] = GRID
    m[:, 1:] = offset + 5.0 * np.exp(-((GRID[:, None] - rng.uniform(1, 8, 3)) ** 2) / 4.0)
    return [[float(f"{v:.5g}") for v in row] for row in m]


def write_cse_source(directory: Path, n: int, seed: int = 0) -> None:
    """n JSON files in the published ComputedStructureEntry form, 1,000 per sub-directory."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        lattice, species, frac = _material(rng)
        sites = [{"species": [{"element": s, "occu": 1}], "abc": f.tolist(), "xyz": (f @ lattice).tolist(),
                  "properties": {}, "label": s} for s, f in zip(species, frac)]
        entry = {
            "@module": "pymatgen.entries.computed_entries", "@class": "ComputedStructureEntry",
            "energy": -1.0, "correction": 0.0, "parameters": {},
            "structure": {"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0,
                          "lattice": {"matrix": lattice.tolist(), "pbc": [True] * 3}, "properties": {},
                          "sites": sites},
            "data": {"mat_id": f"bench-{i:07d}", "e_above_hull": float(rng.uniform(0, 0.1)),
                     "drude_freq": rng.uniform(1, 8, 3).tolist(),
                     "eps_inter_re": _spectrum(rng, 1.0), "eps_inter_im": _spectrum(rng, 0.0)},
        }
        sub = directory / f"{i // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"bench-{i:07d}.json").write_text(json.dumps(entry))


def write_h5_source(directory: Path, n: int, seed: int = 0) -> None:
    """The HDF5 release form: train/val/test.h5 holding 80/10/10 % of n materials."""
    import h5py

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    bounds = {"train": (0, int(0.8 * n)), "val": (int(0.8 * n), int(0.9 * n)), "test": (int(0.9 * n), n)}
    for split, (lo, hi) in bounds.items():
        with h5py.File(directory / f"{split}.h5", "w") as f:
            for i in range(lo, hi):
                lattice, species, frac = _material(rng)
                g = f.create_group(f"bench-{i:07d}")
                g["mat_id"] = f"bench-{i:07d}"
                g["e_above_hull"] = float(rng.uniform(0, 0.1))
                g["composition"] = "".join(species)
                g["lattice"] = lattice
                g["atomic_number"] = np.array([Z[s] for s in species])
                g["position"] = frac @ lattice
                g["drude"] = float(rng.uniform(1, 8))
                peak = rng.uniform(1, 8)
                g["eps"] = (1 + 5 * np.exp(-((GRID - peak) ** 2) / 4) + 3j * np.exp(-((GRID - peak) ** 2) / 4)).astype(
                    np.complex64
                )


def run_ingest(source: Path, out: Path, workers: int) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB of the ingest process tree, exit status)."""
    cmd = [sys.executable, "-m", "lightning_dielectric.cli", "data", "ingest", str(source), "--out", str(out),
           "--workers", str(workers), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    return time.perf_counter() - start, peak / 2**20, proc.returncode


def run(quick: bool = False) -> str:
    sizes = [200, 400] if quick else [1000, 2000]
    h5_sizes = [1000, 2000] if quick else [5000, 10000]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp = Path(tmp)
        sources = [("cse-json", n, write_cse_source, "*.json") for n in sizes]
        sources += [("h5", n, write_h5_source, "*") for n in h5_sizes]
        for fmt, n, write_source, pattern in sources:
            src = tmp / f"{fmt}-{n}"
            write_source(src, n)
            mb = sum(p.stat().st_size for p in src.rglob(pattern) if p.is_file()) / 2**20
            for workers in (1, 2):
                out = tmp / f"out-{fmt}-{n}-{workers}"
                wall, peak, rc = run_ingest(src, out, workers)
                rows.append((fmt, n, f"{mb:.0f} MiB", workers, wall, n / wall, peak, rc))
                shutil.rmtree(out)
            shutil.rmtree(src)
    lines = [
        "## Ingest (`lightning-dielectric data ingest`)",
        "",
        "Wall time of the whole command (interpreter start, parsing, validation, two-pass write) and the",
        "peak RSS of the command and its worker processes together" + (" (quick run)." if quick else "."),
        "",
        "| format | materials | source size | workers | wall s | materials/s | peak RSS MiB | exit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {f} | {n} | {size} | {w} | {wall:.1f} | {rate:.0f} | {peak:.0f} | {rc} |"
              for f, n, size, w, wall, rate, peak, rc in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ingest")
    parser.add_argument("--quick", action="store_true")
    print(run(quick=parser.parse_args().quick))
