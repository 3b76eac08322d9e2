"""GPU training throughput: cached vs streamed data, compiled vs eager, packed trials, sweep cost.

On one CUDA GPU, batch 256, bf16-mixed autocast (loss in float32, as ``DielectricModule``), AdamW
with clipping, on the ``bench_data`` random metal cells (≥ 20,000 structures):

1. 2B-CGC, 2B-TC and 3B at w = 16, 256, 1024 with the in-memory cache (data on the GPU): step
   time, structures/s, peak GPU memory, and the fraction of step time spent waiting for the next
   batch (the loader's ``next`` timed with the GPU synchronised before and after).
2. The same at w = 16 and 256 with the Parquet stream (``cache: off``, 8 DataLoader workers).
3. Compiled (``torch.compile(dynamic=True)``) vs eager at w = 256, cached.
4. 1, 2 and 4 packed trials at w = 16 (2B-CGC, cached): separate processes on the one GPU, the
   summed structures/s.
5. Fused seeds: 1 and 3 members in one network (``models.members``, stacked, per-member clipping
   as ``DielectricModule``) for each family at w = 16 and 256, cached: member-structures/s (one
   structure trained by K members counts K times; the packed trials' figure for one process per
   seed) and peak GPU memory.
6. An estimate of the GPU-hours of ``sweeps/paper.yaml``: for every grid point, epochs ×
   (D + validation rows) × seconds per structure, interpolated log-log in the parameter count
   between the measured widths of its family (validation costs ~1/3 of a training step).

Each measurement runs a fixed number of steps after warm-up steps, so the whole benchmark fits
in about 5 minutes. Run: ``make bench-gpu`` (``python -m benchmarks.run --only gpu``), which writes
the section with the machine's description (the GPU's name) into docs/benchmarks.md.
``python -m benchmarks.bench_gpu --device cpu --quick`` checks the script itself on a machine
without a GPU (the figures then mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_data import bench_dataset
from lightning_dielectric.data import DielectricDataModule
from lightning_dielectric.models import build_model, count_parameters
from lightning_dielectric.models.members import fuse
from lightning_dielectric.sweep.grid import expand
from lightning_dielectric.sweep.spec import load_spec
from lightning_dielectric.training.members import clip_per_member

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("2b-cgc", "2b-tc", "3b")
SECTION = "## GPU training throughput"


def measure(root: Path, family: str, width: int, cache: str, compiled: bool, device: str, steps: int,
            warmup: int, batch_size: int = 256, members: int = 1) -> dict:
    """One configuration: seconds per step, structures/s, peak memory (GB), data-wait fraction;
    ``members`` > 1: that many seeds fused (loss Σₖ lossₖ, clipping per member)."""
    networks = []
    for seed in range(members):
        torch.manual_seed(seed)
        networks.append(build_model(family, width))
    workers = 0 if cache == "memory" else min(8, os.cpu_count() or 1)
    model = (networks[0] if members == 1 else fuse(networks)).to(device)
    dm = DielectricDataModule(str(root), batch_size=batch_size, cache=cache, num_workers=workers, seed=0,
                              **model.graph_cutoffs)
    forward = torch.compile(model, dynamic=True) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    loader = dm.loader("train", torch.device(device))
    batches, epoch = iter(loader), 0
    wait = total = 0.0
    structures = 0
    for step in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            epoch += 1
            dm.set_epoch(epoch)
            batches = iter(loader)
            batch = next(batches)
        batch = batch.to(device, non_blocking=True)
        sync()
        t1 = time.perf_counter()
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
            eps, drude = forward(batch)
        # with members, eps (K, B, 2001, 2) and drude (K, B): K × the mean over members is Σₖ lossₖ
        loss = members * ((eps.float() - batch.eps).abs().mean() + (drude.float() - batch.drude).abs().mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if members == 1:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        else:
            clip_per_member(model.parameters(), 100.0, members)
        optimizer.step()
        sync()
        t2 = time.perf_counter()
        if step >= warmup:
            wait += t1 - t0
            total += t2 - t0
            structures += batch.num_graphs * members
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
    return {"s_per_step": total / steps, "structures_per_s": structures / total, "peak_gb": peak,
            "wait": wait / total, "s_per_structure": total / structures}


def packed(root: Path, k: int, device: str, steps: int, warmup: int, batch_size: int) -> float:
    """Summed structures/s of k simultaneous trial processes (2B-CGC, w = 16, cached)."""
    cmd = [sys.executable, "-m", "benchmarks.bench_gpu", "--worker", "--device", device, "--steps", str(steps),
           "--warmup", str(warmup), "--root", str(root), "--batch-size", str(batch_size)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    rates = [json.loads(p.communicate()[0].strip().splitlines()[-1])["structures_per_s"] for p in procs]
    return sum(rates)


def sweep_gpu_hours(per_structure: dict[tuple[str, int], float]) -> tuple[float, int]:
    """(GPU-hours, runs) of sweeps/paper.yaml from the measured seconds per training structure."""
    spec = load_spec(REPO / "sweeps" / "paper.yaml")
    hours = 0.0
    points = expand(spec)
    for point in points:
        measured = sorted((count_parameters(f, w), s) for (f, w), s in per_structure.items() if f == point.family)
        n, s = np.log([m[0] for m in measured]), np.log([m[1] for m in measured])
        seconds = float(np.exp(np.interp(np.log(point.num_parameters), n, s)))
        val_rows = point.train_size / 8  # the paper's 80/10/10 split: validation ≈ D / 8
        hours += point.epochs * (point.train_size + val_rows / 3) * seconds / 3600
    return hours, len(points)


def run(quick: bool = False, device: str = "cuda") -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        return f"{SECTION}\n\nNot measured: no CUDA GPU on this machine (`make bench-gpu` needs one).\n"
    steps, warmup, batch_size = (2, 1, 8) if quick else (20, 5, 256)
    root, _ = bench_dataset(2_000 if quick else 20_000)
    widths = (16, 32) if quick else (16, 256, 1024)
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU (script check only)"
    lines = [SECTION, "", f"GPU: **{name}**; batch {batch_size}, bf16-mixed, AdamW, clipping; {steps} timed steps after "
             f"{warmup} warm-up steps per row; `bench_data` random metal cells.", "",
             "| model | w | data | compiled | ms/step | structures/s | peak GPU memory | waiting for data |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    per_structure = {}

    def row(family, width, cache, compiled):
        r = measure(root, family, width, cache, compiled, device, steps, warmup, batch_size)
        lines.append(f"| {family} | {width} | {'cached' if cache == 'memory' else 'stream'} | "
                     f"{'yes' if compiled else 'no'} | {1e3 * r['s_per_step']:.1f} | {r['structures_per_s']:,.0f} | "
                     f"{r['peak_gb']:.2f} GB | {100 * r['wait']:.1f} % |")
        return r

    for family in FAMILIES:
        for width in widths:
            per_structure[(family, width)] = row(family, width, "memory", False)["s_per_structure"]
    for family in FAMILIES:
        for width in widths[:2]:
            row(family, width, "off", False)
    for family in FAMILIES:
        row(family, widths[1], "memory", True)
    lines += ["", "Packed trials (2B-CGC, w = 16, cached, separate processes on one GPU):", "",
              "| trials | summed structures/s |", "|---:|---:|"]
    for k in (1, 2) if quick else (1, 2, 4):
        lines.append(f"| {k} | {packed(root, k, device, steps, warmup, batch_size):,.0f} |")
    lines += ["", "Fused seeds (one process; stacked members, cached; member-structures/s counts each structure "
              "once per member, comparable to the packed trials' sum):", "",
              "| model | w | members | ms/step | member-structures/s | vs 1 member | peak GPU memory |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for family in FAMILIES:
        for width in widths[:2]:
            single = None
            for members in (1, 3):
                r = measure(root, family, width, "memory", False, device, steps, warmup, batch_size, members)
                single = single or r["structures_per_s"]
                lines.append(f"| {family} | {width} | {members} | {1e3 * r['s_per_step']:.1f} | "
                             f"{r['structures_per_s']:,.0f} | {r['structures_per_s'] / single:.2f}× | {r['peak_gb']:.2f} GB |")
    hours, runs = sweep_gpu_hours(per_structure)
    lines += ["", f"Estimated cost of `sweeps/paper.yaml` ({runs} runs) on this GPU, eager, cached, one trial "
              f"at a time: **{hours:,.0f} GPU-hours** (seconds per structure interpolated log-log in N "
              "between the measured widths; validation at 1/3 of a training step per structure)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu to check the script")
    parser.add_argument("--worker", action="store_true", help="internal: one packed trial, JSON on stdout")
    parser.add_argument("--root", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.root, "2b-cgc", 16, "memory", False, args.device, args.steps, args.warmup,
                                 args.batch_size)))
    else:
        torch.set_num_threads(min(8, os.cpu_count() or 1))
        print(run(quick=args.quick, device=args.device))
