"""The sweep driver: K worker threads, each claiming grid points and training them as subprocesses.

Each trial is ``python -m lightning_dielectric fit --config BASE --config RUN_DIR/trial.yaml
[--ckpt_path RUN_DIR/checkpoints/last.ckpt]`` in its own process (so Lightning's DDP launcher
works and a crash or out-of-memory cannot take the driver down), started through
:mod:`lightning_dielectric.sweep.child` so that it dies with the driver (warm, see below, or cold). Its output goes to
``RUN_DIR/train.log``; its value is the best ``val/loss`` from the run record
``RUN_DIR/result.json`` (``training/run_record.py``, written by the ``RunResult`` callback). A
trial that exits with status 2 (``lightning``'s configuration error) fails its point at once,
without retries.

Devices: the driver runs ``workers`` x ``trials_per_device`` (K) trials at once. With GPUs,
worker group g gets ``CUDA_VISIBLE_DEVICES`` = its own ``devices`` GPUs, shared by K trial slots
(packed trials; slot j belongs to group j mod ``workers``, so the first slots spread over the
GPUs); the CPU cores are split evenly between all training processes (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``).

Fused seeds (``fuse_seeds``): a worker claims all pending seeds of a point that can train together
(``grid.fused_trials``) and runs them as one trial process; the storage still holds one trial per
seed point (claimed, beaten, failed and completed together), and each is scored from its own run
record, which the fused trial writes in the point's run directory.

Warm starts (``sweep/warm.py``): with the real trial command and one device per trial, each worker
starts its next trial process while the current trial runs, so the next trial skips the training
CLI's imports; the last spare of a worker is ended unused.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lightning_dielectric.sweep import retention
from lightning_dielectric.sweep.warm import Spare
from lightning_dielectric.sweep.grid import GridPoint, expand, fused_trials, trial_config, trial_dir, write_trial_config
from lightning_dielectric.training.config_errors import CONFIG_ERROR_STATUS
from lightning_dielectric.training.run_record import RECORD_FILE, RunRecord
from lightning_dielectric.sweep.spec import SweepSpec
from lightning_dielectric.sweep.store import SweepStore

Command = Callable[[SweepSpec, GridPoint, Path, "Path | None"], list[str]]
# RunRecord fields that become trial user attributes.
RESULT_KEYS = ("val_loss", "eps_loss", "drude_loss", "delta_e", "best_epoch", "epochs_done", "num_parameters",
               "flops", "flops_per_structure", "device", "device_hours", "stopped_epoch")


def fit_command(spec: SweepSpec, point: GridPoint, config: Path, ckpt: Path | None) -> list[str]:
    """The real trial: ``lightning fit`` on the base config plus the generated trial config."""
    cmd = [sys.executable, "-m", "lightning_dielectric", "fit"]
    cmd += ["--config", str(spec.base[point.family]), "--config", str(config)]
    return cmd + (["--ckpt_path", str(ckpt)] if ckpt is not None else [])


def device_envs(
    workers: int, devices: int, trials_per_device: int = 1, gpus: list[str] | None = None
) -> list[dict[str, str]]:
    """Environment overrides per trial slot (``workers * trials_per_device`` slots).

    With GPUs: slot j is pinned to group ``j % workers``, the group's ``devices`` GPUs
    (``CUDA_VISIBLE_DEVICES``), so ``trials_per_device`` slots share each group. On CPU no GPU
    is visible. Either way the machine's cores are split evenly between all training processes
    (slots × ``devices`` DDP ranks; ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, at least one thread
    each), so packed trials do not oversubscribe the CPU.
    """
    gpus = visible_gpus() if gpus is None else gpus
    slots = workers * trials_per_device
    if gpus:
        if workers * devices > len(gpus):
            raise ValueError(
                f"{workers} workers x {devices} devices per trial need {workers * devices} GPUs; "
                f"{len(gpus)} visible ({','.join(gpus)})"
            )
    threads = str(max(1, len(os.sched_getaffinity(0)) // (slots * devices)))
    cpu = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus:
        groups = [",".join(gpus[g * devices : (g + 1) * devices]) for g in range(workers)]
        return [{"CUDA_VISIBLE_DEVICES": groups[j % workers], **cpu} for j in range(slots)]
    return [{"CUDA_VISIBLE_DEVICES": "", **cpu}] * slots


def visible_gpus() -> list[str]:
    """GPU ids this process may use (honours an existing ``CUDA_VISIBLE_DEVICES``)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class Running:
    """A trial this driver is running (for the progress display)."""

    point: GridPoint
    run_dir: Path
    started: float = field(default_factory=time.monotonic)

    def epochs_done(self) -> int:
        try:
            return RunRecord.read(self.run_dir / RECORD_FILE).epochs_done
        except (OSError, ValueError):  # not written yet (or unreadable: shown as no progress)
            return 0


