"""Ensembles of checkpoints (e.g. the seeds of one sweep point): mean prediction, spread and its
calibration; ``lightning-dielectric evaluate --ckpt A B C --data ROOT``.

Conventions: members are stacked on axis 0; the ensemble prediction is the member mean, its
spread σ the member standard deviation with ``ddof = 1`` (the unbiased sample estimate; 0 for a
single member). Spectra ε_inter are dimensionless (shape (B, 2001, 2): Re, Im on the 0–20 eV
grid), ω_D in eV (shape (B,)). Calibration: the fraction of true values with
|true − mean| ≤ kσ for k = 1, 2 (a Gaussian spread that matches the error gives 0.683 and 0.954).
Metrics: MAE of the spectra over all values, MAE of ω_D (eV), and their sum (the validation loss
of ``DielectricModule`` with unit weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

SIGMAS = (1, 2)


def mean_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Member mean and standard deviation (ddof = 1; zeros for one member) over axis 0."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] < 2:
        return values.mean(axis=0), np.zeros(values.shape[1:])
    return values.mean(axis=0), values.std(axis=0, ddof=1)


def calibration(true: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> dict[str, float]:
    """Fraction of ``true`` values within ±1σ and ±2σ of ``mean`` (same shapes)."""
    err = np.abs(np.asarray(true, dtype=np.float64) - mean)
    return {f"within_{k}sigma": float(np.mean(err <= k * spread)) for k in SIGMAS}


def metrics(eps: np.ndarray, drude: np.ndarray, eps_true: np.ndarray, drude_true: np.ndarray) -> dict[str, float]:
    """``eps_mae``, ``drude_mae`` (eV) and ``loss`` (their sum) of one prediction."""
    eps_mae = float(np.mean(np.abs(eps - eps_true)))
    drude_mae = float(np.mean(np.abs(drude - drude_true)))
    return {"eps_mae": eps_mae, "drude_mae": drude_mae, "loss": eps_mae + drude_mae}


def load_members(ckpts: list[Path], device: str = "cpu") -> tuple[list, dict]:
    """The modules (eval mode) and the graph cutoffs their networks share (``graph_cutoffs``, Å);
    ValueError naming the checkpoint whose cutoffs differ from the first's."""
    from lightning_dielectric.training.predict import load_module

    modules, settings = [], None
    for ckpt in ckpts:
        try:
            module = load_module(ckpt, device)
            these = module.model.graph_cutoffs
        except Exception as err:  # torch and Lightning raise many types for unusable files
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ValueError(f"{ckpt}: cannot load checkpoint ({type(err).__name__}: {first})") from None
        if settings is not None and these != settings:
            raise ValueError(f"{ckpt}: graph cutoffs {these} differ from the first member's {settings}")
        settings = these
        modules.append(module.eval())
    return modules, settings


@torch.no_grad()
def predict_members(modules: list, batch) -> tuple[np.ndarray, np.ndarray]:
    """(eps (M, B, 2001, 2), drude (M, B)) of every member on one batch."""
    outs = [m(batch) for m in modules]
    eps = np.stack([e.float().cpu().numpy() for e, _ in outs])
    drude = np.stack([d.float().cpu().numpy() for _, d in outs])
    return eps, drude


def evaluate(modules: list, batches, device: str = "cpu") -> dict:
    """Members' and ensemble's metrics and the spread's calibration over ``batches`` (with targets)."""
    eps_m, drude_m, eps_t, drude_t = [], [], [], []
    for batch in batches:
        batch = batch.to(device)
        e, d = predict_members(modules, batch)
        eps_m.append(e)
        drude_m.append(d)
        eps_t.append(batch.eps.float().cpu().numpy())
        drude_t.append(batch.drude.float().cpu().numpy())
    eps, drude = np.concatenate(eps_m, axis=1), np.concatenate(drude_m, axis=1)
    eps_true, drude_true = np.concatenate(eps_t), np.concatenate(drude_t)
    eps_mean, eps_spread = mean_and_spread(eps)
    drude_mean, drude_spread = mean_and_spread(drude)
    members = [metrics(eps[i], drude[i], eps_true, drude_true) for i in range(len(modules))]
    return {
        "n_members": len(modules),
        "n_materials": int(len(drude_true)),
        "members": members,
        "members_mean": {k: float(np.mean([m[k] for m in members])) for k in members[0]},
        "ensemble": metrics(eps_mean, drude_mean, eps_true, drude_true),
        "calibration": {"eps": calibration(eps_true, eps_mean, eps_spread),
                        "drude": calibration(drude_true, drude_mean, drude_spread)},
        "mean_spread": {"eps": float(eps_spread.mean()), "drude_ev": float(drude_spread.mean())},
    }


