"""Fused seed training, steady state: one training step (forward + backward of an MAE on both
outputs) of 3 fused members against one solo member's step, for both member computes.

For each family (2b-cgc, 2b-tc, 3b) and (w, batch) of ``bench_fused`` (16, 256), (64, 32),
(256, 32): one batch of ``bench_data`` random structures, 3 solo networks (seeds 0, 1, 2) fused
with ``models.members.fuse``; the solo step, the stacked step (the fused network) and the
sequential step (``member_by_member``) each timed as the best of ``steps`` after one warm-up, in
one process with 2 torch threads and glibc's thresholds raised as ``lightning fit`` raises them
(``training/allocator.py``). The figure is the fused step in units of one solo step: 3.00× costs
what three solo steps cost, below 3 is a gain. ``bench_fused`` measures whole runs, where start-up,
data and validation are shared too; this one shows what a long run approaches.

Run: ``python -m benchmarks.bench_fused_step [--quick]`` (the measurement runs in a child process,
so the allocator setting stays out of the other benchmarks).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time

import numpy as np

from benchmarks.bench_fused import CONFIGS, SHAPES

STEPS = 4


def measure(family: str, width: int, batch_size: int, steps: int) -> dict[str, float]:
    """Best-of-``steps`` seconds of the solo, stacked and sequential steps of one batch."""
    import torch
    from torch_geometric.data import Batch

    from benchmarks.bench_data import random_structure
    from lightning_dielectric.data.graphs import DEFAULT_CUTOFF, DEFAULT_THREEBODY_CUTOFF, build_graph
    from lightning_dielectric.models import build_model
    from lightning_dielectric.models.members import fuse, member_by_member

    rng = np.random.default_rng(1)
    graphs = []
    for _ in range(batch_size):
        lattice, z, pos = random_structure(rng)
        graphs.append(build_graph(lattice.astype(np.float32), z, pos.astype(np.float32), DEFAULT_CUTOFF,
                                  DEFAULT_THREEBODY_CUTOFF if family == "3b" else None))
    batch = Batch.from_data_list(graphs)
    solos = []
    for seed in range(3):
        torch.manual_seed(seed)
        solos.append(build_model(family, width))
    fused = fuse(solos)
    template = copy.deepcopy(solos[0]).to("meta")

    def best(forward) -> float:
        times = []
        for _ in range(steps + 1):  # the first is the warm-up
            start = time.perf_counter()
            sum(out.abs().mean() for out in forward()).backward()
            times.append(time.perf_counter() - start)
        return min(times[1:])

    return {"solo": best(lambda: solos[0](batch)), "stacked": best(lambda: fused(batch)),
            "sequential": best(lambda: member_by_member(fused, template, batch))}


def child(quick: bool) -> None:
    import torch

    from lightning_dielectric.training.allocator import reuse_freed_blocks

    torch.set_num_threads(2)
    reuse_freed_blocks()
    for family in CONFIGS:
        for width, batch in [(16, 16)] if quick else [(w, b) for w, b, _ in SHAPES]:
            row = measure(family, width, batch, 1 if quick else STEPS)
            print(json.dumps({"family": family, "width": width, "batch": batch, **row}), flush=True)


def run(quick: bool = False) -> str:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_fused_step", "--child"] + (["--quick"] if quick else []),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_fused_step child failed:\n{proc.stderr[-3000:]}")
    lines = ["## Fused seed training, steady state: one step of 3 members in units of one solo step", "",
             f"Forward + backward of one batch of random structures, CPU, 2 threads, best of {1 if quick else STEPS} "
             "steps after a warm-up; 3.00× is no gain over 3 solo steps.", "",
             "| family | w | batch | solo step, ms | stacked, ms | stacked / solo | sequential, ms | sequential / solo |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in map(json.loads, proc.stdout.splitlines()):
        solo, stacked, sequential = row["solo"], row["stacked"], row["sequential"]
        lines.append(f"| {row['family']} | {row['width']} | {row['batch']} | {solo * 1e3:.0f} | {stacked * 1e3:.0f} | "
                     f"{stacked / solo:.2f}× | {sequential * 1e3:.0f} | {sequential / solo:.2f}× |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fused_step")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.quick)
    else:
        print(run(quick=args.quick))
