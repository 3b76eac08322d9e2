"""``lightning-dielectric data synth``: generate the tight-binding synthetic dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.writer import DatasetExistsError
from .generate import finished_dataset, generate, generation_params, work_dir
from .optics import OpticsSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightning-dielectric data synth",
        description="Generate random intermetallic structures and their tight-binding ε_inter(ω) and ω_D "
        "as a dataset in the project's Parquet format. Deterministic in --seed; rerunning after an "
        "interruption finishes only the missing chunks.",
    )
    parser.add_argument("--n", type=int, default=6000, help="number of structures (default 6000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for structures and splits (default 0)")
    parser.add_argument("--out", default="data/synthetic", help="output dataset directory (default data/synthetic)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--chunk-size", type=int, default=100, help="structures per resumable chunk (default 100)")
    parser.add_argument("--k-spacing", type=float, default=OpticsSettings.k_spacing, help="Monkhorst–Pack spacing in Å⁻¹ incl. 2π (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    settings = OpticsSettings(k_spacing=args.k_spacing)
    try:
        done = finished_dataset(Path(args.out), generation_params(args.n, args.seed, args.chunk_size, settings))
    except DatasetExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if done is not None:
        print(f"{args.out} is complete: {done['counts']} (n={args.n}, seed={args.seed}); nothing to do")
        return 0

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=args.no_progress) as bar:
        task = bar.add_task("synth", total=args.n)
        try:
            meta = generate(
                args.n,
                args.seed,
                args.out,
                workers=args.workers,
                chunk_size=args.chunk_size,
                settings=settings,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        except (DatasetExistsError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    print(f"wrote {args.out}: {meta['counts']} (work dir {work_dir(Path(args.out))} removed)")
    return 0
