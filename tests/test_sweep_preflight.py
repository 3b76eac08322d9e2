"""A sweep's first minutes: trial configs checked before anything runs, configuration errors not
retried, failed points reset, ``status`` that creates nothing, storage passwords never shown and
an unreachable storage reported in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from lightning_dielectric.cli import main as cli_main
from lightning_dielectric.sweep.driver import Driver
from lightning_dielectric.sweep.grid import expand
from lightning_dielectric.sweep.spec import load_spec
from lightning_dielectric.sweep.store import SweepStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sweep_fake_driver import fake_command  # noqa: E402
from test_sweep_driver import write_sweep  # noqa: E402


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["run", "status"])
def test_mistyped_override_stops_at_once_naming_file_and_key(tmp_path, capsys, command):
    sweep = write_sweep(tmp_path, design="width", overrides={"data.batchsize": 16})
    assert cli_main(["sweep", command, str(sweep), "--no-report"][: 4 if command == "run" else 3]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(sweep) in line and "overrides.data.batchsize" in line and "data.batch_size" in line
    assert not (tmp_path / "runs").exists()  # no trial, no storage


def test_wrong_key_in_base_config_names_the_base_config(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text((HERE.parent / "configs" / "quick" / "optimetal2b_cgc.yaml").read_text()
                    .replace("warmup_epochs", "warmup_epoch"))
    sweep = write_sweep(tmp_path, design="width", base=str(base))
    assert cli_main(["sweep", "status", str(sweep)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(base) in line and "model.warmup_epoch" in line and "model.warmup_epochs" in line


def test_train_size_beyond_the_dataset_stops_before_running(tmp_path, tiny_dataset, capsys):
    sweep = write_sweep(tmp_path, design="width", data_root=str(tiny_dataset), fixed_train_size=10_000)
    assert cli_main(["sweep", "run", str(sweep)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "fixed_train_size" in line and "D=10000" in line


def test_status_of_a_sweep_that_never_ran_creates_nothing(tmp_path, capsys):
    sweep = write_sweep(tmp_path, design="width")
    assert cli_main(["sweep", "status", str(sweep)]) == 0
    assert "3 points: 0 done, 0 running, 0 failed, 3 pending" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_configuration_error_is_not_retried_and_reset_makes_it_pending(tmp_path, monkeypatch, capsys):
    spec = load_spec(write_sweep(tmp_path, design="width", max_retries=2))
    monkeypatch.setenv("SWEEP_FAKE_FAIL", "_w32_")
    monkeypatch.setenv("SWEEP_FAKE_FAIL_STATUS", "2")  # `lightning` exits 2 on a configuration error
    Driver(spec, workers=1, command=fake_command, poll_s=0.2).run()
    key = "2b-cgc/w32/D400/s0/e2"
    attempts = (spec.out / "trials" / "2b-cgc_w32_D400_s0_e2" / "attempts.log").read_text().splitlines()
    assert len(attempts) == 1  # not retried
    assert SweepStore.for_spec(spec).states(expand(spec))[key].status == "failed"

    capsys.readouterr()
    assert cli_main(["sweep", "status", str(spec.source)]) == 0
    assert f"sweep reset {spec.source} --failed" in capsys.readouterr().out

    assert cli_main(["sweep", "reset", str(spec.source), "--point", "2b-cgc/w8/D400/s0/e2"]) == 2  # done: refused
    assert cli_main(["sweep", "reset", str(spec.source), "--failed"]) == 0
    assert SweepStore.for_spec(spec).states(expand(spec))[key].status == "pending"
    monkeypatch.delenv("SWEEP_FAKE_FAIL")
    Driver(spec, workers=1, command=fake_command, poll_s=0.2).run()
    assert {s.status for s in SweepStore.for_spec(spec).states(expand(spec)).values()} == {"done"}


def test_password_is_redacted_and_unreachable_storage_is_one_line(tmp_path, capsys):
    from lightning_dielectric.sweep.store import redact

    url = "postgresql+psycopg2://alice:S3cretPw@127.0.0.1:9/sweeps"
    assert "S3cretPw" not in redact(url) and "alice" in redact(url) and "127.0.0.1" in redact(url)
    sweep = write_sweep(tmp_path, design="width")
    for command in ("status", "export", "run"):
        assert cli_main(["sweep", command, str(sweep), "--storage", url]) == 2
        captured = capsys.readouterr()
        assert "S3cretPw" not in captured.out + captured.err
        line = one_error_line(captured.err)
        assert "127.0.0.1" in line and "cannot open storage" in line


def test_reset_of_an_unknown_point_names_it(tmp_path, capsys):
    sweep = write_sweep(tmp_path, design="width")
    assert cli_main(["sweep", "reset", str(sweep), "--point", "2b-cgc/w99/D1/s0/e2"]) == 2
    assert "2b-cgc/w99/D1/s0/e2" in one_error_line(capsys.readouterr().err)
    assert yaml.safe_load(sweep.read_text())["design"] == "width"
