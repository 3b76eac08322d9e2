"""The sweep driver with a stand-in trial process (``sweep_fake_trial.py``): scheduling, export,
retries, resume after SIGKILL of a trial or of the driver, and workers sharing one storage
(SQLite, journal file, PostgreSQL). The real ``lightning fit`` runs in ``test_sweep_e2e.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lightning_dielectric.cli import main as cli_main
from lightning_dielectric.sweep.driver import Driver, device_envs
from lightning_dielectric.sweep.export import runs_table
from lightning_dielectric.sweep.grid import expand
from lightning_dielectric.sweep.spec import load_spec
from lightning_dielectric.sweep.store import SweepStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sweep_fake_driver import FAKE, fake_command  # noqa: E402

BASE = HERE.parent / "configs" / "quick" / "optimetal2b_cgc.yaml"


def write_sweep(tmp_path: Path, name: str = "sweep.yaml", **changes) -> Path:
    raw = {
        "study_name": f"t-{uuid.uuid4().hex[:8]}",
        "base": str(BASE),
        "families": ["2b-cgc"],
        "design": ["data", "width"],
        "widths": [8, 16, 32],
        "train_sizes": [100, 200, 400],
        "fixed_width": 16,
        "fixed_train_size": 400,
        "seeds": [0],
        "epochs": 2,
        "data_root": str(tmp_path),
        "out": str(tmp_path / "runs"),
        "heartbeat_interval": 1,
        "grace_period": 4,
    }
    raw.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def store_of(spec) -> SweepStore:
    return SweepStore.for_spec(spec)


def attempts(run_dir: Path) -> list[str]:
    path = Path(run_dir) / "attempts.log"
    return path.read_text().splitlines() if path.exists() else []


def completes_per_point(spec) -> Counter:
    trials = store_of(spec).trials(states=(TrialState.COMPLETE,))
    return Counter(t.user_attrs["point"] for t in trials)


def test_grid_completes_exports_and_never_reruns(tmp_path, capsys):
    spec = load_spec(write_sweep(tmp_path))
    driver = Driver(spec, workers=2, command=fake_command, poll_s=0.2)
    driver.run()
    points = expand(spec)
    assert len(points) == 5
    states = store_of(spec).states(points)
    assert {s.status for s in states.values()} == {"done"}
    for p in points:
        lines = attempts(p.run_dir(spec.out))
        assert len(lines) == 1 and lines[0].startswith("start 0")
        assert lines[0].endswith("threads 1")  # 2 workers split the 2 cores
    table = runs_table(points, states)
    assert sorted(table.loc[table.study == "data", "D"]) == [100, 200, 400]
    assert sorted(table.loc[table.study == "width", "width"]) == [8, 16, 32]
    row = table[(table.study == "data") & (table.D == 100)].iloc[0]
    assert row.val_loss == pytest.approx(1 + 100 / 16 + 1000 / 100) and row.N == 16_000 and row.wall_s > 0
    assert row.delta_e == pytest.approx(10.0 / 16)  # the run record's ΔE reaches the runs table

    # rerun: every point is done, nothing runs again
    Driver(spec, workers=2, command=fake_command, poll_s=0.2).run()
    assert all(len(attempts(p.run_dir(spec.out))) == 1 for p in points)
    assert set(completes_per_point(spec).values()) == {1}

    capsys.readouterr()
    assert cli_main(["sweep", "status", str(spec.source)]) == 0
    out = capsys.readouterr().out
    assert "5 points: 5 done, 0 running, 0 failed, 0 pending" in out
    assert cli_main(["sweep", "export", str(spec.source), "--to", str(tmp_path / "exp")]) == 0
    import pandas as pd

    exported = pd.read_parquet(tmp_path / "exp" / "runs.parquet")
    assert len(exported) == 6 and set(exported.study) == {"data", "width"}
    assert pd.read_csv(tmp_path / "exp" / "runs.csv").shape == exported.shape


def test_failing_point_is_retried_then_reported_failed(tmp_path, monkeypatch):
    spec = load_spec(write_sweep(tmp_path, max_retries=1, design="width"))
    monkeypatch.setenv("SWEEP_FAKE_FAIL", "_w32_")
    Driver(spec, workers=1, command=fake_command, poll_s=0.2).run()
    states = store_of(spec).states(expand(spec))
    assert {k: s.status for k, s in states.items()} == {
        "2b-cgc/w32/D400/s0/e2": "failed", "2b-cgc/w16/D400/s0/e2": "done", "2b-cgc/w8/D400/s0/e2": "done"
    }
    assert states["2b-cgc/w32/D400/s0/e2"].errors == 2  # first try + max_retries


def test_clean_exit_before_last_epoch_is_not_a_result(tmp_path, monkeypatch):
    spec = load_spec(write_sweep(tmp_path, design="width", epochs=3))
    monkeypatch.setenv("SWEEP_FAKE_STOP", "_w32_")
    Driver(spec, workers=1, command=fake_command, poll_s=0.2).run()
    states = store_of(spec).states(expand(spec))
    assert {s.status for s in states.values()} == {"done"}
    (trial,) = [t for t in store_of(spec).trials(states=(TrialState.COMPLETE,)) if "_w32_" in t.user_attrs["run_dir"]]
    assert attempts(trial.user_attrs["run_dir"])[-1].startswith("start 1")  # resumed from last.ckpt
    assert trial.user_attrs["epochs_done"] == 3


def test_stopped_member_is_scored_by_its_best_and_reported(tmp_path, monkeypatch):
    spec = load_spec(write_sweep(tmp_path, design="width"))
    monkeypatch.setenv("SWEEP_FAKE_DIVERGE", "_w32_")
    lines = []
    Driver(spec, workers=1, command=fake_command, poll_s=0.2, log=lines.append).run()
    trials = {t.user_attrs["width"]: t for t in store_of(spec).trials(states=(TrialState.COMPLETE,))}
    assert trials[32].user_attrs["stopped_epoch"] == 0 and trials[16].user_attrs["stopped_epoch"] is None
    (line,) = [line for line in lines if "stopped in epoch" in line]
    assert "w32" in line and "non-finite training loss" in line


def test_cpu_split_and_gpu_pinning(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    threads = {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"}
    assert device_envs(2, 1, gpus=["0", "1", "2", "3"]) == [{"CUDA_VISIBLE_DEVICES": "0", **threads},
                                                            {"CUDA_VISIBLE_DEVICES": "1", **threads}]
    # 2 trials x 2 DDP ranks: 4 training processes share the 16 cores
    assert device_envs(2, 2, gpus=["4", "5", "6", "7"])[1] == {"CUDA_VISIBLE_DEVICES": "6,7", "OMP_NUM_THREADS": "4",
                                                               "MKL_NUM_THREADS": "4"}
    with pytest.raises(ValueError, match="need 6 GPUs; 4 visible"):
        device_envs(3, 2, gpus=["0", "1", "2", "3"])
    cpu = device_envs(2, 1, gpus=[])
    assert cpu[0] == {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"}


@pytest.mark.parametrize("gpus", [["0"], ["0", "1"]])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_packed_trials_share_each_gpu(monkeypatch, gpus, k):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    envs = device_envs(len(gpus), 1, k, gpus=gpus)
    assert len(envs) == len(gpus) * k
    assert Counter(e["CUDA_VISIBLE_DEVICES"] for e in envs) == {g: k for g in gpus}
    # the first slots (started first) spread over the GPUs before any GPU gets a second trial
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs[: len(gpus)]] == gpus
    # and split the machine's cores between them, so K trials do not oversubscribe the CPU
    assert {e["OMP_NUM_THREADS"] for e in envs} == {str(16 // (len(gpus) * k))}


def test_packed_ddp_trials_share_their_gpu_group():
    envs = device_envs(2, 2, 2, gpus=["0", "1", "2", "3"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3", "0,1", "2,3"]
    with pytest.raises(ValueError, match="need 4 GPUs; 2 visible"):
        device_envs(2, 2, 4, gpus=["0", "1"])  # packing does not stretch a GPU group


@pytest.mark.parametrize("workers, k", [(1, 1), (1, 2), (1, 4), (2, 2)])
def test_packed_trials_split_the_cpu_cores_among_all(monkeypatch, workers, k):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    envs = device_envs(workers, 1, k, gpus=[])
    assert len(envs) == workers * k
    threads = str(8 // (workers * k))
    assert all(e == {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
               for e in envs)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert device_envs(workers, 1, k, gpus=[])[0]["OMP_NUM_THREADS"] == "1"  # never 0 threads


def test_driver_runs_trials_per_device_slots(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CPU: 1 worker x 2 packed trials share 2 cores
    spec = load_spec(write_sweep(tmp_path, design="width", trials_per_device=2))
    assert Driver(spec, command=fake_command).trials_per_device == 2
    driver = Driver(spec, workers=1, trials_per_device=3, command=fake_command, poll_s=0.2)
    assert len(driver._envs) == 3
    driver = Driver(spec, workers=1, command=fake_command, poll_s=0.2)
    driver.run()
    assert {s.status for s in store_of(spec).states(expand(spec)).values()} == {"done"}
    for p in expand(spec):
        assert attempts(p.run_dir(spec.out))[0].endswith("threads 1")


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _checkpointed(spec):
    """A run dir whose trial has checkpointed at least one epoch but not finished."""
    for run_dir in (spec.out / "trials").glob("*"):
        try:
            result = json.loads((run_dir / "result.json").read_text())
        except (OSError, ValueError):
            continue
        if 1 <= result["epochs_done"] < result["max_epochs"]:
            return run_dir
    return None


def test_killed_trial_process_resumes_from_last_ckpt(tmp_path, monkeypatch):
    spec = load_spec(write_sweep(tmp_path, design="width", widths=[8, 16], epochs=6))
    monkeypatch.setenv("SWEEP_FAKE_EPOCH_S", "0.3")
    driver = Driver(spec, workers=1, command=fake_command, poll_s=0.2)
    threads = driver.start()
    run_dir = _wait_for(lambda: _checkpointed(spec), what="a checkpointed trial")
    pid = int(attempts(run_dir)[0].split()[3])
    os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(timeout=60)
    states = store_of(spec).states(expand(spec))
    assert {s.status for s in states.values()} == {"done"}
    lines = attempts(run_dir)
    assert len(lines) == 2 and lines[0].startswith("start 0") and int(lines[1].split()[1]) >= 1
    key = next(p.key for p in expand(spec) if p.run_dir(spec.out) == run_dir)
    assert [t.state for t in states[key].trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert states[key].trials[1].user_attrs["resumed"] is True


def _start_driver(sweep: Path, workers: int = 1, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "sweep_fake_driver.py"), str(sweep), str(workers)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_driver_resumes_without_duplicates_or_lost_points(tmp_path):
    sweep = write_sweep(tmp_path, epochs=5)
    spec = load_spec(sweep)
    proc = _start_driver(sweep, workers=2, env={"SWEEP_FAKE_EPOCH_S": "0.4"})
    run_dir = _wait_for(lambda: _checkpointed(spec), what="a checkpointed trial")
    children = [int(line.split()[3]) for d in (spec.out / "trials").glob("*") for line in attempts(d)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the trial processes die with the driver (parent-death signal), nothing keeps writing
    _wait_for(lambda: not any(_alive(pid) for pid in children), timeout=10, what="orphaned trials to die")

    # rerun in this process: the dead driver's RUNNING trials are recognised at once (same host, pid gone)
    t0 = time.monotonic()
    Driver(spec, workers=2, command=fake_command, poll_s=0.2).run()
    assert time.monotonic() - t0 < spec.grace_period + 30
    points = expand(spec)
    states = store_of(spec).states(points)
    assert {s.status for s in states.values()} == {"done"}  # no lost point
    assert set(completes_per_point(spec).values()) == {1}  # no duplicate
    reasons = Counter(t.system_attrs.get("fail_reason") for s in states.values() for t in s.trials if t.state == TrialState.FAIL)
    assert reasons["stale"] >= 1 and reasons.get("error", 0) == 0
    lines = attempts(run_dir)
    assert len(lines) == 2 and int(lines[1].split()[1]) >= 1  # resumed from its last.ckpt


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postgres_url() -> str:
    url = os.environ.get("LD_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("LD_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server and sets it)")
    import sqlalchemy

    try:
        with sqlalchemy.create_engine(url).connect():
            pass
    except Exception as err:  # any driver/connection error means: no server to test against
        pytest.skip(f"PostgreSQL at LD_TEST_POSTGRES_URL is unreachable: {str(err).splitlines()[0]}")
    return url


def storage_url(kind: str, tmp_path: Path) -> str:
    return {
        "sqlite": f"sqlite:///{tmp_path / 'shared.db'}",
        "journal": f"journal:{tmp_path / 'shared.journal'}",
    }.get(kind) or postgres_url()


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgres"])
def test_simultaneous_claims_of_one_point_admit_at_most_one(tmp_path, kind):
    url = storage_url(kind, tmp_path)
    spec = load_spec(write_sweep(tmp_path, design="width", widths=[8, 16, 32, 64, 128, 256]))
    points = expand(spec)
    n_threads = 4
    stores = [store_of(spec.replace(storage=url)) for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)
    wins: Counter = Counter()

    def contend(store):
        for point in points:
            barrier.wait()
            if store.claim(point, tmp_path / "run") is not None:
                wins[point.key] += 1

    threads = [threading.Thread(target=contend, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert max(wins.values(), default=0) <= 1, wins
    assert sum(wins.values()) >= 1  # someone usually wins; all yielding every round would be a livelock
    running = Counter(t.user_attrs["point"] for t in stores[0].trials(states=(TrialState.RUNNING,)))
    assert running == wins
    if kind == "postgres":
        optuna.delete_study(study_name=spec.study_name, storage=url)


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgres"])
def test_two_drivers_on_one_storage_train_each_point_once(tmp_path, kind):
    url = storage_url(kind, tmp_path)
    sweep = write_sweep(tmp_path, design="grid", widths=[8, 16, 32], train_sizes=[100, 200], storage=url)
    spec = load_spec(sweep)
    procs = [_start_driver(sweep, env={"SWEEP_FAKE_EPOCH_S": "0.1"}) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    points = expand(spec)
    states = store_of(spec).states(points)
    assert {s.status for s in states.values()} == {"done"}
    assert set(completes_per_point(spec).values()) == {1}
    assert all(len(attempts(p.run_dir(spec.out))) == 1 for p in points)  # no point trained twice
    if kind == "postgres":
        optuna.delete_study(study_name=spec.study_name, storage=url)


def test_stale_check_by_heartbeat_for_other_hosts(tmp_path):
    spec = load_spec(write_sweep(tmp_path, design="width"))
    store = store_of(spec)
    point = expand(spec)[0]
    trial_id = store.claim(point, tmp_path / "run")
    assert trial_id is not None
    for key, value in {"host": "node-elsewhere", "pid": 1, "heartbeat": time.time()}.items():
        store.storage.set_trial_system_attr(trial_id, key, value)
    trial = store.storage.get_trial(trial_id)
    assert not store.is_dead(trial)  # another host with a fresh heartbeat: alive
    assert store.is_dead(trial, now=time.time() + spec.grace_period + 1)
    assert store.claim(point, tmp_path / "run") is None  # held by the live trial
    store.storage.set_trial_system_attr(trial_id, "heartbeat", time.time() - spec.grace_period - 1)
    assert [t.number for t in store.reap()] == [store.number_of(trial_id)]
    assert store.states([point])[point.key].status == "pending"
    assert store.claim(point, tmp_path / "run") is not None


def test_stopped_driver_marks_trials_interrupted_and_resumes_them(tmp_path, monkeypatch):
    spec = load_spec(write_sweep(tmp_path, design="width", widths=[8, 16], epochs=6))
    monkeypatch.setenv("SWEEP_FAKE_EPOCH_S", "0.3")
    driver = Driver(spec, workers=2, command=fake_command, poll_s=0.2)
    threads = driver.start()
    run_dir = _wait_for(lambda: _checkpointed(spec), what="a checkpointed trial")
    driver.stop.set()  # what Ctrl-C / SIGTERM of `sweep run` does
    for t in threads:
        t.join(timeout=60)
    interrupted = [t for t in store_of(spec).trials() if t.system_attrs.get("fail_reason") == "interrupted"]
    assert interrupted and all(t.state == TrialState.FAIL for t in interrupted)
    Driver(spec, workers=2, command=fake_command, poll_s=0.2).run()
    assert {s.status for s in store_of(spec).states(expand(spec)).values()} == {"done"}
    assert int(attempts(run_dir)[-1].split()[1]) >= 1  # resumed, not restarted
