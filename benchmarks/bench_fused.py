"""Fused seed training: 3 seeds as one ``lightning fit --model.members 3`` against the same 3 seeds as
3 solo ``lightning fit`` runs one after another, end to end (process start-up, data, training,
validation, checkpoints), measured in one run.

For each family (2b-cgc, 2b-tc, 3b; the quick configs) and (w, batch) in (16, 256), (64, 32),
(256, 32) (512, 256 and 128 training structures, 2 epochs): the solo runs use seeds 0, 1, 2 with ``data.seed`` 0 (the order fused members share),
the fused run seed 0 with 3 members, evaluated stacked and, where that is the faster choice on
CPU (3B, and w = 256), also one member after another (``--model.member_compute sequential``); 2 torch threads; the same training rows of the ``bench_data``
random structures (split 90/10, :func:`fused_dataset`) and 64 validation structures per epoch. The figure is the wall time of the processes (best of
``rounds``, alternating solo and fused) and the peak resident memory of one fused process against
one solo process.

Run: ``python -m benchmarks.bench_fused [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.bench_data import random_tables
from lightning_dielectric.data.writer import write_dataset

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {"2b-cgc": "optimetal2b_cgc.yaml", "2b-tc": "optimetal2b_tc.yaml", "3b": "optimetal3b.yaml"}
SHAPES = ((16, 256, 512), (64, 32, 256), (256, 32, 128))  # (w, batch, training structures)
TARGETS = {16: 2.5, 64: 1.5, 256: 1.1}
SEEDS = 3


def computes(family: str, width: int) -> tuple[str, ...]:
    """The ``member_compute`` settings measured for a row."""
    return ("stacked", "sequential") if family == "3b" or width == 256 else ("stacked",)


def fused_dataset(n: int = 1200, seed: int = 0) -> Path:
    """The bench_data random structures split 90/10 into training and validation (cached under data/bench/)."""
    root = Path(os.environ.get("LD_BENCH_DIR", REPO / "data" / "bench")) / f"random-v1-{n}-seed{seed}-val10"
    if not (root / "dataset.json").is_file():
        write_dataset(random_tables(n, seed), root, seed=seed, fractions=(0.9, 0.1, 0.0), overwrite=True,
                      provenance={"source": "benchmarks.bench_data random intermetallic-like structures"})
    return root


def fit(family: str, width: int, batch: int, rows: int, epochs: int, root: Path, work: Path, seed: int,
        members: int, compute: str = "stacked") -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one ``lightning fit`` process."""
    out = work / f"{family}-w{width}-s{seed}-m{members}-{compute}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "lightning_dielectric", "fit", "--config", str(REPO / "configs" / "quick" / CONFIGS[family]),
           "--model.model.init_args.width", str(width), "--model.model.init_args.spectra_width", str(4 * width),
           "--model.members", str(members), "--model.member_compute", compute, "--seed_everything", str(seed), "--data.seed", "0",
           "--data.root", str(root), "--data.train_size", str(rows), "--data.batch_size", str(batch),
           "--trainer.max_epochs", str(epochs), "--trainer.limit_val_batches", str(max(1, 64 // batch)),
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
           "--model.plot_every_n_epochs", "0", "--trainer.logger.init_args.save_dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, handle = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, handle.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"lightning fit failed: {' '.join(cmd)}\n{proc.stderr.read()[-3000:]}")
    return wall, peak


def run(quick: bool = False) -> str:
    epochs, rounds = (1, 1) if quick else (2, 1)
    root = fused_dataset()
    work = Path(tempfile.mkdtemp(prefix="bench-fused-"))
    lines = ["## Fused seed training: 3 seeds in one process against 3 solo runs", "",
             f"`lightning fit` end to end (start-up included), quick configs at width w and the batch and number of "
             f"training structures shown, {epochs} epoch(s), validation of 64 structures (one batch at batch 256) "
             f"per epoch, CPU, 2 threads; "
             f"3 solo runs (seeds 0, 1, 2, data seed 0) one after another against one run with `--model.members 3`, "
             f"its members evaluated as one stacked network or one after another (`--model.member_compute`); "
             f"best of {rounds} round(s), alternating. Memory: peak RSS of the fused process against one solo process.", "",
             "| family | w | batch | structures | member compute | 3 solo runs, s | fused, s | speed-up | target | peak RSS fused / solo |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for family in CONFIGS:
        for width, batch, rows in SHAPES:
            rows = min(rows, 128) if quick else rows
            modes = computes(family, width)
            solo_s, fused_s, solo_rss, fused_rss = [], {m: [] for m in modes}, 0, dict.fromkeys(modes, 0)
            for _ in range(rounds):
                times = [fit(family, width, batch, rows, epochs, root, work, seed, 1) for seed in range(SEEDS)]
                solo_s.append(sum(t for t, _ in times))
                solo_rss = max(solo_rss, *(m for _, m in times))
                for mode in modes:
                    wall, peak = fit(family, width, batch, rows, epochs, root, work, 0, SEEDS, mode)
                    fused_s[mode].append(wall)
                    fused_rss[mode] = max(fused_rss[mode], peak)
            s = min(solo_s)
            for mode in modes:
                f, rss = min(fused_s[mode]), fused_rss[mode]
                lines.append(f"| {family} | {width} | {batch} | {rows} | {mode} | {s:.1f} | {f:.1f} | {s / f:.2f}× | "
                             f"≥ {TARGETS[width]}× | {rss / 2**20:.0f} / {solo_rss / 2**20:.0f} MiB ({rss / solo_rss:.2f}×) |")
                print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fused")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    print(run(quick=parser.parse_args().quick))
