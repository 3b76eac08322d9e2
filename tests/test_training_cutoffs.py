"""The network owns its graph: ``lightning fit`` builds the graphs the model's cutoffs describe,
checkpoints carry them, ``predict`` builds them, and the data's cutoffs cannot be set apart."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch_geometric.data import Batch

from lightning_dielectric.data import DielectricDataModule, build_graph
from lightning_dielectric.data.graphs import DEFAULT_CUTOFF, DEFAULT_THREEBODY_CUTOFF
from lightning_dielectric.models import OptiMetal2B, OptiMetal3B
from lightning_dielectric.training.cli import DielectricCLI, _cli_kwargs, config_error, config_parser
from lightning_dielectric.training.cli import main as lightning_main
from lightning_dielectric.training.module import DielectricModule
from lightning_dielectric.training.predict import load_module, read_checkpoint
from lightning_dielectric.training.predict import main as predict_main

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "quick"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def configured(config: str, data: Path, *extra: str) -> DielectricCLI:
    """The objects ``lightning fit --config config ...`` would train, built without training."""
    return DielectricCLI(**_cli_kwargs(), args=["--config", str(QUICK / config), "--data.root", str(data), *extra],
                         run=False)


def longest_edge(data: DielectricDataModule) -> float:
    """Longest edge (Å) over the training batches."""
    longest = 0.0
    for batch in data.loader("train"):
        src, dst = batch.edge_index
        cell = batch.cell[batch.batch[src]]
        vec = batch.pos[dst] + torch.einsum("ek,ekc->ec", batch.cell_offset, cell) - batch.pos[src]
        longest = max(longest, float(vec.norm(dim=1).max()))
    return longest


def test_model_cutoff_sets_the_graphs(tiny_dataset):
    cli = configured("optimetal3b.yaml", tiny_dataset, "--model.model.init_args.cutoff", "6",
                     "--model.model.init_args.threebody_cutoff", "3.5")
    assert cli.model.model.rbf.cutoff == 6.0  # the radial basis and its envelope end at 6 Å
    assert cli.datamodule.graph_cutoffs == {"cutoff": 6.0, "threebody_cutoff": 3.5}
    assert DEFAULT_CUTOFF < longest_edge(cli.datamodule) <= 6.0 + 1e-4

    two_body = configured("optimetal2b_cgc.yaml", tiny_dataset, "--model.model.init_args.cutoff", "6")
    assert two_body.datamodule.graph_cutoffs == {"cutoff": 6.0, "threebody_cutoff": None}
    defaults = configured("optimetal3b.yaml", tiny_dataset)
    assert defaults.datamodule.graph_cutoffs == {"cutoff": DEFAULT_CUTOFF, "threebody_cutoff": DEFAULT_THREEBODY_CUTOFF}
    magpie = configured("magpie.yaml", tiny_dataset)
    assert magpie.datamodule.graph_cutoffs == {"cutoff": DEFAULT_CUTOFF, "threebody_cutoff": None}


@pytest.mark.parametrize("key", ["cutoff", "threebody_cutoff"])
def test_data_cutoffs_cannot_be_set(tiny_dataset, tmp_path, capsys, key):
    args = ["fit", "--config", str(QUICK / "optimetal3b.yaml"), "--data.root", str(tiny_dataset),
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as exit_info:
        lightning_main([*args, f"--data.{key}", "3"])
    assert exit_info.value.code == 2
    assert f"set --model.model.init_args.{key} instead" in capsys.readouterr().err
    old = tmp_path / "old.yaml"  # e.g. the config.yaml of a run from before the link
    old.write_text(f"data:\n  {key}: 3.0\n")
    with pytest.raises(SystemExit) as exit_info:
        lightning_main([*args, "--config", str(old)])
    assert exit_info.value.code == 2
    assert f"data.{key} cannot be set" in capsys.readouterr().err
    assert f"set model.model.init_args.{key}" in config_error(config_parser(), [str(QUICK / "optimetal3b.yaml"),
                                                                               str(old)]).describe()
    assert not (tmp_path / "runs").exists()


def test_checkpoint_trained_at_6_angstrom_predicts_with_6_angstrom_graphs(tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    lightning_main(["fit", "--config", str(QUICK / "optimetal2b_cgc.yaml"), "--data.root", str(tiny_dataset),
                    "--data.batch_size", "16", "--trainer.max_epochs", "1", "--model.model.init_args.cutoff", "6",
                    "--trainer.logger.init_args.save_dir", str(runs), *QUIET])
    (ckpt,) = runs.rglob("last.ckpt")
    checkpoint = read_checkpoint(ckpt)
    assert checkpoint["hyper_parameters"]["model"]["init_args"]["cutoff"] == 6.0
    assert checkpoint["datamodule_hyper_parameters"]["cutoff"] == 6.0

    from pymatgen.core import Lattice, Structure

    copper = Structure(Lattice.cubic(3.61), ["Cu"] * 4, FCC)  # 5th neighbour shell at 5.71 Å
    copper.to(filename=str(tmp_path / "Cu.cif"))
    assert predict_main(["--ckpt", str(ckpt), str(tmp_path / "Cu.cif"), "--out", str(tmp_path / "out")]) == 0
    import pandas as pd

    predicted = pd.read_parquet(tmp_path / "out" / "predictions.parquet")["drude_ev"][0]
    module = DielectricModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    drude = {}
    for cutoff in (DEFAULT_CUTOFF, 6.0):
        graph = build_graph(copper.lattice.matrix, np.array(copper.atomic_numbers), copper.cart_coords, cutoff, None)
        with torch.no_grad():
            drude[cutoff] = module(Batch.from_data_list([graph]))[1].item()
    assert predicted == pytest.approx(drude[6.0], rel=1e-5)
    assert abs(drude[6.0] - drude[DEFAULT_CUTOFF]) > 1e-4 * abs(drude[6.0])  # the shell at 5.71 Å counts


def saved(module: DielectricModule, **data_hparams) -> dict:
    """The checkpoint Lightning would write for ``module`` (hyperparameters, then the module's hook)."""
    checkpoint = {"state_dict": module.state_dict(), "pytorch-lightning_version": pl.__version__,
                  "hyper_parameters": dict(module.hparams), "datamodule_hyper_parameters": data_hparams}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def test_module_built_in_python_stores_its_network(tmp_path):
    torch.manual_seed(0)
    module = DielectricModule(OptiMetal3B(8, cutoff=5.0, threebody_cutoff=3.0), lr=1e-2)
    torch.save(saved(module), tmp_path / "a.ckpt")
    reloaded = DielectricModule.load_from_checkpoint(tmp_path / "a.ckpt", map_location="cpu")
    assert reloaded.model.graph_cutoffs == {"cutoff": 5.0, "threebody_cutoff": 3.0}
    assert reloaded.hparams.lr == 1e-2
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), reloaded.state_dict().values()))


