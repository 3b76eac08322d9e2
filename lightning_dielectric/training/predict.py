"""``lightning-dielectric predict --ckpt CKPT [CKPT...] STRUCTURE... [--out DIR]``: ε_inter, ω_D and colour of crystals.

Reads each structure (CIF, POSCAR/CONTCAR/*.vasp or anything pymatgen's ``Structure.from_file``
knows), builds its periodic graph with the cutoffs the checkpoint's network reads
(``graph_cutoffs``), and writes to ``DIR`` (default ``predictions/``):

- ``predictions.parquet``: one row per structure: ``file``, ``formula``, ``drude_ev`` (ω_D, eV),
  ``colour_hex`` (sRGB of the metal's normal-incidence reflectance under D65, see ``optics.py``),
  ``eps_re``/``eps_im`` (2001 values each on the 0–20 eV grid; Re includes the vacuum 1);
- ``predictions.csv``: the same in long form, one row per structure and energy (``energy_ev``);
- ``<name>.png``: a plot per structure.

With several checkpoints (an ensemble, e.g. the seeds of one sweep point) the prediction is the
members' mean, and ``drude_std_ev``, ``eps_re_std``, ``eps_im_std`` (member standard deviation,
ddof = 1, per energy; see ``ensemble.py``) are added to both tables; the plots show a ±1σ band.

A file that cannot be read, is disordered or holds an element beyond Bi (Z > 83) gets a one-line
error naming it and saying what is wrong; the other files are still predicted and the exit status
is 1. ``DIR`` must be new, empty or an earlier ``predict`` output, which is replaced as a whole.

Checkpoints are read with ``torch.load(weights_only=True)`` (no pickled code runs) and only
rebuild this package's model classes; a checkpoint from someone else is still an input to trust
(see docs/training.md).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch

from lightning_dielectric.data import build_graph
from lightning_dielectric.data.schema import ENERGY_GRID, MAX_Z
from lightning_dielectric.outputs import OutputDirError, check_output_dir, replaced_dir
from lightning_dielectric.training.ensemble import load_members, mean_and_spread, predict_members
from lightning_dielectric.training.module import DielectricModule
from lightning_dielectric.training.optics import srgb_hex
from lightning_dielectric.training.plots import prediction_figure
from lightning_dielectric.training.structure_errors import check_cell, describe_unreadable

OWN_MARKER = "predictions.parquet"  # every earlier output of predict has it


def read_checkpoint(ckpt_path: Path) -> dict:
    """The checkpoint's contents, read without unpickling code (``weights_only=True``)."""
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)


def network_config(checkpoint: dict) -> dict | None:
    """The checkpoint's network ``{class_path, init_args}`` (None if it stores none); the class must be
    one of ``lightning_dielectric.models`` (a checkpoint's hyperparameters name the class that gets
    imported and called). A checkpoint from before the networks owned their graph cutoffs (OptiMetal3B
    had no ``threebody_cutoff``) gets the one its DataModule used."""
    model = (checkpoint.get("hyper_parameters") or {}).get("model")
    if not isinstance(model, dict):
        return None
    class_path = str(model.get("class_path", ""))
    if not class_path.startswith("lightning_dielectric.models."):
        raise ValueError(f"model class {class_path!r} is not one of lightning_dielectric.models; not importing it")
    module_name, _, name = class_path.rpartition(".")
    accepted = inspect.signature(getattr(importlib.import_module(module_name), name)).parameters
    init_args = dict(model.get("init_args") or {})
    trained = (checkpoint.get("datamodule_hyper_parameters") or {}).get("threebody_cutoff")
    if "threebody_cutoff" in accepted and "threebody_cutoff" not in init_args and trained is not None:
        init_args["threebody_cutoff"] = trained
    return {"class_path": class_path, "init_args": init_args}


def load_module(ckpt_path: Path, device: str) -> DielectricModule:
    """The checkpoint's module, loaded without unpickling code (``weights_only=True``), its network
    rebuilt from ``network_config``; the graphs to build for it are ``module.model.graph_cutoffs``.
    ValueError if the network reads other graphs than it was trained on (a run from before the
    network owned its graph cutoffs)."""
    checkpoint = read_checkpoint(ckpt_path)
    config = network_config(checkpoint)
    kwargs = {"model": config} if config else {}
    module = DielectricModule.load_from_checkpoint(ckpt_path, map_location=device, weights_only=True, **kwargs)
    trained = checkpoint.get("datamodule_hyper_parameters") or {}
    wrong = [f"{key}={value} Å but it was trained on data.{key}={trained[key]} Å"
             for key, value in module.model.graph_cutoffs.items()
             if value is not None and trained.get(key, value) != value]
    if wrong:
        raise ValueError(f"its network reads graphs with {'; '.join(wrong)} (a run from before the network owned "
                         "its graph); retrain it")
    return module


