"""Sweep driver overhead: storage operations per trial and the start-up time of a trial process.

The driver's own cost per trial is one claim (create + read), heartbeats, and the result write;
it should be negligible next to a trial's process start-up (imports of torch, Lightning, PyG),
which is the floor of every trial's wall time and what sizes the quick sweep.
``python -m benchmarks.bench_sweep`` prints the Markdown section.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _storage_ops(url: str, n: int) -> tuple[float, float]:
    """Mean seconds per claim and per complete over ``n`` points in a fresh study."""
    import uuid

    from lightning_dielectric.sweep.grid import GridPoint
    from lightning_dielectric.sweep.store import SweepStore

    store = SweepStore(url, f"bench-{uuid.uuid4().hex[:8]}", grace_period=60, max_retries=0)
    points = [GridPoint("2b-cgc", 16, 100 + i, 0, 1, ("data",)) for i in range(n)]
    t0 = time.perf_counter()
    ids = [store.claim(p, Path("bench-run")) for p in points]  # run_dir is only recorded
    t1 = time.perf_counter()
    for trial_id in ids:
        store.complete(trial_id, 1.0, {"wall_s": 1.0})
    t2 = time.perf_counter()
    if url.startswith("postgresql"):
        import optuna

        optuna.delete_study(study_name=store.study.study_name, storage=url)
    return (t1 - t0) / n, (t2 - t1) / n


def _startup_s(repeats: int) -> float:
    """Median wall seconds to start a trial process up to a built Lightning CLI (imports)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lightning_dielectric", "fit", "--help"], check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def run(quick: bool = False) -> str:
    n = 10 if quick else 50
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"SQLite": f"sqlite:///{tmp}/bench.db", "journal file": f"journal:{tmp}/bench.journal"}
        if os.environ.get("LD_TEST_POSTGRES_URL"):
            urls["PostgreSQL"] = os.environ["LD_TEST_POSTGRES_URL"]
        for name, url in urls.items():
            claim, complete = _storage_ops(url, n)
            rows.append(f"| {name} | {claim * 1e3:.1f} | {complete * 1e3:.1f} |")
    startup = _startup_s(1 if quick else 3)
    return "\n".join([
        "## Sweep driver overhead",
        "",
        f"Storage operations per trial, mean over {n} grid points in one study "
        "(claim = create the RUNNING trial and check the point's other trials; complete = write the "
        "result attributes and state):",
        "",
        "| storage | claim (ms) | complete (ms) |",
        "| --- | --- | --- |",
        *rows,
        "",
        f"Start-up of a trial process (`python -m lightning_dielectric fit --help`, median of "
        f"{1 if quick else 3}): **{startup:.1f} s** — the floor of every trial's wall time; the "
        "driver's storage work per trial is milliseconds next to it.",
    ])


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
