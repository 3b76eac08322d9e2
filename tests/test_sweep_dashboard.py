"""``sweep dashboard``: optuna-dashboard serves a sweep's storage (SQLite and journal) on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from lightning_dielectric.sweep.store import open_storage

ATTRS = {"family": "2b-cgc", "w": 16, "N": 123456, "D": 600, "seed": 1, "val_loss": 0.5, "flops": 1.5e12,
         "device_hours": 0.01}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_dashboard_serves_the_study_with_trial_attributes(tmp_path, kind):
    url = f"sqlite:///{tmp_path}/optuna.db" if kind == "sqlite" else f"journal:{tmp_path}/optuna.log"
    study = optuna.create_study(storage=open_storage(url), study_name="quick")
    trial = study.ask()
    for key, value in ATTRS.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.5)
    port = _free_port()
    code = f"from lightning_dielectric.sweep.dashboard import serve; serve({url!r}, port={port})"
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        studies = _get(f"http://127.0.0.1:{port}/api/studies", deadline)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["quick"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", deadline)
        (served,) = detail["trials"]
        attrs = {a["key"]: a["value"] for a in served["user_attrs"]}
        assert set(attrs) == set(ATTRS) and attrs["family"] == "2b-cgc" and float(attrs["N"]) == ATTRS["N"]
    finally:
        server.kill()
        server.wait(timeout=30)


def test_dashboard_refuses_a_sweep_that_never_ran(tmp_path, capsys):
    from lightning_dielectric.sweep.cli import dashboard_main

    sweep = tmp_path / "s.yaml"
    sweep.write_text((Path(__file__).parents[1] / "sweeps" / "quick.yaml").read_text())
    assert dashboard_main([str(sweep), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no storage yet" in err and "s.yaml" in err
