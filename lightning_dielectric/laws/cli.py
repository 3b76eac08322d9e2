"""``lightning-dielectric laws fit | import-optimetal | plan``."""

from __future__ import annotations

import argparse
import json
import sys

from ..outputs import OutputDirError
from .forms import FORMS_1D, FORMS_2D


def _fail(prog: str, err: Exception) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 2


def fit_main(argv: list[str]) -> int:
    from .ensembles import read_ensembles
    from .pipeline import BOOTSTRAP, HOLDOUT, fit_report

    prog = "lightning-dielectric laws fit"
    ap = argparse.ArgumentParser(prog=prog, description="Fit 1D and 2D scaling laws to a runs table and write "
                                 "fits.json, report.md, LaTeX tables, plots and TensorBoard logs.")
    ap.add_argument("runs", help="runs table (.parquet or .csv) as 'sweep export' or 'laws import-optimetal' write it")
    ap.add_argument("--out", required=True, help="output directory: new, empty or an earlier 'laws fit' output, "
                                                 "which is replaced as a whole")
    ap.add_argument("--bootstrap", type=int, default=BOOTSTRAP,
                    help="bootstrap replicates over seeds for the intervals (0: none; default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    ap.add_argument("--forms-1d", nargs="+", choices=FORMS_1D, default=list(FORMS_1D), metavar="FORM",
                    help="laws fitted over D and over N, from {%(choices)s} (default: all)")
    ap.add_argument("--forms-2d", nargs="+", choices=FORMS_2D, default=list(FORMS_2D), metavar="FORM",
                    help="laws fitted over the (N, D) grid, from {%(choices)s} (default: all)")
    ap.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard event file")
    ap.add_argument("--holdout", type=int, default=HOLDOUT, metavar="K",
                    help="extrapolation check: refit every 1D form without the K largest points of its axis "
                         "(0: off; default: %(default)s)")
    ap.add_argument("--huber", action="store_true", help="also fit every form in log space with a Huber loss")
    ap.add_argument("--ensembles", help="ensembles table (as 'sweep run' writes ensembles.csv): compare single "
                    "models with their seed ensemble in the report")
    args = ap.parse_args(argv)
    if args.holdout < 0:
        return _fail(prog, ValueError(f"--holdout must be ≥ 0, got {args.holdout}"))
    try:
        ensembles = read_ensembles(args.ensembles) if args.ensembles else None
        print(fit_report(args.runs, args.out, bootstrap=args.bootstrap, seed=args.seed, forms_1d=args.forms_1d,
                         forms_2d=args.forms_2d, tensorboard=not args.no_tensorboard, holdout=args.holdout,
                         huber=args.huber, ensembles=ensembles))
    except (OSError, ValueError, OutputDirError) as err:
        return _fail(prog, err)
    return 0


def import_main(argv: list[str]) -> int:
    from .compute import PAPER_EPOCHS, estimate_flops
    from .runs import import_optimetal, write_runs

    prog = "lightning-dielectric laws import-optimetal"
    ap = argparse.ArgumentParser(prog=prog, description="Convert the paper's published per-run JSON "
                                 "(scaling_results.json, scaling_grid_results.json) to a runs table.")
    ap.add_argument("files", nargs="+", help="the paper's JSON file(s)")
    ap.add_argument("--out", required=True, help="runs table to write (.parquet or .csv)")
    ap.add_argument("--data-width", type=int, default=256,
                    help="hidden width of the data line's models (default: %(default)s, the paper's)")
    ap.add_argument("--width-d", type=int, default=20000,
                    help="training-set size D of the width line (default: %(default)s, the paper's)")
    ap.add_argument("--epochs", type=int, default=PAPER_EPOCHS,
                    help="training epochs of the paper's runs, for the estimated FLOPs (default: %(default)s)")
    ap.add_argument("--no-flops", action="store_true", help="leave the FLOP columns empty")
    args = ap.parse_args(argv)
    try:
        df = import_optimetal(args.files, data_width=args.data_width, width_d=args.width_d)
        if not args.no_flops:
            df = estimate_flops(df, args.epochs)
        path = write_runs(df, args.out)
    except (OSError, ValueError) as err:
        return _fail(prog, err)
    counts = df.groupby(["study", "family"]).size()
    print(f"{len(df)} runs → {path} (" + ", ".join(f"{s}/{f}: {c}" for (s, f), c in counts.items()) + ")")
    return 0


