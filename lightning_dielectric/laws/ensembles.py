"""The report's comparison of single models with their seed ensemble (``laws fit --ensembles``:
the table ``sweep run`` writes as ``ensembles.csv`` with ``training.ensemble.evaluate_groups``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ("family", "width", "N", "D", "n_members", "members_loss", "members_loss_std", "ensemble_loss",
           "eps_within_1sigma", "eps_within_2sigma", "drude_within_1sigma", "drude_within_2sigma")


def read_ensembles(path: str | Path) -> pd.DataFrame:
    """The ensembles table (CSV); ValueError naming the file and the missing columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ensembles table")
    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def ensemble_section(df: pd.DataFrame, split: str = "test") -> list[str]:
    """Markdown: per sweep point, the members' loss against the ensemble mean's, and calibration."""
    lines = ["## Single models against their seed ensemble", "",
             f"Loss on the {split} split (MAE of ε + MAE of ω_D in eV) of each member (mean ± std over seeds) and of "
             "the members' mean prediction; calibration = fraction of true values within ±1σ / ±2σ of the ensemble "
             "mean, σ the members' standard deviation (a Gaussian spread gives 0.683 / 0.954; with few members σ is "
             "a noisy estimate).", "",
             "| family | width | N | D | members | single model | ensemble | gain | ε in ±1σ / ±2σ | ω_D in ±1σ / ±2σ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.sort_values(["family", "width", "D"]).itertuples():
        gain = 1 - r.ensemble_loss / r.members_loss
        lines.append(f"| {r.family} | {r.width} | {r.N:,} | {r.D:,} | {r.n_members} | {r.members_loss:.4f} ± "
                     f"{r.members_loss_std:.4f} | {r.ensemble_loss:.4f} | {gain:+.1%} | {r.eps_within_1sigma:.2f} / "
                     f"{r.eps_within_2sigma:.2f} | {r.drude_within_1sigma:.2f} / {r.drude_within_2sigma:.2f} |")
    return lines + [""]
