"""Per-material accuracy metrics of predicted spectra, their DDP-synced aggregation and tables.

Every metric is computed per material first (``per_material_metrics``), then summarised over the
materials by mean, median and population standard deviation (ddof 0), ignoring undefined values
(R² of a constant spectrum, SC of an all-zero spectrum).

Metrics (ε dimensionless, ω in eV; Re ε includes the vacuum 1, see ``data/schema.py``):

- ``mae_re``, ``mae_im``: mean |pred − true| over the 2001 energies.
- ``r2_re``, ``r2_im``: 1 − Σ(pred − true)² / Σ(true − mean(true))² over the energies.
- ``sc_re``, ``sc_im``: similarity coefficient 1 − ∫|pred − true| dω / ∫|true| dω (trapezoid rule on
  the uniform ``ENERGY_GRID``); 1 is perfect.
- ``drude_abs_err``: |Δω_D| in eV; ``drude_rel_err``: 100 |Δω_D| / ω_D in %.
- ``delta_e``: CIE76 ΔE*ab between the colours of the predicted and the true metal (``optics.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lightning_dielectric.data.schema import ENERGY_GRID
from lightning_dielectric.training.optics import delta_e

METRICS: dict[str, str] = {
    "mae_re": "MAE Re ε",
    "mae_im": "MAE Im ε",
    "r2_re": "R² Re ε",
    "r2_im": "R² Im ε",
    "sc_re": "SC Re ε",
    "sc_im": "SC Im ε",
    "drude_abs_err": "abs. error ω_D (eV)",
    "drude_rel_err": "rel. error ω_D (%)",
    "delta_e": "ΔE*ab (CIE76)",
}
STATS = ("mean", "median", "std")
ENERGY_STEP_EV = float(ENERGY_GRID[1] - ENERGY_GRID[0])  # the grid is uniform


def _nan_where(value: torch.Tensor, undefined: torch.Tensor) -> torch.Tensor:
    return torch.where(undefined, torch.full_like(value, float("nan")), value)


def per_material_metrics(
    pred_eps: torch.Tensor, pred_drude: torch.Tensor, true_eps: torch.Tensor, true_drude: torch.Tensor
) -> dict[str, torch.Tensor]:
    """All ``METRICS`` for a batch: spectra (B, 2001, 2) as (Re, Im), ω_D (B,) eV → dict of (B,) float64."""
    p, t = pred_eps.double(), true_eps.double()
    err = p - t
    out = {"mae_re": err[..., 0].abs().mean(1), "mae_im": err[..., 1].abs().mean(1)}
    ss_tot = (t - t.mean(1, keepdim=True)).pow(2).sum(1)
    r2 = 1 - err.pow(2).sum(1) / ss_tot.clamp_min(1e-300)
    norm = torch.trapezoid(t.abs(), dx=ENERGY_STEP_EV, dim=1)
    sc = 1 - torch.trapezoid(err.abs(), dx=ENERGY_STEP_EV, dim=1) / norm.clamp_min(1e-300)
    r2, sc = _nan_where(r2, ss_tot == 0), _nan_where(sc, norm == 0)
    out.update(r2_re=r2[:, 0], r2_im=r2[:, 1], sc_re=sc[:, 0], sc_im=sc[:, 1])
    pd, td = pred_drude.double(), true_drude.double()
    out["drude_abs_err"] = (pd - td).abs()
    out["drude_rel_err"] = _nan_where(100 * out["drude_abs_err"] / td.abs().clamp_min(1e-300), td == 0)
    out["delta_e"] = delta_e(p, pd, t, td)
    return out


def material_key(mat_id: str) -> int:
    """A stable 56-bit integer for a material id, so ranks can de-duplicate gathered values."""
    return int.from_bytes(hashlib.blake2b(mat_id.encode(), digest_size=7).digest(), "little")


def summarise(values: torch.Tensor) -> dict[str, float]:
    """Mean, median and population std of the defined (finite) entries of a (n,) tensor."""
    v = values[torch.isfinite(values)]
    if v.numel() == 0:
        return {s: float("nan") for s in STATS}
    return {"mean": v.mean().item(), "median": v.quantile(0.5).item(), "std": v.std(correction=0).item()}


class SpectralMetrics(Metric):
    """Accumulates per-material metrics (and ω_D pairs for parity plots) across batches and DDP ranks.

    States are per-material lists concatenated over ranks (``dist_reduce_fx="cat"``); materials
    seen twice (a distributed sampler pads the last batch with repeats) count once, identified by
    ``material_key(mat_id)``.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in (*METRICS, "key", "drude_pred", "drude_true"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        pred_eps: torch.Tensor,
        pred_drude: torch.Tensor,
        true_eps: torch.Tensor,
        true_drude: torch.Tensor,
        mat_ids: list[str],
    ) -> None:
        for name, value in per_material_metrics(pred_eps, pred_drude, true_eps, true_drude).items():
            getattr(self, name).append(value)
        self.key.append(torch.tensor([material_key(m) for m in mat_ids], dtype=torch.long, device=pred_eps.device))
        self.drude_pred.append(pred_drude.detach().double())
        self.drude_true.append(true_drude.detach().double())

    def compute(self) -> dict[str, torch.Tensor]:
        """Per-material values (n,) of every metric plus ``drude_pred``/``drude_true`` (eV), one entry per
        material, gathered from all ranks."""
        keys = dim_zero_cat(self.key)
        unique, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full_like(unique, keys.numel()).scatter_reduce(
            0, inverse, torch.arange(keys.numel(), device=keys.device), "amin"
        )
        return {name: dim_zero_cat(getattr(self, name))[first] for name in (*METRICS, "drude_pred", "drude_true")}


