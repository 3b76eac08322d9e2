"""The ``lightning`` CLI for a new user: one-line errors with the closest valid key, positive
``data.train_size``, runs that print where they are, and ``test`` that writes into its run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_dielectric.training.cli import main as lightning_main

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "quick" / "optimetal2b_cgc.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def error_lines(capsys) -> list[str]:
    """The error lines on stderr (Python warnings, which pytest may or may not capture, left out)."""
    return [line for line in capsys.readouterr().err.splitlines() if "error:" in line or "Traceback" in line]


@pytest.mark.parametrize(
    ("option", "suggestion"),
    [("--model.widht", "--model.model.init_args.width"), ("--data.batchsize", "--data.batch_size"),
     ("--trainer.max_epoch", "--trainer.max_epochs")],
)
def test_mistyped_key_is_one_line_with_the_closest_key(tiny_dataset, tmp_path, capsys, option, suggestion):
    with pytest.raises(SystemExit) as exit_info:
        lightning_main(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), option, "32"])
    assert exit_info.value.code == 2
    (line,) = error_lines(capsys)
    assert option in line and f"did you mean {suggestion}" in line


def test_wrong_value_is_one_line(tiny_dataset, capsys):
    with pytest.raises(SystemExit):
        lightning_main(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), "--trainer.max_epochs", "abc"])
    (line,) = error_lines(capsys)
    assert "'abc'" in line and "trainer.max_epochs" in line and "int" in line


def test_train_size_zero_must_be_positive(tiny_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lightning_main(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), "--data.train_size", "0",
                        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    err = "\n".join(error_lines(capsys))
    assert "--data.train_size must be a positive integer" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_member_run_dirs_must_match_members(tiny_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lightning_main(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), "--model.members", "2",
                        "--member_runs.dirs", f"[{tmp_path / 'only-one'}]",
                        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])
    assert exit_info.value.code == 2
    (line,) = error_lines(capsys)
    assert "--member_runs.dirs: 1 directories for --model.members 2" in line
    assert not (tmp_path / "runs").exists()


def test_explain_reads_config_file_messages():
    from lightning_dielectric.training.config_errors import closest_keys, explain

    keys = ["data.batch_size", "model.lr", "model.model"]
    err = explain("Group 'data' does not accept option 'batchsize'", keys)
    assert err.key == "data.batchsize" and err.close[0] == "data.batch_size"
    err = explain('Parser key "model.model":\n  Problem with given class_path \'x\':\n    Option \'widht\' is not accepted', keys)
    assert err.key == "model.model.init_args.widht" and "model.model.init_args.width" in err.close
    assert closest_keys("zzz", keys) == []


def test_fit_and_test_say_where_they_write_and_test_stays_in_the_run(tiny_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    lightning_main(["fit", "--config", str(QUICK), "--data.root", str(tiny_dataset), "--data.batch_size", "16",
                    "--trainer.max_epochs", "1", "--trainer.logger.init_args.save_dir", str(runs), *QUIET])
    (run,) = (runs / "quick_optimetal2b_cgc").iterdir()
    assert f"run directory {run}" in capsys.readouterr().err
    fit_config = (run / "config.yaml").read_text()
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    events = set(run.glob("events.out.tfevents.*"))

    lightning_main(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                    *QUIET])
    err = capsys.readouterr().err
    assert f"run directory {run}" in err
    assert f"{run / 'checkpoints' / 'test_metrics'}.{{md,tex,json}}" in err
    assert [p.name for p in run.parent.iterdir()] == [run.name]  # no new version_N
    assert len(set(run.glob("events.out.tfevents.*")) - events) == 1  # test events beside the fit's
    assert (run / "config.yaml").read_text() == fit_config and (run / "test_config.yaml").is_file()
    after = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert [n for n in after if not n.startswith("test_metrics")] == checkpoints
    assert json.loads((run / "checkpoints" / "test_metrics.json").read_text())["n_materials"] > 0

    (run / "checkpoints" / "test_metrics.json").unlink()  # the checkpoint alone is enough: the run's config is read
    lightning_main(["test", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), *QUIET])
    assert f"settings from {run / 'config.yaml'}" in capsys.readouterr().err
    assert json.loads((run / "checkpoints" / "test_metrics.json").read_text())["n_materials"] > 0
    assert [p.name for p in run.parent.iterdir()] == [run.name]
