"""``import-model``: the paper's OptiMetal model files → checkpoints that reproduce the paper's code.

Fixtures: ``<repo>/../shared/reference/optimetal/checkpoints/`` (three model files written by the
paper's own code, six CIFs and that code's predictions for them); skips with the reason if absent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lightning_dielectric.models.paper_file import read_paper_file
from lightning_dielectric.training.import_paper import import_paper_model
from lightning_dielectric.training.import_paper import main as import_main
from lightning_dielectric.training.module import DielectricModule

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "reference" / "optimetal" / "checkpoints"
MODELS = {"optimetal2b_cgc": "optimetal2b_cgc_w32.pt", "optimetal2b_tc": "optimetal2b_tc_w32.pt",
          "optimetal3b": "optimetal3b_w32.pt"}
pytestmark = pytest.mark.skipif(not (FIXTURES / "reference_outputs.json").is_file(),
                                reason=f"paper model fixtures not found at {FIXTURES}")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("imported")
    paths = {}
    for name, file in MODELS.items():
        paths[name] = out / f"{name}.ckpt"
        assert import_main([str(FIXTURES / file), "--out", str(paths[name])]) == 0
    return paths


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_reproduces_the_papers_code(name, imported, tmp_path):
    """Drude frequency and ε at 0, 1, …, 20 eV for six structures within 1e-4 of the largest magnitude."""
    from lightning_dielectric.training.predict import main as predict_main

    reference = json.loads((FIXTURES / "reference_outputs.json").read_text())["outputs"][name]
    cifs = sorted((FIXTURES / "structures").glob("*.cif"))
    assert predict_main(["--ckpt", str(imported[name]), *map(str, cifs), "--out", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "predictions.parquet").set_index("file")
    ours = {Path(f).stem: row for f, row in table.iterrows()}
    assert sorted(ours) == sorted(reference)
    eps_scale = max(np.abs(r["eps_re_every_100"] + r["eps_im_every_100"]).max() for r in reference.values())
    drude_scale = max(r["drude"] for r in reference.values())
    for material, ref in reference.items():
        row = ours[material]
        np.testing.assert_allclose(row["eps_re"][::100], ref["eps_re_every_100"], rtol=0, atol=1e-4 * eps_scale)
        np.testing.assert_allclose(row["eps_im"][::100], ref["eps_im_every_100"], rtol=0, atol=1e-4 * eps_scale)
        assert abs(row["drude_ev"] - ref["drude"]) <= 1e-4 * drude_scale, material
    assert "optimetal" not in sys.modules  # the paper's package was never imported


@pytest.mark.parametrize("name", list(MODELS))
def test_checkpoint_reloads_with_the_same_outputs(name, imported):
    from pymatgen.core import Structure
    from torch_geometric.data import Batch

    from lightning_dielectric.data import build_graph
    module, _ = import_paper_model(read_paper_file(FIXTURES / MODELS[name]))
    reloaded = DielectricModule.load_from_checkpoint(imported[name], map_location="cpu").eval()
    assert type(reloaded.model) is type(module.model)
    settings = reloaded.model.graph_cutoffs
    assert settings == {"cutoff": 5.5, "threebody_cutoff": 4.0 if name == "optimetal3b" else None}
    graphs = []
    for cif in sorted((FIXTURES / "structures").glob("*.cif")):
        s = Structure.from_file(str(cif))
        graphs.append(build_graph(s.lattice.matrix, np.array(s.atomic_numbers), s.cart_coords, **settings))
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        (eps_a, drude_a), (eps_b, drude_b) = module(batch), reloaded(batch)
    assert torch.equal(eps_a, eps_b) and torch.equal(drude_a, drude_b)


def test_lightning_test_uses_the_imported_model(imported, tiny_dataset, tmp_path):
    """``lightning test --ckpt_path`` rebuilds the imported model (width 32) whatever the config's model
    (width 16), and its metrics are those of the imported weights."""
    from lightning_dielectric.data import DielectricDataModule
    from lightning_dielectric.training.cli import main as lightning_main
    from lightning_dielectric.training.metrics import per_material_metrics

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(imported["optimetal2b_cgc"].read_bytes())
    lightning_main(["test", "--config", str(REPO / "configs" / "quick" / "optimetal2b_cgc.yaml"),
                    "--ckpt_path", str(ckpt), "--data.root", str(tiny_dataset), "--data.batch_size", "4",
                    "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    summary = json.loads((tmp_path / "test_metrics.json").read_text())

    module = DielectricModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = DielectricDataModule(str(tiny_dataset), batch_size=4)
    mae_re = []
    with torch.no_grad():
        for batch in data.test_dataloader():
            eps, drude = module(batch)
            mae_re.append(per_material_metrics(eps, drude, batch.eps, batch.drude)["mae_re"])
    assert summary["n_materials"] == len(torch.cat(mae_re)) == 6
    assert summary["mae_re/mean"] == pytest.approx(torch.cat(mae_re).mean().item(), rel=1e-5)


def evil_file(path: Path, payload) -> None:
    """A file laid out like the paper's whose config unpickles by calling ``payload`` = (callable, args)."""

    class Evil:
        def __reduce__(self):
            return payload

    torch.save({"epoch": 1, "model_state_dict": {"w": torch.zeros(2)}, "config_dict": Evil(), "precision": None}, path)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.exec"])
