"""The runs table of a sweep (``runs.parquet`` + ``runs.csv``), the input of ``laws fit``.

One row per completed run and design line: a point on both the data line and the width line
appears twice, once with ``study = "data"`` and once with ``study = "width"`` (``"grid"`` rows
form the full N × D grid), so a fit selects its axis with one filter. Columns:

- ``study``: ``data`` (D varies at fixed w), ``width`` (w varies at fixed D) or ``grid``;
- ``family``, ``width`` (hidden width w), ``N`` (parameters), ``D`` (training structures), ``seed``;
- ``val_loss`` (best validation loss = MAE of ε over 2001 × (Re, Im) + MAE of ω_D in eV),
  ``eps_loss``, ``drude_loss`` (at the best epoch);
- ``flops`` (training FLOPs = 3 × forward FLOPs per structure × structures seen),
  ``flops_per_structure`` (forward, measured on the run's own batches), ``flops_estimated``
  (False here: measured), ``device`` (``cpu`` / ``cuda:<model>``), ``device_hours``;
- ``delta_e``: the per-material mean CIE76 colour difference ΔE*ab (``training.optics.delta_e``)
  at the best epoch, NaN when the run recorded none;
- ``best_epoch``, ``epochs`` (epochs trained), ``wall_s`` (trial-process seconds over all
  attempts of the point), ``run_dir``, ``trial`` (Optuna trial number).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lightning_dielectric.laws.runs import COLUMNS as RUNS_COLUMNS
from lightning_dielectric.laws.runs import write_runs as write_table
from lightning_dielectric.sweep.grid import GridPoint
from lightning_dielectric.sweep.store import PointState

COLUMNS = RUNS_COLUMNS + ("delta_e", "best_epoch", "trial")


def runs_table(points: list[GridPoint], states: dict[str, PointState]) -> pd.DataFrame:
    """Rows for every done point of the sweep, ordered by study, family, width, D, seed."""
    rows = []
    for p in points:
        state = states[p.key]
        trial = state.result
        if trial is None:
            continue
        attrs = trial.user_attrs
        for design in p.designs:
            rows.append({
                "study": design,
                "family": p.family,
                "width": p.width,
                "N": int(attrs.get("num_parameters", p.num_parameters)),
                "D": p.train_size,
                "seed": p.seed,
                "val_loss": float(trial.value),
                "eps_loss": float(attrs.get("eps_loss", float("nan"))),
                "drude_loss": float(attrs.get("drude_loss", float("nan"))),
                "delta_e": float("nan") if attrs.get("delta_e") is None else float(attrs["delta_e"]),
                "best_epoch": int(attrs.get("best_epoch", -1)),
                "epochs": int(attrs.get("epochs_done", p.epochs)),
                "wall_s": state.wall_s,
                "run_dir": attrs.get("run_dir", ""),
                "flops": float(attrs.get("flops") or float("nan")),
                "flops_per_structure": float(attrs.get("flops_per_structure") or float("nan")),
                "flops_estimated": False,
                "device": attrs.get("device", ""),
                "device_hours": float(attrs.get("device_hours", float("nan"))),
                "trial": trial.number,
            })
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.sort_values(["study", "family", "width", "D", "seed"], ignore_index=True)


def write_runs(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    """Write ``out/runs.parquet`` and ``out/runs.csv``; returns both paths."""
    return write_table(table, out / "runs.parquet"), write_table(table, out / "runs.csv")


def checkpoint_of(run_dir: str | Path) -> Path | None:
    """The run's best checkpoint (``best-*.ckpt``, the latest if several), else ``last.ckpt``, else None."""
    folder = Path(run_dir) / "checkpoints"
    best = sorted(folder.glob("best-*.ckpt"))
    if best:
        return best[-1]
    last = folder / "last.ckpt"
    return last if last.is_file() else None


def ensemble_groups(table: pd.DataFrame) -> pd.DataFrame:
    """The seed ensembles of a runs table: one row per sweep point (family, width, D) with ≥ 2
    seeds whose checkpoints exist: ``family, width, N, D, seeds`` (list), ``checkpoints`` (list of
    paths), ``val_loss_mean``, ``val_loss_std`` (over seeds, ddof = 1). A point on two design
    lines is one run and counts once."""
    runs = table.drop_duplicates("run_dir")
    rows = []
    for (family, width, n, d), g in runs.groupby(["family", "width", "N", "D"]):
        ckpts = [checkpoint_of(r) for r in g["run_dir"]]
        keep = [i for i, c in enumerate(ckpts) if c is not None]
        if len(keep) < 2:
            continue
        g = g.iloc[keep]
        rows.append({"family": family, "width": int(width), "N": int(n), "D": int(d), "seeds": list(g["seed"]),
                     "checkpoints": [str(ckpts[i]) for i in keep], "val_loss_mean": float(g["val_loss"].mean()),
                     "val_loss_std": float(g["val_loss"].std(ddof=1))})
    return pd.DataFrame(rows, columns=["family", "width", "N", "D", "seeds", "checkpoints", "val_loss_mean",
                                       "val_loss_std"])
