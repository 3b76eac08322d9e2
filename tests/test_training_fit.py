"""End-to-end ``lightning fit`` / ``test`` / ``predict`` on the tiny fixture dataset (CPU, width 16)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lightning_dielectric.data.datamodule import DielectricDataModule
from lightning_dielectric.training.cli import main as lightning_main
from lightning_dielectric.training.module import DielectricModule
from lightning_dielectric.training.schedule import warmup_cosine

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "quick" / "optimetal2b_cgc.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit_args(data: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", str(QUICK), "--data.root", str(data), "--data.batch_size", "16",
        "--trainer.logger.init_args.save_dir", str(runs), *QUIET, *extra,
    ]


def run_dir(runs: Path) -> Path:
    (version,) = (runs / "quick_optimetal2b_cgc").iterdir()
    return version


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def fitted(tiny_dataset, tmp_path_factory) -> Path:
    """One 3-epoch run (52 training materials, 4 batches per epoch, warm-up 1 epoch, lr 5e-3, step logs every step)."""
    runs = tmp_path_factory.mktemp("runs")
    lightning_main(fit_args(tiny_dataset, runs, "--trainer.max_epochs", "3", "--model.lr", "5e-3",
                            "--trainer.log_every_n_steps", "1"))
    return run_dir(runs)


def scalars(run: Path) -> tuple[EventAccumulator, dict[str, list]]:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc, {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_fit_lowers_loss_and_writes_tensorboard(fitted, tiny_dataset):
    acc, values = scalars(fitted)
    for tag in ("train/loss", "val/loss", "val/eps_loss", "val/drude_loss", "train/lr", "train/grad_norm",
                "val/sc_im", "val/delta_e", "hp/best_val_loss"):
        assert tag in values, tag
    train = [v for _, v in values["train/loss"]]
    assert len(train) == 3 and train[-1] < train[0]
    # the epoch's loss is the mean over its 52 structures: the step losses weighted by batch size
    datamodule = DielectricDataModule(tiny_dataset, batch_size=16)
    datamodule.setup("fit")
    sizes = [batch.num_graphs for batch in datamodule.train_dataloader()]
    assert sum(sizes) == 52 and len(set(sizes)) > 1
    steps = [v for _, v in values["train/loss_step"]]
    assert len(steps) == 3 * len(sizes)
    means = [sum(n * v for n, v in zip(sizes, steps[k:k + len(sizes)])) / 52 for k in range(0, len(steps), len(sizes))]
    assert train == pytest.approx(means, rel=1e-6)
    parts = [e + d for (_, e), (_, d) in zip(values["train/eps_loss"], values["train/drude_loss"])]
    assert parts == pytest.approx(train, rel=1e-6)
    assert {"val/spectra", "val/drude_parity"} <= set(acc.Tags()["images"])
    # The HParams dashboard entry: run identity and the hp/* metrics.
    content = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: v for k, v in start.hparams.items()}
    assert hparams["family"].string_value == "2b-cgc"
    assert hparams["width"].number_value == 16
    assert hparams["N"].number_value == 278_627
    assert hparams["D"].number_value == 52
    assert hparams["seed"].number_value == 0


def test_lr_schedule_warmup_then_cosine(fitted):
    _, values = scalars(fitted)
    # 4 optimizer steps per epoch, 3 epochs, 1 warm-up epoch, peak 5e-3 from 1e-7.
    for step, lr in values["train/lr"]:
        assert lr == pytest.approx(5e-3 * warmup_cosine(step, 4, 12, 1e-7 / 5e-3), rel=1e-5)


def test_checkpoints_result_and_reload(fitted):
    ckpts = sorted(p.name for p in (fitted / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts)
    assert (fitted / "config.yaml").is_file()
    result = json.loads((fitted / "result.json").read_text())
    _, values = scalars(fitted)
    val = [v for _, v in values["val/loss"]]
    assert result["val_loss"] == pytest.approx(min(val))
    assert result["best_epoch"] == val.index(min(val))
    assert result["epochs_done"] == result["max_epochs"] == 3
    assert result["finished"] is True and result["num_parameters"] == 278_627
    # Compute accounting: 52 structures per epoch, 3 epochs, 3 × forward FLOPs per structure.
    assert result["structures_seen"] == 3 * 52
    assert result["flops_per_structure"] > 0
    assert result["flops"] == pytest.approx(3 * result["flops_per_structure"] * 156)
    assert result["device"] == "cpu" and result["num_devices"] == 1
    assert result["device_hours"] == pytest.approx(result["train_wall_s"] / 3600) and result["train_wall_s"] > 0
    # The checkpoint rebuilds its model from the saved config, no model object needed.
    module = DielectricModule.load_from_checkpoint(fitted / "checkpoints" / "last.ckpt", map_location="cpu")
    assert type(module.model).__name__ == "OptiMetal2B"
    assert sum(p.numel() for p in module.model.parameters()) == 278_627
    assert module.hparams.lr == 5e-3


def test_module_built_in_python_does_not_store_model(recwarn):
    module = DielectricModule(torch.nn.Linear(2, 2), lr=1e-2)
    assert "model" not in module.hparams and module.hparams.lr == 1e-2
    assert not [w for w in recwarn if "nn.Module" in str(w.message)]


def test_test_writes_tables_next_to_checkpoint(fitted, tmp_path):
    ckpt = fitted / "checkpoints" / "last.ckpt"
    lightning_main(["test", "--config", str(fitted / "config.yaml"), "--ckpt_path", str(ckpt),
                    "--trainer.logger.init_args.save_dir", str(tmp_path), *QUIET])
    summary = json.loads((ckpt.parent / "test_metrics.json").read_text())
    assert summary["n_materials"] == 6
    assert math.isfinite(summary["delta_e/mean"]) and summary["delta_e/mean"] >= 0
    assert "ΔE*ab" in (ckpt.parent / "test_metrics.md").read_text()
    assert r"\toprule" in (ckpt.parent / "test_metrics.tex").read_text()


def test_same_seed_same_validation_loss(tiny_dataset, tmp_path):
    losses = []
    for k in range(2):
        runs = tmp_path / str(k)
        lightning_main(fit_args(tiny_dataset, runs, "--trainer.max_epochs", "1", "--seed_everything", "3"))
        losses.append(json.loads((run_dir(runs) / "result.json").read_text())["val_loss"])
    assert losses[0] == losses[1]


def test_resume_continues_result_in_the_same_run(tiny_dataset, tmp_path):
    """The sweep's layout: logger name/version empty (log dir = run dir), resume from last.ckpt."""
    run = tmp_path / "run"
    layout = ["--trainer.logger.init_args.save_dir", str(run), "--trainer.logger.init_args.name", "",
              "--trainer.logger.init_args.version", ""]
    lightning_main(fit_args(tiny_dataset, tmp_path / "unused", "--trainer.max_epochs", "1", *layout))
    first = json.loads((run / "result.json").read_text())
    assert first["epochs_done"] == 1 and first["finished"] is True
    lightning_main(fit_args(tiny_dataset, tmp_path / "unused", "--trainer.max_epochs", "2", *layout,
                            "--ckpt_path", str(run / "checkpoints" / "last.ckpt")))
    second = json.loads((run / "result.json").read_text())
    assert second["epochs_done"] == 2 and second["max_epochs"] == 2 and second["finished"] is True
    assert second["structures_seen"] == 2 * 52 and second["flops_per_structure"] == first["flops_per_structure"]
    assert second["train_wall_s"] > first["train_wall_s"]
    assert second["val_loss"] <= first["val_loss"]
    assert second["best_epoch"] in (0, 1)
    if second["best_epoch"] == 0:
        assert second["val_loss"] == first["val_loss"]