def evaluate_groups(groups, data_root: str, split: str = "test", batch_size: int = 32, device: str = "cpu"):
    """:func:`evaluate` for every ensemble of ``groups`` (``sweep.export.ensemble_groups``): a
    table with the group's keys, ``n_members``, ``members_loss`` (mean over members),
    ``members_loss_std`` (ddof = 1), ``ensemble_loss`` and the ±1σ/±2σ calibration of ε and ω_D."""
    import pandas as pd

    from lightning_dielectric.data.datamodule import DielectricDataModule

    cache: dict[tuple, list] = {}
    rows = []
    for g in groups.itertuples():
        modules, settings = load_members([Path(c) for c in g.checkpoints], device)
        key = tuple(sorted(settings.items()))
        if key not in cache:
            cache[key] = list(DielectricDataModule(data_root, batch_size=batch_size, **settings).loader(split))
        result = evaluate(modules, cache[key], device)
        losses = [m["loss"] for m in result["members"]]
        cal = result["calibration"]
        rows.append({"family": g.family, "width": g.width, "N": g.N, "D": g.D, "n_members": len(modules),
                     "members_loss": float(np.mean(losses)), "members_loss_std": float(np.std(losses, ddof=1)),
                     "ensemble_loss": result["ensemble"]["loss"],
                     **{f"{q}_{k}": cal[q][k] for q in ("eps", "drude") for k in ("within_1sigma", "within_2sigma")}})
    return pd.DataFrame(rows)


def describe(result: dict) -> str:
    """The evaluation as a small text table."""
    lines = [f"{result['n_members']} members on {result['n_materials']} materials", "",
             f"{'':<14}{'eps MAE':>10}{'ω_D MAE (eV)':>14}{'loss':>10}"]
    rows = [(f"member {i + 1}", m) for i, m in enumerate(result["members"])]
    rows += [("members mean", result["members_mean"]), ("ensemble", result["ensemble"])]
    lines += [f"{name:<14}{m['eps_mae']:>10.4f}{m['drude_mae']:>14.4f}{m['loss']:>10.4f}" for name, m in rows]
    cal = result["calibration"]
    lines += ["", "calibration of the spread (fraction of true values within ±1σ / ±2σ; Gaussian: 0.683 / 0.954):",
              f"  ε_inter: {cal['eps']['within_1sigma']:.3f} / {cal['eps']['within_2sigma']:.3f}",
              f"  ω_D:     {cal['drude']['within_1sigma']:.3f} / {cal['drude']['within_2sigma']:.3f}"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lightning-dielectric evaluate",
                                     description="Test metrics of an ensemble of checkpoints, its members, and the "
                                                 "calibration of the ensemble spread.")
    parser.add_argument("--ckpt", required=True, nargs="+", type=Path, help="checkpoints of the members")
    parser.add_argument("--data", required=True, help="dataset root (dataset.json + split shards)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="split to evaluate, one of {%(choices)s} (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="structures per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    from lightning_dielectric.data.datamodule import DielectricDataModule

    try:
        modules, settings = load_members(args.ckpt, args.device)
        data = DielectricDataModule(args.data, batch_size=args.batch_size, **settings)
        result = evaluate(modules, data.loader(args.split, torch.device(args.device)), args.device)
    except (OSError, ValueError) as err:
        print(f"lightning-dielectric evaluate: error: {err}", file=sys.stderr)
        return 2
    result["checkpoints"] = [str(c) for c in args.ckpt]
    result["split"] = args.split
    print(describe(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0