def plan_main(argv: list[str]) -> int:
    import numpy as np

    from .fit import fit_form
    from .frontier import compute_model, describe_compute, plan_compute
    from .pipeline import BOOTSTRAP
    from .plan import SEED_NOISE_NOTE, describe, plan_with_interval
    from .report import json_default, public
    from .runs import read_runs, series

    prog = "lightning-dielectric laws plan"
    ap = argparse.ArgumentParser(prog=prog, description="From the fitted 2D law of one family's (N, D) grid: the "
                                 "training structures (and, with FLOPs in the runs table, the least compute) needed "
                                 "for a target validation loss, and the least loss for a compute budget.")
    ap.add_argument("runs", help="runs table (.parquet or .csv) with a (N, D) grid for the family")
    ap.add_argument("--family", required=True,
                    help="model family as in the runs table's 'family' column, e.g. 2b-cgc, 2b-tc, 3b, magpie")
    ap.add_argument("--target-loss", type=float,
                    help="target validation loss (the runs table's val_loss units)")
    ap.add_argument("--compute", type=float,
                    help="compute budget in training FLOPs: the least loss reachable with it")
    ap.add_argument("--n", type=float, default=None,
                    help="parameter count N of the planned model (default: the N beyond which more parameters "
                         "stop paying, see --tol)")
    ap.add_argument("--form", choices=("auto",) + FORMS_2D, default="auto",
                    help="2D law, one of {%(choices)s} (default: auto, the lowest AICc)")
    ap.add_argument("--tol", type=float, default=0.01,
                    help="relative loss gain below which more parameters 'stop paying' (default: %(default)s)")
    ap.add_argument("--bootstrap", type=int, default=BOOTSTRAP,
                    help="bootstrap replicates for the interval (0: none; default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the answer as JSON")
    args = ap.parse_args(argv)
    if args.target_loss is None and args.compute is None:
        ap.error("give --target-loss, --compute or both")
    try:
        df = read_runs(args.runs)
        grids = {s.family: s for s in series(df)[0] if s.axis == "ND"}
        if args.family not in grids:
            raise ValueError(f"{args.runs}: no (N, D) grid for family {args.family!r} "
                             f"(families with a grid: {', '.join(sorted(grids)) or 'none'})")
        s = grids[args.family]
        forms = FORMS_2D if args.form == "auto" else (args.form,)
        fits = [fit_form(f, s.points, bootstrap=args.bootstrap, seed=args.seed) for f in forms]
        ok = [f for f in fits if f.status == "ok" and f.aicc is not None]
        if not ok:
            raise ValueError(f"no 2D law could be fitted for {args.family}: " + "; ".join(f.message for f in fits))
        best = min(ok, key=lambda f: f.aicc)
        answer = {} if args.target_loss is None else plan_with_interval(best, args.target_loss, args.n, args.tol)
        rows = df[df["family"] == args.family]
        has_flops = "flops" in rows and np.isfinite(rows["flops"].astype(float)).any()
        if args.compute is not None and not has_flops:
            raise ValueError(f"{args.runs}: --compute needs the 'flops' column for family {args.family!r}")
        if has_flops:
            answer["compute"] = plan_compute(best, compute_model(rows), args.target_loss, args.compute)
    except (OSError, ValueError) as err:
        return _fail(prog, err)
    if args.json:
        print(json.dumps(public([{"family": args.family, **answer}])[0], indent=1, default=json_default))
        return 0
    x = s.points.x
    lines = []
    if args.target_loss is not None:
        lines.append(describe(answer, args.family, d_range=(x[1].min(), x[1].max()), n_range=(x[0].min(), x[0].max())))
    else:
        lines.append(f"{args.family}, {best.form} law (AICc {best.aicc:.2f}):")
    if "compute" in answer:
        c = rows["flops"].astype(float)
        lines += describe_compute(answer["compute"], (float(c.min()), float(c.max())))
        if args.target_loss is None:
            lines.append(SEED_NOISE_NOTE)
    print("\n".join(lines))
    return 0
