"""End-to-end ``lightning fit`` epochs against an earlier commit, measured in one run.

For each shipped paper config (``configs/optimetal2b_cgc.yaml``, ``optimetal2b_tc.yaml``,
``optimetal3b.yaml``; w = 256) at batch 32, ``lightning fit`` runs as its own process in this
checkout and in a ``git worktree`` of the baseline commit (``$LD_BENCH_BASELINE``, default
68e1f57, the main before the graph cache and the paired edge computations), alternating, on the
same training rows of the ``bench_data`` dataset, 2 torch threads, validation off, in three rounds
(baseline, this, baseline, this, …; one with ``--quick``). A callback records each training epoch's
wall time (data loading included); the figure is the fastest epoch after the first of any of a
tree's runs, so that a slow spell of a shared machine does not fall on one side only. This
checkout's graph cache is built before timing (a one-off per dataset, reported by ``bench_cache``).

Run: ``python -m benchmarks.bench_fit [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.bench_data import bench_dataset
from lightning_dielectric.data.graph_cache import open_graph_cache
from lightning_dielectric.models import build_model

REPO = Path(__file__).resolve().parent.parent
BASELINE = os.environ.get("LD_BENCH_BASELINE", "68e1f57")
FAMILIES = {"2b-cgc": ("optimetal2b_cgc.yaml", 1024), "2b-tc": ("optimetal2b_tc.yaml", 1024),
            "3b": ("optimetal3b.yaml", 192)}  # family: shipped config, training structures
TIMER = '''
import json, time
import pytorch_lightning as pl

class EpochTimer(pl.Callback):
    """Appends each training epoch's wall seconds to the JSON list at ``out``."""

    def __init__(self, out: str):
        self.out, self.times = out, []

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self.start)
        with open(self.out, "w") as f:
            json.dump(self.times, f)
'''


def baseline_tree(commit: str) -> Path:
    """A detached worktree of ``commit`` under data/bench/ (made once)."""
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = REPO / "data" / "bench" / f"baseline-{sha}"
    if not (tree / "lightning_dielectric").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=REPO, check=True,
                       capture_output=True)
    return tree


def epoch_times(tree: Path, config: str, root: Path, rows: int, epochs: int, work: Path) -> list[float]:
    """Training-epoch wall seconds of one ``lightning fit`` run of ``tree``'s code and config."""
    out = work / f"times-{os.getpid()}-{len(list(work.iterdir()))}.json"
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{work}", "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "lightning_dielectric", "fit", "--config", str(tree / "configs" / config),
           "--data.root", str(root), "--data.train_size", str(rows), "--data.batch_size", "32",
           "--trainer.max_epochs", str(epochs), "--trainer.limit_val_batches", "0",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
           "--trainer.logger.init_args.save_dir", str(work / "runs"), "--checkpoint.monitor", "null",
           "--model.plot_every_n_epochs", "0", "--trainer.callbacks+=ld_bench_timer.EpochTimer",
           "--trainer.callbacks.out", str(out)]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lightning fit failed in {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def run(quick: bool = False) -> str:
    epochs, rounds = (2, 1) if quick else (3, 3)
    root, _ = bench_dataset(20_000)
    old = baseline_tree(BASELINE)
    work = Path(tempfile.mkdtemp(prefix="bench-fit-"))
    (work / "ld_bench_timer.py").write_text(TIMER)
    lines = ["## End-to-end `lightning fit` against the baseline", "",
             f"Shipped paper configs at w = 256, batch 32, CPU, 2 threads, validation off; this checkout vs "
             f"`{BASELINE}` (git worktree), alternating in {rounds} round(s), same rows of the `bench_data` "
             f"dataset; fastest training epoch after the first of {epochs}, over a tree's runs (data loading "
             f"included). The last column gives the range of the rounds' own speed-ups (each round's fastest "
             f"epochs), a measure of this machine's run-to-run noise:", "",
             "| model | structures/epoch | baseline s/epoch | this s/epoch | speed-up | target | rounds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    targets = {"2b-cgc": 1.3, "2b-tc": 1.7, "3b": 1.2}
    for family, (config, rows) in FAMILIES.items():
        rows = rows // 4 if quick else rows
        with torch.device("meta"):  # the shipped configs use the family's default graph cutoffs
            cutoffs = build_model(family, 256).graph_cutoffs
        open_graph_cache(root, "train", **cutoffs, progress=False)
        pairs = [(min(epoch_times(old, config, root, rows, epochs, work)[1:]),
                  min(epoch_times(REPO, config, root, rows, epochs, work)[1:])) for _ in range(rounds)]
        base, new = min(b for b, _ in pairs), min(n for _, n in pairs)
        ratios = sorted(b / n for b, n in pairs)
        lines.append(f"| {family} | {rows} | {base:.2f} | {new:.2f} | {base / new:.2f}× | ≥ {targets[family]}× | "
                     f"{ratios[0]:.2f}–{ratios[-1]:.2f}× |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fit")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    print(run(quick=parser.parse_args().quick))
