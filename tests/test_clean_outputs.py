"""Outputs a new user can trust: ``predict`` and ``laws fit`` refuse foreign ``--out`` folders and
replace their own earlier output whole; broken structure files are explained in words; checkpoints
load without running pickled code; ``data synth`` reruns on a finished dataset say so, create
directories with normal permissions and leave no worker behind when killed."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from lightning_dielectric.training.cli import main as lightning_main
from lightning_dielectric.training.predict import main as predict_main

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "quick" / "optimetal2b_cgc.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


@pytest.fixture(scope="module")
def ckpt(tiny_dataset, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    lightning_main(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), "--data.batch_size", "16",
                    "--trainer.max_epochs", "1", "--trainer.logger.init_args.save_dir", str(runs), *QUIET])
    return next(runs.rglob("last.ckpt"))


@pytest.fixture()
def copper(tmp_path) -> Path:
    from pymatgen.core import Lattice, Structure

    path = tmp_path / "Cu.cif"
    Structure(Lattice.cubic(3.61), ["Cu"] * 4, FCC).to(filename=str(path))
    return path


def test_predict_out_refuses_foreign_folder_and_replaces_its_own(ckpt, copper, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert predict_main(["--ckpt", str(ckpt), str(copper), "--out", str(foreign)]) == 2
    assert "not empty" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "pred"
    from pymatgen.core import Lattice, Structure

    gold = tmp_path / "Au.cif"
    Structure(Lattice.cubic(4.08), ["Au"] * 4, FCC).to(filename=str(gold))
    assert predict_main(["--ckpt", str(ckpt), str(copper), str(gold), "--out", str(out)]) == 0
    assert (out / "Au.png").is_file()
    assert predict_main(["--ckpt", str(ckpt), str(copper), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Cu.png", "predictions.csv", "predictions.parquet"]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("nolattice.cif", "data_x\n_cell_angle_alpha 90\nloop_\n_atom_site_label\n_atom_site_fract_x\nCu1 0\n",
         "not a valid CIF: no lattice parameters"),
        ("noatoms.cif", "data_x\n_cell_length_a 3\n_cell_length_b 3\n_cell_length_c 3\n_cell_angle_alpha 90\n"
         "_cell_angle_beta 90\n_cell_angle_gamma 90\n", "not a valid CIF: no atom sites"),
        ("POSCAR", "Cu\n1.0\n3.6 0 0\n0 3.6 0\n", "not a valid POSCAR"),
        ("short.vasp", "Cu\n1.0\n3.6 0 0\n0 3.6 0\n0 0 3.6\nCu\n2\nDirect\n0 0 0\n", "2 atoms declared but 1 positions"),
        ("flat.vasp", "Cu\n1.0\n0 0 0\n0 3.6 0\n0 0 3.6\nCu\n1\nDirect\n0 0 0\n", "degenerate cell"),
    ],
)
def test_broken_structure_files_are_explained(ckpt, tmp_path, capsys, name, text, reason):
    path = tmp_path / name
    path.write_text(text)
    assert predict_main(["--ckpt", str(ckpt), str(path), "--out", str(tmp_path / "o")]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {path}: ") and reason in line
    assert "Error" not in line  # no exception class names


def test_checkpoints_load_without_pickled_code(ckpt, copper, tmp_path, capsys, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert predict_main(["--ckpt", str(ckpt), str(copper), "--out", str(tmp_path / "ok")]) == 0
    assert calls and all(w is True for w in calls), calls

    checkpoint = real_load(ckpt, map_location="cpu", weights_only=True)
    evil = tmp_path / "evil.ckpt"
    torch.save({**checkpoint, "payload": Path("/")}, evil)  # an arbitrary pickled object
    assert predict_main(["--ckpt", str(evil), str(copper), "--out", str(tmp_path / "o")]) == 2
    assert "weights_only" in capsys.readouterr().err.replace("Weights only", "weights_only")


def test_checkpoint_naming_a_foreign_class_is_refused(ckpt, copper, tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    mark = tmp_path / "mark"
    monkeypatch.setenv("CHECKPOINT_PAYLOAD_MARK", str(mark))
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["model"]["class_path"] = "checkpoint_payload.Marker"
    foreign = tmp_path / "foreign.ckpt"
    torch.save(checkpoint, foreign)
    assert predict_main(["--ckpt", str(foreign), str(copper), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint_payload.Marker" in capsys.readouterr().err
    assert not mark.exists() and not (tmp_path / "o").exists()


def test_laws_fit_out_refuses_foreign_folder_and_leaves_nothing_stale(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_laws_runs import sweep_table

    from lightning_dielectric.laws.cli import fit_main
    from lightning_dielectric.laws.runs import write_runs

    runs = write_runs(sweep_table(), tmp_path / "runs.parquet")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("x")
    assert fit_main([str(runs), "--out", str(foreign), "--bootstrap", "0"]) == 2
    assert "not empty" in capsys.readouterr().err
    out = tmp_path / "laws"
    assert fit_main([str(runs), "--out", str(out), "--bootstrap", "0"]) == 0
    assert (out / "tensorboard").is_dir()
    assert fit_main([str(runs), "--out", str(out), "--bootstrap", "0", "--no-tensorboard"]) == 0
    assert not (out / "tensorboard").exists() and (out / "fits.json").is_file()


def test_synth_rerun_on_finished_dataset_is_complete_and_permissions_are_normal(tmp_path, capsys):
    from lightning_dielectric.synthetic.cli import main as synth_main

    out = tmp_path / "synth"
    args = ["--n", "3", "--seed", "0", "--out", str(out), "--workers", "1", "--k-spacing", "0.6", "--no-progress"]
    old = os.umask(0o022)
    try:
        assert synth_main(args) == 0
    finally:
        os.umask(old)
    for d in (out, out / "train"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755, d
    capsys.readouterr()
    assert synth_main(args) == 0
    assert "is complete" in capsys.readouterr().out
    assert synth_main([*args[:2], "--seed", "1", *args[4:]]) == 1
    assert "other arguments" in capsys.readouterr().err


def test_synth_killed_with_sigkill_leaves_no_worker(tmp_path):
    cmd = [sys.executable, "-m", "lightning_dielectric.cli", "data", "synth", "--n", "400", "--chunk-size", "2",
           "--workers", "2", "--out", str(tmp_path / "s"), "--no-progress"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "python" in c.name().lower()]
            time.sleep(0.2)
        assert len(workers) >= 2, "workers did not start"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"orphaned workers: {[p.pid for p in alive]}"
    finally:
        for p in psutil.Process().children(recursive=True):
            if p.pid == proc.pid or p in locals().get("workers", []):
                p.kill()
