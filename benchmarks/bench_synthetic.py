"""Synthetic tight-binding generator throughput.

1. Cells of at most 4 atoms (target ≥ 20 structures/s on 2 cores): structures drawn as in the
   dataset, keeping those with ≤ 4 atoms, computed by 2 worker processes; the CPU time per
   structure is reported too (what 2 idle cores would give).
2. The dataset mix (1–8 atoms) through ``generate`` with 2 workers, including writing the
   final Parquet dataset; extrapolated to the 6000 structures of the default sweep data set
   (target < 10 min).

The load average is reported with the numbers: on a shared machine other processes take CPU.
Run: ``python -m benchmarks.bench_synthetic [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from lightning_dielectric.synthetic.generate import limit_blas_threads, generate, material
from lightning_dielectric.synthetic.prototypes import random_structure

WORKERS = 2


def _small_indices(seed: int, count: int) -> list[int]:
    """The first ``count`` dataset indices whose structure has at most 4 atoms."""
    out, i = [], 0
    while len(out) < count:
        if len(random_structure(np.random.default_rng([seed, i]))[1]) <= 4:
            out.append(i)
        i += 1
    return out


def _small(index: int) -> float:
    """Compute one structure; returns the CPU seconds it took in this worker."""
    start = time.process_time()
    material(0, index)
    return time.process_time() - start


def run(quick: bool = False) -> str:
    n_small = 40 if quick else 300
    n_mix = 100 if quick else 1000
    indices = _small_indices(0, n_small)
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("fork"), initializer=limit_blas_threads) as pool:
        list(pool.map(_small, indices[:WORKERS]))  # warm the workers (imports, element tables)
        start = time.perf_counter()
        cpu = sum(pool.map(_small, indices, chunksize=10))
        small_rate = n_small / (time.perf_counter() - start)
    small_cpu = cpu / n_small
    load_small = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        meta = generate(n_mix, 0, Path(tmp) / "ds", workers=WORKERS, chunk_size=50)
        mix_s = time.perf_counter() - start
    assert sum(meta["counts"].values()) == n_mix
    load_mix = os.getloadavg()[0]
    mix_rate = n_mix / mix_s
    return "\n".join(
        [
            "## Synthetic tight-binding generator",
            "",
            f"{WORKERS} worker processes, one BLAS thread each; {os.cpu_count()} logical cores on the machine.",
            "",
            "| measurement | structures | structures/s | target | 1-min load average |",
            "|---|---|---|---|---|",
            f"| cells ≤ 4 atoms (structure + optics) | {n_small} | {small_rate:.1f} | ≥ 20 | {load_small:.1f} |",
            f"| dataset mix 1–8 atoms, `generate` incl. writing | {n_mix} | {mix_rate:.1f} | — | {load_mix:.1f} |",
            "",
            f"Extrapolated time for the default 6000-structure data set: {6000 / mix_rate / 60:.1f} min "
            f"(target < 10 min); structures that fit 10 min at this rate: {int(600 * mix_rate)}.",
            "A load average above the core count means other processes shared the CPUs during the run.",
            f"CPU time per ≤ 4-atom structure: {small_cpu * 1e3:.0f} ms, i.e. {WORKERS / small_cpu:.0f} structures/s "
            f"on {WORKERS} otherwise idle cores.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_synthetic")
    parser.add_argument("--quick", action="store_true")
    print(run(quick=parser.parse_args().quick))
