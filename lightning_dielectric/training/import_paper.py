"""``lightning-dielectric import-model PAPER.pt --out MODEL.ckpt``: one of the paper's model files
(e.g. its released ``optimetal2b_seed1.pt``) → a checkpoint of this package.

The paper's file is read without importing or executing anything from it
(``models/paper_file.py``), its ``architecture`` selects and sizes the model and its tensors are
renamed and shape-checked by an explicit table (``models/paper_format.py``). The result is an
ordinary Lightning checkpoint, loadable by ``predict --ckpt``, ``lightning test --ckpt_path`` and
``DielectricModule.load_from_checkpoint``:

- ``state_dict``: the ``DielectricModule``'s (``model.`` + this package's names);
- ``hyper_parameters``: ``model`` = ``{class_path, init_args}`` (how LightningCLI stores it), so the
  model is rebuilt on load; the training hyperparameters are this package's defaults. The graph
  cutoffs ``predict`` uses are the network's (Å): ``cutoff`` = the paper's ``twobody_cutoff``;
  OptiMetal3B's ``threebody_cutoff`` = ``--threebody-cutoff`` (the paper's default 4.0 Å; its
  files do not record it);
- ``imported_from``: file name, SHA-256, the paper's epoch and architecture dict.

A file that is tampered, not in the paper's format, of an architecture not implemented here or
with a missing, extra or misshapen tensor stops with a one-line error (exit status 2).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import instantiate_module

from lightning_dielectric.data.graphs import DEFAULT_THREEBODY_CUTOFF
from lightning_dielectric.models.families import num_parameters
from lightning_dielectric.models.paper_file import PaperFile, PaperFormatError, read_paper_file
from lightning_dielectric.models.paper_format import convert_state_dict, model_config
from lightning_dielectric.training.module import INSTANTIATOR, DielectricModule


def import_paper_model(paper: PaperFile,
                       threebody_cutoff: float = DEFAULT_THREEBODY_CUTOFF) -> tuple[DielectricModule, dict]:
    """The module with the paper's weights (eval mode) and the checkpoint dict to save for it."""
    class_path, init_args = model_config(paper.architecture, str(paper.path), threebody_cutoff)
    if "threebody_cutoff" in init_args and not 0 < threebody_cutoff <= init_args["cutoff"]:
        raise ValueError(f"three-body cutoff {threebody_cutoff} Å must be in (0, {init_args['cutoff']}] Å")
    hparams = {"model": {"class_path": class_path, "init_args": init_args}}
    try:
        module = instantiate_module(DielectricModule, hparams)  # as load_from_checkpoint will rebuild it
    except ValueError as err:  # e.g. a width the head count does not divide
        raise PaperFormatError(f"{paper.path}: {err}") from None
    state = convert_state_dict(paper.state_dict, paper.architecture["type"], module.model, where=str(paper.path))
    module.model.load_state_dict(state)
    module.eval()
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": {**hparams, "_instantiator": INSTANTIATOR},
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
        "imported_from": {
            "file": paper.path.name,
            "sha256": hashlib.sha256(paper.path.read_bytes()).hexdigest(),
            "epoch": paper.epoch,
            "architecture": paper.architecture,
        },
    }
    return module, checkpoint


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lightning-dielectric import-model",
        description="Convert a model file of the paper's code (OptiMetal2B/3B) to this package's checkpoint.",
    )
    parser.add_argument("paper_file", type=Path, help="the paper's model file, e.g. optimetal2b_seed1.pt")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write, e.g. optimetal2b_seed1.ckpt")
    parser.add_argument("--threebody-cutoff", type=float, default=DEFAULT_THREEBODY_CUTOFF,
                        help="three-body cutoff in Å for OptiMetal3B graphs "
                             f"(default: the paper's {DEFAULT_THREEBODY_CUTOFF})")
    args = parser.parse_args(argv)
    try:
        module, checkpoint = import_paper_model(read_paper_file(args.paper_file), args.threebody_cutoff)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, args.out)
    except (ValueError, OSError) as err:  # PaperFormatError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = checkpoint["hyper_parameters"]["model"]
    n = num_parameters(module.model)
    print(f"{args.paper_file} → {args.out}: {model['class_path'].rsplit('.', 1)[-1]} {model['init_args']}, "
          f"{n:,} parameters (paper epoch {checkpoint['imported_from']['epoch']})")
    return 0