class Driver:
    """Runs (or resumes) the sweep ``spec`` with ``workers * trials_per_device`` trials at once
    (each argument defaults to the spec's)."""

    def __init__(
        self,
        spec: SweepSpec,
        workers: int | None = None,
        trials_per_device: int | None = None,
        command: Command = fit_command,
        log: Callable[[str], None] = print,
        poll_s: float = 2.0,
    ) -> None:
        self.spec = spec
        self.workers = workers or spec.workers
        self.trials_per_device = trials_per_device or spec.trials_per_device
        self.command = command
        self.log = log
        self.poll_s = poll_s
        self.points = expand(spec)
        for point in self.points:  # a base config the sweep cannot use fails here, before any run
            trial_config(spec, point, point.run_dir(spec.out))
        self.running: dict[str, Running] = {}
        self.stop = threading.Event()
        self._claim_lock = threading.Lock()
        self._envs = device_envs(self.workers, spec.devices, self.trials_per_device)
        self.warm = command is fit_command and spec.devices == 1  # DDP relaunches its script: cold only
        self._spare = threading.local()  # each worker's next trial process

    def open_store(self) -> SweepStore:
        return SweepStore.for_spec(self.spec)

    def start(self) -> list[threading.Thread]:
        """Start the worker threads (daemon threads; :meth:`stop` ends them)."""
        self.spec.out.mkdir(parents=True, exist_ok=True)
        self.open_store()  # create the study (and its tables) once before the threads race
        threads = [
            threading.Thread(target=self._worker, args=(env,), name=f"sweep-worker-{i}", daemon=True)
            for i, env in enumerate(self._envs)
        ]
        for t in threads:
            t.start()
        return threads

    def run(self) -> None:
        """Run until every point is done or failed (blocking, no display)."""
        for t in self.start():
            t.join()

    # -- worker -------------------------------------------------------------------------------
    def _worker(self, env: dict[str, str]) -> None:
        store = self.open_store()
        errors = 0
        try:
            while not self.stop.is_set():
                try:
                    if self._step(store, env) == "finished":
                        return
                    errors = 0
                except Exception as err:  # storage unreachable, disk full, ...: retry, then give up
                    errors += 1
                    self.log(f"[sweep] worker error ({errors}/5): {type(err).__name__}: {err}")
                    if errors == 5:
                        raise
                    self.stop.wait(self.poll_s * errors)
        finally:
            spare = getattr(self._spare, "next", None)
            if spare is not None:
                spare.close()

    def _step(self, store: SweepStore, env: dict[str, str]) -> str:
        """Claim and run one point: 'ran', 'waiting' (the rest runs elsewhere) or 'finished'."""
        with self._claim_lock:
            for trial in store.reap():
                self.log(f"[sweep] {trial.user_attrs.get('point')}: worker gone, will resume")
            states = store.states(self.points)
            if all(s.status in ("done", "failed") for s in states.values()):
                return "finished"
            claimed = None
            pending = [p for p in self.points if states[p.key].status == "pending"]
            for trial in fused_trials(self.spec, pending):
                ids = self._claim(store, trial)
                if ids is not None:
                    claimed = (trial, ids)
                    break
        if claimed is None:
            self.stop.wait(self.poll_s)
            return "waiting"
        trial, ids = claimed
        try:
            self._run_trial(store, env, trial, ids)
        except BaseException:
            for point, trial_id in zip(trial, ids):
                self.running.pop(point.key, None)
                store.fail(trial_id, "error")
            raise
        return "ran"

    def _claim(self, store: SweepStore, trial: tuple[GridPoint, ...]) -> list[int] | None:
        """Claim every point of ``trial``, or none (a point another worker holds gives back the rest)."""
        ids: list[int] = []
        for point in trial:
            trial_id = store.claim(point, point.run_dir(self.spec.out))
            if trial_id is None:
                for other in ids:
                    store.fail(other, "yielded")
                return None
            ids.append(trial_id)
        return ids

    def _run_trial(self, store: SweepStore, env: dict[str, str], trial: tuple[GridPoint, ...], ids: list[int]) -> None:
        run_dir = trial_dir(self.spec, trial)
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt.exists():  # an attempt that never checkpointed: start clean
            for folder in {run_dir, *(p.run_dir(self.spec.out) for p in trial)}:
                if folder.exists():
                    shutil.rmtree(folder)
        config = write_trial_config(self.spec, trial)
        for point in trial:
            (point.run_dir(self.spec.out) / RECORD_FILE).unlink(missing_ok=True)
        resume = ckpt if ckpt.exists() else None
        cmd = self.command(self.spec, trial[0], config, resume)
        name = trial[0].key if len(trial) == 1 else f"{trial[0].key} + seeds {[p.seed for p in trial[1:]]} (fused)"
        for point in trial:
            self.running[point.key] = Running(point, point.run_dir(self.spec.out))
        self.log(f"[sweep] start {name}" + (" (resuming from last.ckpt)" if resume else ""))
        t0 = time.monotonic()
        with open(run_dir / "train.log", "a") as logf:
            logf.write(f"\n=== trial {ids}{' (warm start)' if self.warm else ''}: {' '.join(cmd)}\n")
            logf.flush()
            proc = self._launch(cmd, logf, {**os.environ, **env})
            try:
                outcome = self._watch(store, proc, ids)
            except BaseException:
                _terminate(proc)  # never leave a trial running that the storage no longer tracks
                raise
        wall = time.monotonic() - t0
        for point in trial:
            del self.running[point.key]
        attrs = {"wall_s": wall / len(trial), "resumed": resume is not None, "fused": len(trial)}
        for point, trial_id in zip(trial, ids):
            if outcome == "lost":
                self.log(f"[sweep] {point.key}: claim lost (declared dead by another worker); stopped")
            elif outcome == "interrupted":
                store.fail(trial_id, "interrupted", attrs)
            elif proc.returncode == CONFIG_ERROR_STATUS:
                store.fail(trial_id, "config", {**attrs, "returncode": proc.returncode})
                self.log(f"[sweep] FAILED {point.key}: configuration error, not retried; log: {run_dir / 'train.log'}\n"
                         + _tail(run_dir / "train.log", 3))
            elif proc.returncode != 0:
                store.fail(trial_id, "error", {**attrs, "returncode": proc.returncode})
                self.log(f"[sweep] FAILED {point.key} (exit {proc.returncode}); log: {run_dir / 'train.log'}\n"
                         + _tail(run_dir / "train.log"))
            else:
                self._record_result(store, point, trial_id, point.run_dir(self.spec.out), attrs)
        if len(trial) > 1 and outcome == "exited" and proc.returncode == 0:
            self._retain(trial[0].key + " (fused trial)", run_dir)

    def _launch(self, cmd: list[str], logf: IO[str], env: dict[str, str]) -> subprocess.Popen:
        """Start the trial ``cmd`` (output to ``logf``): in this worker's spare when warm, else cold
        through ``sweep.child``; either way it dies with the driver."""
        if self.warm:
            spare = getattr(self._spare, "next", None) or Spare(env)
            proc = spare.hand(cmd[3:], Path(logf.name))  # cmd[3:]: the arguments after `python -m lightning_dielectric`
            self._spare.next = Spare(env)  # imports while this trial runs
            if proc is not None:
                return proc
            logf.write("[sweep] the warm trial process had exited; starting a cold one\n")
            logf.flush()
        child = [sys.executable, "-m", "lightning_dielectric.sweep.child", str(os.getpid())]
        return subprocess.Popen(child + cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def _watch(self, store: SweepStore, proc: subprocess.Popen, ids: list[int]) -> str:
        """Wait for the trial process, beating the heartbeats of its points' trials;
        'exited' | 'lost' (any of them) | 'interrupted'."""
        while True:
            try:
                proc.wait(timeout=min(self.spec.heartbeat_interval, self.poll_s))
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            if self.stop.is_set():
                _terminate(proc)
                return "interrupted"
            for trial_id in ids:
                if time.time() - store.last_beat.get(trial_id, 0.0) >= self.spec.heartbeat_interval:
                    if not store.beat(trial_id):
                        _terminate(proc)
                        return "lost"

    def _record_result(
        self, store: SweepStore, point: GridPoint, trial_id: int, run_dir: Path, attrs: dict
    ) -> None:
        try:
            record = RunRecord.read(run_dir / RECORD_FILE)
            if not math.isfinite(record.val_loss):
                raise ValueError(f"val_loss is {record.val_loss}")
            if not record.finished:
                raise ValueError(f"run stopped after {record.epochs_done} of {record.max_epochs} epochs")
        except (OSError, ValueError) as err:  # RunRecordError is a ValueError
            store.fail(trial_id, "error", attrs)
            self.log(f"[sweep] FAILED {point.key}: no usable {RECORD_FILE} in {run_dir} ({err})")
            return
        value = record.val_loss
        attrs |= {key: getattr(record, key) for key in RESULT_KEYS}
        if store.complete(trial_id, value, attrs):
            stop = "" if record.stopped_epoch is None else \
                f" (stopped in epoch {record.stopped_epoch}: non-finite training loss; its best before)"
            self.log(f"[sweep] done {point.key}: val_loss {value:.4f} in {attrs['wall_s']:.0f} s{stop}")
            self._retain(point.key, run_dir)
        else:
            self.log(f"[sweep] {point.key}: finished after its claim was lost; result not recorded")


    def _retain(self, name: str, run_dir: Path) -> None:
        """Apply ``keep_checkpoints`` to a completed run directory."""
        try:
            freed = retention.apply(run_dir, self.spec.keep_checkpoints)
        except (OSError, RuntimeError, ValueError) as err:  # the result stands; `sweep prune` can retry
            self.log(f"[sweep] {name}: checkpoints not pruned ({type(err).__name__}: {err})")
        else:
            if freed:
                self.log(f"[sweep] {name}: kept {self.spec.keep_checkpoints} checkpoints, freed {freed / 1e6:.1f} MB")


def _terminate(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM (Lightning stops cleanly), then SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