def read_structure(path: Path):
    """A pymatgen ``Structure``; ``ValueError`` with a short reason if unusable."""
    from pymatgen.core import Structure

    try:
        structure = Structure.from_file(str(path))
    except Exception as err:  # pymatgen raises many types for bad files
        raise ValueError(describe_unreadable(path, err)) from None
    check_cell(structure.volume, _min_distance(structure))
    if not structure.is_ordered:
        raise ValueError("disordered structure (partial occupancies) is not supported")
    too_heavy = sorted({site.specie.symbol for site in structure if site.specie.Z > MAX_Z})
    if too_heavy:
        raise ValueError(f"unsupported element(s) {', '.join(too_heavy)} (Z > {MAX_Z})")
    return structure


def _min_distance(structure) -> float | None:
    """Shortest distance between two sites (Å, periodic images included); None for one site."""
    if len(structure) < 2:
        return None
    d = structure.distance_matrix
    return float(d[~np.eye(len(d), dtype=bool)].min())


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
                        help="checkpoint(s) from `lightning fit` or `import-model`; several: ensemble mean and "
                             "spread (after the first, values not ending in .ckpt count as structures)")
    parser.add_argument("structures", nargs="*", type=Path, help="CIF / POSCAR files")
    parser.add_argument("--out", type=Path, default=Path("predictions"),
                        help="output folder: new, empty or an earlier predict output, which is replaced "
                             "(default: predictions)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="structures per forward pass; lower it if memory runs out (default: 32)")
    args = parser.parse_args(argv)
    args.structures = [p for p in args.ckpt[1:] if p.suffix != ".ckpt"] + args.structures
    args.ckpt = args.ckpt[:1] + [p for p in args.ckpt[1:] if p.suffix == ".ckpt"]
    if not args.structures:
        parser.error("no structure files given")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        check_output_dir(args.out, OWN_MARKER)
    except OutputDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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

    eps_all, drude_all = [], []
    for start in range(0, len(ok), args.batch_size):
        batch = Batch.from_data_list([g for _, _, g in ok[start : start + args.batch_size]]).to(args.device)
        eps, drude = predict_members(modules, batch)
        eps_all.append(eps)
        drude_all.append(drude)
    if ok:
        eps, eps_std = mean_and_spread(np.concatenate(eps_all, axis=1))
        drude, drude_std = mean_and_spread(np.concatenate(drude_all, axis=1))
        spread = (eps_std, drude_std) if len(modules) > 1 else None
        with replaced_dir(args.out, OWN_MARKER) as tmp:
            _write(tmp, ok, eps, drude, spread)
        members = f" with an ensemble of {len(modules)}" if spread else ""
        print(f"predicted {len(ok)} structure(s){members} → {args.out}")
    return 1 if failed else 0


def _write(out: Path, ok: list, eps: np.ndarray, drude: np.ndarray,
           spread: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Tables and plots of the predicted structures ``ok`` into ``out``: ``eps`` (B, 2001, 2) and
    ``drude`` (B,) eV, and for an ensemble ``spread`` = their member standard deviations."""
    rows = []
    colours = srgb_hex(torch.from_numpy(eps).float(), torch.from_numpy(drude).float())
    names = _unique_names([p for p, _, _ in ok])
    for i, ((path, formula, _), name) in enumerate(zip(ok, names)):
        row = {"file": str(path), "formula": formula, "drude_ev": float(drude[i]), "colour_hex": colours[i],
               "eps_re": eps[i, :, 0], "eps_im": eps[i, :, 1]}
        if spread:
            row |= {"drude_std_ev": float(spread[1][i]), "eps_re_std": spread[0][i, :, 0],
                    "eps_im_std": spread[0][i, :, 1]}
        rows.append(row)
        fig = prediction_figure(ENERGY_GRID, eps[i], float(drude[i]), colours[i], f"{formula} ({path.name})",
                                spread=spread[0][i] if spread else None)
        fig.savefig(out / f"{name}.png", dpi=120)
    table = pd.DataFrame(rows)
    table.to_parquet(out / OWN_MARKER, index=False)
    spectra = [c for c in ("eps_re", "eps_im", "eps_re_std", "eps_im_std") if c in table]
    long = table.drop(columns=spectra).loc[np.repeat(np.arange(len(table)), len(ENERGY_GRID))]
    long["energy_ev"] = np.tile(ENERGY_GRID, len(table))
    for col in spectra:
        long[col] = np.concatenate(table[col].to_list())
    long.to_csv(out / "predictions.csv", index=False, float_format="%.6g")