def test_tampered_file_is_refused_without_executing(kind, tmp_path, capsys):
    import os

    marker = tmp_path / "executed"
    payloads = {
        "os.system": (os.system, (f"touch {marker}",)),
        "builtins.eval": (eval, (f"open({str(marker)!r}, 'w')",)),
        "builtins.exec": (exec, (f"open({str(marker)!r}, 'w')",)),
    }
    bad = tmp_path / "tampered.pt"
    evil_file(bad, payloads[kind])
    assert import_main([str(bad), "--out", str(tmp_path / "out.ckpt")]) == 2
    err = one_line_error(capsys)
    assert str(bad) in err and "refused" in err and kind.split(".")[1] in err
    assert not marker.exists() and not (tmp_path / "out.ckpt").exists()


def rewritten(tmp_path: Path, name: str, edit) -> Path:
    """The fixture ``name`` re-saved after ``edit(state_dict, architecture)`` (config as a plain dict)."""
    paper = read_paper_file(FIXTURES / MODELS[name])
    state, architecture = dict(paper.state_dict), json.loads(json.dumps(paper.architecture))
    edit(state, architecture)
    path = tmp_path / f"{name}_edited.pt"
    torch.save({"epoch": 1, "model_state_dict": state, "config_dict": {"architecture": architecture},
                "precision": None}, path)
    return path


EDITS = {
    "missing": ("optimetal2b_cgc", lambda s, a: s.pop("mp_block.layers.1.conv.lin_s.bias"),
                "missing tensor mp_block.layers.1.conv.lin_s.bias"),
    "extra": ("optimetal2b_tc", lambda s, a: s.update({"mp_block.layers.2.norm.weight": torch.ones(32)}),
              "unexpected tensor mp_block.layers.2.norm.weight"),
    "unknown": ("optimetal3b", lambda s, a: s.update({"readout.weight": torch.ones(3)}),
                "unexpected tensor readout.weight"),
    "shape": ("optimetal3b", lambda s, a: s.update({"angle_mlp.lins.0.weight": torch.ones(32, 5)}),
              "tensor angle_mlp.lins.0.weight has shape (32, 5), expected (32, 4)"),
    "constant": ("optimetal3b", lambda s, a: s.update({"angle_embedding.c2": torch.tensor(0.5)}),
                 "constant angle_embedding.c2"),
    "width": ("optimetal2b_cgc", lambda s, a: a.update(hidden_dim=64),
              "tensor node_mlp.lins.0.weight has shape (32, 24)"),
    "not a number": ("optimetal2b_cgc", lambda s, a: a.update(hidden_dim="wide"),
                     "hidden_dim='wide' is not a positive int"),
    "type": ("optimetal2b_cgc", lambda s, a: a.update(type="optimate"),
             "architecture type 'optimate' is not implemented"),
    "heads": ("optimetal2b_tc", lambda s, a: a["message_passing_dict"].update(heads=4),
              "message_passing_dict.heads=4 is not supported"),
    "activation": ("optimetal3b", lambda s, a: a.update(activation="silu"), "activation='silu' is not supported"),
    "3b heads": ("optimetal3b", lambda s, a: a["triplet_block_dict"]["edge_graph_mp_dict"].update(heads=4),
                 "edge-graph heads 4 and node-graph heads 8 differ"),
    "heads divide": ("optimetal3b", lambda s, a: [a["triplet_block_dict"][g].update(heads=5) for g in
                                                  ("edge_graph_mp_dict", "node_graph_mp_dict")],
                     "width 32 must be divisible by the number of heads 5"),
    "no cutoff": ("optimetal3b", lambda s, a: a.pop("twobody_cutoff"), "architecture has no 'twobody_cutoff'"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_wrong_file_is_a_one_line_error_naming_the_key(case, tmp_path, capsys):
    name, edit, message = EDITS[case]
    path = rewritten(tmp_path, name, edit)
    assert import_main([str(path), "--out", str(tmp_path / "out.ckpt")]) == 2
    err = one_line_error(capsys)
    assert str(path) in err and message in err, err
    assert not (tmp_path / "out.ckpt").exists()


def test_unreadable_files(tmp_path, capsys):
    from lightning_dielectric.cli import main as router

    assert router(["import-model", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "o.ckpt")]) == 2
    assert "no such file" in one_line_error(capsys)
    (tmp_path / "text.pt").write_text("not a torch file")
    assert import_main([str(tmp_path / "text.pt"), "--out", str(tmp_path / "o.ckpt")]) == 2
    assert "cannot read" in one_line_error(capsys)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert import_main([str(tmp_path / "other.pt"), "--out", str(tmp_path / "o.ckpt")]) == 2
    assert "not a paper model file" in one_line_error(capsys)


def test_threebody_cutoff_is_stored_and_checked(tmp_path, capsys):
    paper = FIXTURES / MODELS["optimetal3b"]
    assert import_main([str(paper), "--out", str(tmp_path / "a.ckpt"), "--threebody-cutoff", "3.5"]) == 0
    from lightning_dielectric.training.predict import load_module

    assert load_module(tmp_path / "a.ckpt", "cpu").model.graph_cutoffs == {"cutoff": 5.5, "threebody_cutoff": 3.5}
    capsys.readouterr()
    assert import_main([str(paper), "--out", str(tmp_path / "b.ckpt"), "--threebody-cutoff", "7"]) == 2
    assert "three-body cutoff 7.0 Å" in one_line_error(capsys)
