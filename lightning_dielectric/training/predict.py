"""``lightning-dielectric predict --ckpt CKPT [CKPT...] STRUCTURE... [--out DIR]``: ε_inter, ω_D and colour of crystals.

Reads each structure (CIF, POSCAR/CONTCAR/*.vasp or anything pymatgen's ``Structure.from_file``
knows), builds its periodic graph with the cutoffs the checkpoint was trained with, and writes to
``DIR`` (default ``predictions/``):

- ``predictions.parquet``: one row per structure: ``file``, ``formula``, ``drude_ev`` (ω_D, eV),
  ``colour_hex`` (sRGB of the metal's normal-incidence reflectance under D65, see ``optics.py``),
  ``eps_re``/``eps_im`` (2001 values each on the 0–20 eV grid; Re includes the vacuum 1);
- ``predictions.csv``: the same in long form, one row per structure and energy (``energy_ev``);
- ``<name>.png``: a plot per structure.

With several checkpoints (an ensemble, e.g. the seeds of one sweep point) the prediction is the
members' mean, and ``drude_std_ev``, ``eps_re_std``, ``eps_im_std`` (member standard deviation,
ddof = 1, per energy; see ``ensemble.py``) are added to both tables; the plots show a ±1σ band.

A file that cannot be read, is disordered or holds an element beyond Bi (Z > 83) gets a one-line
error naming it; the other files are still predicted and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch_geometric.data import Batch

from lightning_dielectric.data import build_graph
from lightning_dielectric.data.schema import ENERGY_GRID, MAX_Z
from lightning_dielectric.training.ensemble import load_members, mean_and_spread, predict_members
from lightning_dielectric.training.optics import srgb_hex
from lightning_dielectric.training.plots import prediction_figure


def graph_settings(ckpt_path: Path) -> dict[str, float | None]:
    """``cutoff``/``threebody_cutoff`` (Å) of the run: the checkpoint's datamodule hparams, else the
    run's ``config.yaml`` (``<log_dir>/config.yaml`` next to ``checkpoints/``), else the defaults."""
    settings: dict[str, float | None] = {"cutoff": 5.5, "threebody_cutoff": 4.0}
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    data = checkpoint.get("datamodule_hyper_parameters")
    config = ckpt_path.parent.parent / "config.yaml"
    if not data and config.is_file():
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
        data = data.get("init_args", data)
    settings.update({k: data[k] for k in settings if data and k in data})
    return settings


def read_structure(path: Path):
    """A pymatgen ``Structure``; ``ValueError`` with a short reason if unusable."""
    from pymatgen.core import Structure

    try:
        structure = Structure.from_file(str(path))
    except Exception as err:  # pymatgen raises many types for bad files
        raise ValueError(f"cannot read structure ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not structure.is_ordered:
        raise ValueError("disordered structure (partial occupancies) is not supported")
    too_heavy = sorted({site.specie.symbol for site in structure if site.specie.Z > MAX_Z})
    if too_heavy:
        raise ValueError(f"unsupported element(s) {', '.join(too_heavy)} (Z > {MAX_Z})")
    return structure


def _unique_names(paths: list[Path]) -> list[str]:
    names, seen = [], set()
    for path in paths:
        name, k = path.stem or path.name, 1
        while name in seen:
            k += 1
            name = f"{path.stem or path.name}-{k}"
        seen.add(name)
        names.append(name)
    return names


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lightning-dielectric predict", description="Predict ε_inter, ω_D and colour for CIF/POSCAR files."
    )
    parser.add_argument("--ckpt", required=True, type=Path, nargs="+",
                        help="checkpoint(s) from `lightning fit`; several: ensemble mean and spread (after the "
                             "first, values not ending in .ckpt count as structures)")
    parser.add_argument("structures", nargs="*", type=Path, help="CIF / POSCAR files")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    args.structures = [p for p in args.ckpt[1:] if p.suffix != ".ckpt"] + args.structures
    args.ckpt = args.ckpt[:1] + [p for p in args.ckpt[1:] if p.suffix == ".ckpt"]
    if not args.structures:
        parser.error("no structure files given")
    try:
        modules, settings = load_members(args.ckpt, args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    ok: list[tuple[Path, str, object]] = []
    failed = 0
    for path in args.structures:
        try:
            structure = read_structure(path)
            graph = build_graph(structure.lattice.matrix, np.array(structure.atomic_numbers), structure.cart_coords, **settings)
        except ValueError as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            failed += 1
            continue
        graph.mat_id = str(path)
        ok.append((path, structure.composition.reduced_formula, graph))

    rows, eps_all, drude_all = [], [], []
    for start in range(0, len(ok), args.batch_size):
        batch = Batch.from_data_list([g for _, _, g in ok[start : start + args.batch_size]]).to(args.device)
        eps, drude = predict_members(modules, batch)
        eps_all.append(eps)
        drude_all.append(drude)
    if ok:
        args.out.mkdir(parents=True, exist_ok=True)
        ensemble = len(modules) > 1
        eps, eps_std = mean_and_spread(np.concatenate(eps_all, axis=1))
        drude, drude_std = mean_and_spread(np.concatenate(drude_all, axis=1))
        colours = srgb_hex(torch.from_numpy(eps).float(), torch.from_numpy(drude).float())
        names = _unique_names([p for p, _, _ in ok])
        for i, ((path, formula, _), name) in enumerate(zip(ok, names)):
            row = {"file": str(path), "formula": formula, "drude_ev": float(drude[i]), "colour_hex": colours[i],
                   "eps_re": eps[i, :, 0], "eps_im": eps[i, :, 1]}
            if ensemble:
                row |= {"drude_std_ev": float(drude_std[i]), "eps_re_std": eps_std[i, :, 0], "eps_im_std": eps_std[i, :, 1]}
            rows.append(row)
            fig = prediction_figure(ENERGY_GRID, eps[i], float(drude[i]), colours[i], f"{formula} ({path.name})",
                                    spread=eps_std[i] if ensemble else None)
            fig.savefig(args.out / f"{name}.png", dpi=120)
        table = pd.DataFrame(rows)
        table.to_parquet(args.out / "predictions.parquet", index=False)
        spectra = [c for c in ("eps_re", "eps_im", "eps_re_std", "eps_im_std") if c in table]
        long = table.drop(columns=spectra).loc[np.repeat(np.arange(len(table)), len(ENERGY_GRID))]
        long["energy_ev"] = np.tile(ENERGY_GRID, len(table))
        for col in spectra:
            long[col] = np.concatenate(table[col].to_list())
        long.to_csv(args.out / "predictions.csv", index=False, float_format="%.6g")
        members = f" with an ensemble of {len(modules)}" if ensemble else ""
        print(f"predicted {len(ok)} structure(s){members} → {args.out}")
    return 1 if failed else 0