def test_checkpoints_from_before_the_link_load(tmp_path):
    """Main's OptiMetal3B had no threebody_cutoff: predict takes the one its data used; a network
    whose basis ends elsewhere than its training graphs is refused with one line."""
    checkpoint = saved(DielectricModule(OptiMetal3B(8)), cutoff=5.5, threebody_cutoff=3.5)
    del checkpoint["hyper_parameters"]["model"]["init_args"]["threebody_cutoff"]
    torch.save(checkpoint, tmp_path / "old3b.ckpt")
    assert load_module(tmp_path / "old3b.ckpt", "cpu").model.graph_cutoffs == {"cutoff": 5.5, "threebody_cutoff": 3.5}

    torch.save(saved(DielectricModule(OptiMetal2B(8)), cutoff=6.0, threebody_cutoff=None), tmp_path / "old2b.ckpt")
    with pytest.raises(ValueError, match="cutoff=5.5 Å but it was trained on data.cutoff=6.0 Å"):
        load_module(tmp_path / "old2b.ckpt", "cpu")


def test_no_process_wide_warning_filter_and_no_hook_warning(tiny_dataset, tmp_path):
    probe = ("import warnings, lightning_dielectric.training.cli; "
             "print(any(f[1] is not None and 'transfer_batch_to_device' in f[1].pattern for f in warnings.filters))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    module = DielectricModule(OptiMetal2B(8), plot_every_n_epochs=0)
    data = DielectricDataModule(str(tiny_dataset), batch_size=16, threebody_cutoff=None)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_train_batches=1,
                         limit_val_batches=1, default_root_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, datamodule=data)
    assert not [w for w in caught if "transfer_batch_to_device" in str(w.message)]