def test_wrong_key_fails_before_training(tiny_dataset, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICK.read_text().replace("width: 16", "widht: 16"))
    with pytest.raises(SystemExit) as exit_info:
        lightning_main(fit_args(tiny_dataset, tmp_path / "runs", "--config", str(bad)))
    assert exit_info.value.code != 0
    assert "widht" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_wrong_value_cli_message_without_traceback(tiny_dataset, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_dielectric", *fit_args(tiny_dataset, tmp_path, "--model.lr", "fast")],
        capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert proc.returncode != 0
    assert "lr" in proc.stderr and "fast" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ddp_two_processes_sync_metrics(fitted, tiny_dataset, tmp_path):
    """2-rank DDP (gloo, CPU): training runs, and test metrics cover every material exactly once and
    agree with the single-process numbers of the same checkpoint."""
    ddp = ["--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2"]
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "lightning_dielectric"]
    fit = subprocess.run(cmd + fit_args(tiny_dataset, runs, "--trainer.max_epochs", "1", *ddp),
                         capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = run_dir(runs)
    result = json.loads((run / "result.json").read_text())
    assert result["epochs_done"] == 1
    assert result["structures_seen"] == 52 and result["num_devices"] == 2  # both ranks' structures, once each
    _, values = scalars(run)  # the epoch's training losses, summed over both ranks
    assert len(values["train/loss"]) == 1 and math.isfinite(values["train/loss"][0][1])
    assert values["train/loss"][0][1] == pytest.approx(values["train/eps_loss"][0][1] + values["train/drude_loss"][0][1])

    single_dir = tmp_path / "single"
    single_dir.mkdir()
    (single_dir / "last.ckpt").write_bytes((fitted / "checkpoints" / "last.ckpt").read_bytes())
    ddp_dir = tmp_path / "ddp"
    ddp_dir.mkdir()
    (ddp_dir / "last.ckpt").write_bytes((fitted / "checkpoints" / "last.ckpt").read_bytes())
    common = ["--config", str(fitted / "config.yaml"), "--trainer.logger.init_args.save_dir", str(tmp_path / "tl"), *QUIET]
    lightning_main(["test", *common, "--ckpt_path", str(single_dir / "last.ckpt")])
    test = subprocess.run(cmd + ["test", *common, "--ckpt_path", str(ddp_dir / "last.ckpt"), *ddp],
                          capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert test.returncode == 0, test.stderr[-3000:]
    single = json.loads((single_dir / "test_metrics.json").read_text())
    shared = json.loads((ddp_dir / "test_metrics.json").read_text())
    assert shared["n_materials"] == single["n_materials"] == 6
    for key, value in single.items():
        assert shared[key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), key


def test_predict_cif_and_poscar_with_broken_files(fitted, tmp_path, capsys):
    from pymatgen.core import Lattice, Structure

    from lightning_dielectric.training.predict import main as predict_main

    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    Structure(Lattice.cubic(3.61), ["Cu"] * 4, fcc).to(filename=str(tmp_path / "Cu.cif"))
    Structure(Lattice.cubic(4.08), ["Au"] * 4, fcc).to(filename=str(tmp_path / "POSCAR"), fmt="poscar")
    Structure(Lattice.cubic(3.0), ["U"], [[0, 0, 0]]).to(filename=str(tmp_path / "U.cif"))
    (tmp_path / "broken.cif").write_text("data_nothing\n_this is not a structure\n")
    files = [tmp_path / name for name in ("Cu.cif", "broken.cif", "POSCAR", "U.cif")]
    out = tmp_path / "out"
    status = predict_main(["--ckpt", str(fitted / "checkpoints" / "last.ckpt"), *map(str, files), "--out", str(out)])
    assert status == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "broken.cif" in errors[0] and "U.cif" in errors[1] and "Z > 83" in errors[1]

    import pandas as pd

    table = pd.read_parquet(out / "predictions.parquet")
    assert list(table["formula"]) == ["Cu", "Au"]
    assert all(len(v) == 2001 for v in table["eps_re"]) and (table["drude_ev"] >= 0).all()
    assert table["colour_hex"].str.fullmatch("#[0-9a-f]{6}").all()
    long = pd.read_csv(out / "predictions.csv")
    assert len(long) == 2 * 2001 and set(long.columns) >= {"file", "energy_ev", "eps_re", "eps_im", "drude_ev"}
    # The same numbers as the model applied directly.
    module = DielectricModule.load_from_checkpoint(fitted / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    from torch_geometric.data import Batch

    from lightning_dielectric.data import build_graph

    s = Structure.from_file(str(tmp_path / "POSCAR"))
    graph = build_graph(s.lattice.matrix, s.atomic_numbers, s.cart_coords, 5.5, None)
    with torch.no_grad():
        eps, drude = module(Batch.from_data_list([graph]))
    assert table["drude_ev"][1] == pytest.approx(drude.item(), rel=1e-5)
    assert table["eps_im"][1] == pytest.approx(eps[0, :, 1].numpy(), rel=1e-4, abs=1e-6)
    assert sorted(p.name for p in out.glob("*.png")) == ["Cu.png", "POSCAR.png"]


def test_threebody_model_without_triplets_fails_before_training(tiny_dataset, tmp_path):
    import pytorch_lightning as pl

    from lightning_dielectric.data import DielectricDataModule
    from lightning_dielectric.models import OptiMetal3B

    module = DielectricModule(OptiMetal3B(16))  # lightning fit cannot build this pair: the data follows the model
    data = DielectricDataModule(str(tiny_dataset), batch_size=16, threebody_cutoff=None)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="data.threebody_cutoff"):
        trainer.fit(module, datamodule=data)
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("override", "message"),
    [(("--data.root", "{missing}"), "dataset.json missing"), (("--data.train_size", "100000"), "train_size=100000")],
)
def test_bad_data_values_fail_with_one_line(tiny_dataset, tmp_path, capsys, override, message):
    args = fit_args(tiny_dataset, tmp_path / "runs", override[0], override[1].format(missing=tmp_path / "nothing"))
    with pytest.raises(SystemExit) as exit_info:
        lightning_main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