def summarise_metrics(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{"<metric>/<stat>": value}`` for every metric and stat, plus ``n_materials``."""
    out = {f"{name}/{stat}": v for name in METRICS for stat, v in summarise(values[name]).items()}
    out["n_materials"] = float(values["mae_re"].numel())
    return out


def markdown_table(summary: dict[str, float]) -> str:
    """Metric × (mean, median, std) table in GitHub Markdown."""
    lines = ["| metric | mean | median | std |", "|---|---:|---:|---:|"]
    for name, label in METRICS.items():
        lines.append(f"| {label} | " + " | ".join(f"{summary[f'{name}/{s}']:.4g}" for s in STATS) + " |")
    lines.append(f"\n{int(summary['n_materials'])} materials.")
    return "\n".join(lines) + "\n"


_LATEX_LABELS = {
    "mae_re": r"MAE $\mathrm{Re}\,\varepsilon$",
    "mae_im": r"MAE $\mathrm{Im}\,\varepsilon$",
    "r2_re": r"$R^2$ $\mathrm{Re}\,\varepsilon$",
    "r2_im": r"$R^2$ $\mathrm{Im}\,\varepsilon$",
    "sc_re": r"SC $\mathrm{Re}\,\varepsilon$",
    "sc_im": r"SC $\mathrm{Im}\,\varepsilon$",
    "drude_abs_err": r"$|\Delta\omega_D|$ (eV)",
    "drude_rel_err": r"$|\Delta\omega_D|/\omega_D$ (\%)",
    "delta_e": r"$\Delta E^*_{ab}$ (CIE76)",
}


def latex_table(summary: dict[str, float]) -> str:
    """The same table as a LaTeX ``tabular`` (booktabs)."""
    lines = [r"\begin{tabular}{lrrr}", r"\toprule", r"Metric & Mean & Median & Std \\", r"\midrule"]
    for name in METRICS:
        lines.append(_LATEX_LABELS[name] + " & " + " & ".join(f"{summary[f'{name}/{s}']:.4g}" for s in STATS) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"% {int(summary['n_materials'])} materials"]
    return "\n".join(lines) + "\n"


def write_tables(summary: dict[str, float], directory: str | Path, stem: str = "test_metrics") -> list[Path]:
    """Write ``<stem>.md``, ``<stem>.tex`` and ``<stem>.json`` (the raw summary) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{stem}.{ext}" for ext in ("md", "tex", "json")]
    paths[0].write_text(markdown_table(summary))
    paths[1].write_text(latex_table(summary))
    paths[2].write_text(json.dumps(summary, indent=2) + "\n")
    return paths
