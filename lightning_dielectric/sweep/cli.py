"""``lightning-dielectric sweep run | status | export | reset | prune | dashboard``.

Exit status: 0 success, 1 some points failed (run) or nothing to export, 2 a bad sweep file,
trial config or storage (one line naming the file and key, or the storage's host).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from lightning_dielectric.sweep.grid import fused_trials, trial_dir
from lightning_dielectric.sweep.retention import KEEP
from lightning_dielectric.sweep.spec import SweepSpec, SweepSpecError, load_spec

def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"lightning-dielectric sweep {prog}", description=description)
    p.add_argument("sweep", type=Path, help="sweep file (YAML), e.g. sweeps/quick.yaml")
    p.add_argument("--storage", help="Optuna storage: SQLAlchemy URL or journal:PATH (default: the file's, "
                                     "else sqlite:///OUT/optuna.db); leave the password out of the URL and "
                                     "put it in PGPASSWORD or ~/.pgpass (docs/sweeps.md)")
    p.add_argument("--out", type=Path, help="sweep run directory (default: the file's 'out')")
    return p


def _error(err: object) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def _load(args: argparse.Namespace) -> SweepSpec:
    spec = load_spec(args.sweep)
    changes = {k: v for k, v in {"storage": args.storage, "out": args.out}.items() if v is not None}
    if getattr(args, "data", None) is not None:
        changes["data_root"] = args.data
    if getattr(args, "keep_checkpoints", None) is not None:
        changes["keep_checkpoints"] = args.keep_checkpoints
    if getattr(args, "fuse_seeds", False):
        changes["fuse_seeds"] = True
    return spec.replace(**changes)


def _sweep_states(args: argparse.Namespace, check: bool = False):
    """(spec, grid points, their states in the storage) of the sweep named on the command line;
    ``check``: first parse the trial configs (:mod:`preflight`). A storage file that does not
    exist yet is not created: every point is pending."""
    from lightning_dielectric.sweep.grid import expand
    from lightning_dielectric.sweep.store import PointState, SweepStore, storage_exists

    spec = _load(args)
    points = expand(spec)
    if check:
        from lightning_dielectric.sweep.preflight import check_sweep

        check_sweep(spec, points)
    if not storage_exists(spec.storage_url):
        return spec, points, {p.key: PointState("pending") for p in points}
    return spec, points, SweepStore.for_spec(spec).states(points)


def run_main(argv: list[str]) -> int:
    p = _parser("run", "Run or resume a scaling sweep; export the runs table and fit the scaling laws.")
    p.add_argument("--workers", type=int, help="device groups (GPUs) / CPU trial slots of this driver "
                                              "(default: the file's 'workers')")
    p.add_argument("--trials-per-device", type=int, help="trials sharing each device group at once "
                                                          "(default: the file's 'trials_per_device')")
    p.add_argument("--data", type=Path, help="dataset root (default: the file's 'data_root')")
    p.add_argument("--no-report", action="store_true", help="skip export and scaling-law report at the end")
    p.add_argument("--keep-checkpoints", choices=KEEP,
                   help="what a completed trial keeps: all, best or best-weights (default: the file's 'keep_checkpoints', else all)")
    p.add_argument("--fuse-seeds", action="store_true",
                   help="train the seeds of each point together in one fused trial (default: the file's 'fuse_seeds')")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    from lightning_dielectric.sweep.store import StorageError, redact

    try:
        spec = _load(args)
    except SweepSpecError as err:
        return _error(err)
    if not spec.data_root.exists():
        return _error(f"{spec.source}: key 'data_root': dataset {str(spec.data_root)!r} does not exist")
    if args.trials_per_device is not None and args.trials_per_device < 1:
        p.error("--trials-per-device must be at least 1")

    from rich.console import Console

    from lightning_dielectric.sweep.driver import Driver
    from lightning_dielectric.sweep.preflight import check_sweep

    console = Console(stderr=True)
    log = console.log if console.is_terminal else _plain
    try:
        driver = Driver(spec, workers=args.workers, trials_per_device=args.trials_per_device, log=log)
        check_sweep(spec, driver.points)
        driver.open_store()  # an unreachable storage stops here, in one line
        log(f"[sweep] {spec.study_name}: {len(driver.points)} grid points, {driver.workers} workers x "
            f"{driver.trials_per_device} trials per device, storage {redact(spec.storage_url)}")
        threads = driver.start()
    except (ValueError, StorageError) as err:
        return _error(err)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # pre-emption by a scheduler: as Ctrl-C
    try:
        _watch(driver, threads, console)
    except KeyboardInterrupt:
        log("[sweep] interrupted: stopping trials (they resume from last.ckpt on the next run)")
        driver.stop.set()
        for t in threads:
            t.join()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    states = driver.open_store().states(driver.points)
    failed = [k for k, s in states.items() if s.status == "failed"]
    for key in failed:
        why = "configuration error" if states[key].config_error else f"{spec.max_retries + 1} attempts"
        log(f"[sweep] point failed ({why}): {key}")
    if failed:
        log(f"[sweep] after fixing the cause: lightning-dielectric sweep reset {spec.source} --failed, then run again")
    if not args.no_report:
        rc = _report(spec, driver.points, states, log)
        if rc:
            return rc
    return 1 if failed else 0


def _watch(driver, threads, console) -> None:
    """Show the sweep's progress until the driver's worker threads are all finished."""
    from rich.live import Live

    from lightning_dielectric.sweep.progress import LiveView

    store = driver.open_store()
    view = LiveView(driver.spec.study_name, driver.points, store.states(driver.points))
    if console.is_terminal:
        with Live(console=console, refresh_per_second=2) as live:
            while any(t.is_alive() for t in threads):
                live.update(view.render(store.states(driver.points), dict(driver.running)))
                time.sleep(1.0)
            live.update(view.render(store.states(driver.points), {}))
    else:
        last = 0.0
        while any(t.is_alive() for t in threads):
            if time.monotonic() - last > 60:
                _plain(view.line(store.states(driver.points), dict(driver.running)))
                last = time.monotonic()
            time.sleep(1.0)
        _plain(view.line(store.states(driver.points), {}))


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _plain(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _report(spec: SweepSpec, points, states, log) -> int:
    """Export the runs table, evaluate the seed ensembles and write the scaling-law report."""
    from lightning_dielectric.laws.pipeline import fit_report
    from lightning_dielectric.outputs import OutputDirError
    from lightning_dielectric.sweep.export import ensemble_groups, runs_table, write_runs

    table = runs_table(points, states)
    if table.empty:
        log("[sweep] no completed runs: nothing to export")
        return 1
    parquet, csv = write_runs(table, spec.out)
    log(f"[sweep] runs table: {parquet} and {csv} ({len(table)} rows)")
    ensembles = None
    groups = ensemble_groups(table)
    if not groups.empty:
        from lightning_dielectric.training.ensemble import evaluate_groups

        log(f"[sweep] evaluating {len(groups)} seed ensembles on the test split")
        try:
            ensembles = evaluate_groups(groups, str(spec.data_root))
            ensembles.to_csv(spec.out / "ensembles.csv", index=False)
        except (OSError, ValueError) as err:
            ensembles = None
            log(f"[sweep] seed ensembles not evaluated: {err}")
    report = spec.out / "report"
    log(f"[sweep] scaling-law report -> {report}")
    try:
        log(f"[sweep] {fit_report(parquet, report, ensembles=ensembles)}")
    except (OSError, ValueError, OutputDirError) as err:
        return _error(err)
    return 0


def status_main(argv: list[str]) -> int:
    p = _parser("status", "Done / running / failed / pending grid points per family, design and axis value.")
    args = p.parse_args(argv)
    from lightning_dielectric.sweep.store import StorageError, redact

    try:
        spec, points, states = _sweep_states(args, check=True)
    except (SweepSpecError, StorageError) as err:
        return _error(err)
    from collections import Counter

    from rich.console import Console

    from lightning_dielectric.sweep.dashboard import dashboard_command
    from lightning_dielectric.sweep.progress import counts_table

    c = Counter(s.status for s in states.values())
    console = Console()
    console.print(f"sweep {spec.study_name} ({redact(spec.storage_url)}): {len(points)} points: "
                  + ", ".join(f"{c[s]} {s}" for s in ("done", "running", "failed", "pending")))
    console.print(counts_table(points, states, per_axis=True))
    console.print(f"dashboard: {dashboard_command(str(args.sweep))} (pip install "
                  "'lightning-dielectric[dashboard]')", highlight=False, soft_wrap=True)
    if c["failed"]:
        console.print(f"{c['failed']} failed point(s): see their train.log; after fixing the cause, "
                      f"`lightning-dielectric sweep reset {args.sweep} --failed` makes them pending again",
                      highlight=False, soft_wrap=True)
    return 0


def reset_main(argv: list[str]) -> int:
    p = _parser("reset", "Make failed grid points pending again (their past failures stop counting), so "
                         "that the next 'sweep run' trains them; finished points are never touched.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="reset every failed point")
    which.add_argument("--point", action="append", metavar="KEY",
                       help="reset this point (as 'sweep status' and the log name it, e.g. 2b-cgc/w32/D4000/s0/e20); "
                            "repeatable")
    args = p.parse_args(argv)
    from lightning_dielectric.sweep.store import StorageError, SweepStore

    try:
        spec, points, states = _sweep_states(args)
        keys = [k for k, s in states.items() if s.status == "failed"] if args.failed else args.point
        unknown = [k for k in keys if k not in states]
        if unknown:
            raise SweepSpecError(f"{spec.source}: no grid point {unknown[0]!r} (see 'sweep status')")
        finished = [k for k in keys if states[k].status == "done"]
        if finished:
            raise SweepSpecError(f"{spec.source}: point {finished[0]!r} is done; reset only failed points")
        n = SweepStore.for_spec(spec).reset(keys) if keys else 0
    except (SweepSpecError, StorageError) as err:
        return _error(err)
    print(f"reset {n} point(s) of {spec.study_name}; 'sweep run {args.sweep}' trains them")
    return 0


def export_main(argv: list[str]) -> int:
    p = _parser("export", "Write the runs table (runs.parquet and runs.csv) of a sweep's completed runs and "
                "its seed ensembles (ensemble_groups.csv: the checkpoints of every point's seeds).")
    p.add_argument("--to", type=Path, help="output directory (default: the sweep's run directory)")
    args = p.parse_args(argv)
    from lightning_dielectric.sweep.store import StorageError

    try:
        spec, points, states = _sweep_states(args)
    except (SweepSpecError, StorageError) as err:
        return _error(err)
    from lightning_dielectric.sweep.export import ensemble_groups, runs_table, write_runs

    table = runs_table(points, states)
    parquet, csv = write_runs(table, args.to or spec.out)
    groups = ensemble_groups(table)
    groups.to_csv(parquet.parent / "ensemble_groups.csv", index=False)
    print(f"{len(table)} rows -> {parquet}, {csv}; {len(groups)} seed ensembles -> {parquet.parent / 'ensemble_groups.csv'}")
    return 0


def prune_main(argv: list[str]) -> int:
    p = _parser("prune", "Apply a checkpoint retention setting to the sweep's done points; running, failed and "
                         "pending points keep their files (they need last.ckpt to resume).")
    p.add_argument("--keep", required=True, choices=KEEP,
                   help="what each done run keeps: all, best or best-weights (docs/sweeps.md)")
    args = p.parse_args(argv)
    from lightning_dielectric.sweep import retention
    from lightning_dielectric.sweep.store import StorageError

    try:
        spec, points, states = _sweep_states(args)
    except (SweepSpecError, StorageError) as err:
        return _error(err)
    done = [p for p in points if states[p.key].status == "done"]
    # fused trials' own directories (their last.ckpt) where all of their seeds are done
    fused = [trial_dir(spec, t) for t in fused_trials(spec.replace(fuse_seeds=True), done) if len(t) > 1]
    try:
        freed = sum(retention.apply(p.run_dir(spec.out), args.keep) for p in done)
        freed += sum(retention.apply(d, args.keep) for d in fused if d.is_dir())
    except (OSError, RuntimeError, ValueError) as err:
        return _error(err)
    print(f"pruned {len(done)} done point(s) of {spec.study_name} to {args.keep}: freed {freed / 1e9:.3f} GB "
          f"({len(points) - len(done)} not done, untouched)")
    return 0


def dashboard_main(argv: list[str]) -> int:
    from lightning_dielectric.sweep.dashboard import DEFAULT_HOST, DEFAULT_PORT, serve
    from lightning_dielectric.sweep.store import StorageError, storage_exists

    p = _parser("dashboard", "Serve the sweep's Optuna storage (SQLite, journal or PostgreSQL) with optuna-dashboard; "
                             "each trial's page lists family, w, N, D, seed, val_loss, flops and device-hours.")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    args = p.parse_args(argv)
    try:
        spec = _load(args)
        if not storage_exists(spec.storage_url):
            raise SweepSpecError(f"{spec.source}: no storage yet at {spec.storage_url} (run the sweep first)")
        serve(spec.storage_url, args.host, args.port)
    except (SweepSpecError, StorageError, RuntimeError, OSError) as err:
        return _error(err)
    return 0
