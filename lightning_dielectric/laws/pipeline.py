"""``laws fit`` as one function: a runs table in, fits and the report directory out (the command
``lightning-dielectric laws fit`` and ``sweep run`` both call :func:`fit_report`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..outputs import check_output_dir, replaced_dir
from .fit import fit_series
from .forms import FORMS_1D, FORMS_2D
from .frontier import family_frontiers
from .holdout import holdout_fits
from .report import write_report
from .robust import robust_fits
from .runs import read_runs, series

REPORT_MARKER = "fits.json"  # every earlier output of laws fit has it
BOOTSTRAP = 200  # replicates over seeds for the intervals
HOLDOUT = 1  # largest points per axis left out in the extrapolation check


def fit_report(runs: str | Path, out: str | Path, *, bootstrap: int = BOOTSTRAP, seed: int = 0,
               forms_1d: Sequence[str] = FORMS_1D, forms_2d: Sequence[str] = FORMS_2D, tensorboard: bool = True,
               holdout: int = HOLDOUT, huber: bool = False, ensembles: pd.DataFrame | None = None) -> str:
    """Fit the ``forms_1d`` over D and N and the ``forms_2d`` over the (N, D) grid of every family
    in the runs table ``runs`` and write the report into ``out`` (new, empty or an earlier report,
    replaced as a whole). ``bootstrap`` replicates (0: none, seeded by ``seed``) give the
    intervals; ``holdout`` > 0 refits each 1D form without that many largest points; ``huber``
    adds robust log-space fits; ``ensembles`` (``laws.ensembles`` table) adds the comparison of
    single models with their seed ensemble. Returns a one-line summary; raises OSError,
    ValueError or ``OutputDirError`` naming the file."""
    out = Path(out)
    check_output_dir(out, REPORT_MARKER)
    df = read_runs(runs)
    all_series, notes = series(df)
    if not all_series:
        raise ValueError(f"{runs}: no family has ≥ 2 distinct D or N values to fit")
    records = fit_series(all_series, forms_1d=forms_1d, forms_2d=forms_2d, bootstrap=bootstrap, seed=seed)
    with replaced_dir(out, REPORT_MARKER) as tmp:
        write_report(tmp, records, all_series, source=str(runs), n_runs=len(df), notes=notes,
                     tensorboard=tensorboard, runs=df,
                     holdout=holdout_fits(all_series, holdout, forms_1d) if holdout else None, holdout_k=holdout,
                     frontiers=family_frontiers(df, records, bootstrap, seed),
                     robust=robust_fits(records, all_series) if huber else None, ensembles=ensembles)
    failed = sum(r["status"] != "ok" for r in records)
    return f"{len(records)} fits ({failed} failed) over {len(all_series)} series → {out / 'report.md'}"
