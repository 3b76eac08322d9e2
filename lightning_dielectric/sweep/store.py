"""The sweep's Optuna study and the claim protocol that lets many workers share one storage.

Storage URLs: any SQLAlchemy URL (``sqlite:///runs/quick/optuna.db``,
``postgresql+psycopg2://user@host:5432/db``) or ``journal:PATH`` for an Optuna journal file on
a shared filesystem.

One Optuna trial is one attempt at one grid point; the point's identity is the user attribute
``point`` (:attr:`GridPoint.key`), its axes are the trial's params (``width``, ``train_size``,
``seed``) and user attributes. A point is

- **done** when one of its trials is COMPLETE,
- **running** when one is RUNNING and alive,
- **failed** when its trial processes failed more than ``max_retries`` times, or once with a
  configuration error (reason ``config``: retrying cannot help),
- **pending** otherwise (never tried, interrupted, or its worker died).

``sweep reset`` makes failed points pending again: it records, per point, the storage id of its
newest trial in the study's user attribute ``reset:<point>``; failures up to that trial no longer count.

Only Optuna's public storage API is used: a study's trials are ordered by their ``number``; the
storage's write calls take the storage-wide trial id, which ``create_new_trial`` returns and
:meth:`SweepStore.id_of` / :meth:`SweepStore.number_of` convert (ids differ from numbers when
other studies share the storage).

Passwords: a storage URL is printed only through :func:`redact` (``user:***@host``). Keep the
password out of the URL altogether with libpq's ``PGPASSWORD`` or ``~/.pgpass`` (docs/sweeps.md).

Claim protocol (why two workers never both train the same point): a worker creates its trial
directly in state RUNNING — one atomic write — and only then reads the point's other trials. If
any other trial of the point is COMPLETE or RUNNING and alive, it yields (marks its own trial
FAIL with reason ``yielded``) and moves on. Of two racing claims the later write is committed
before the later read, so the later claimant always sees the earlier one and yields: at most
one runs (both may yield; the point then stays pending for the next round).

Liveness: a running trial records ``heartbeat`` (Unix time) every ``heartbeat_interval`` s. It
is dead when the heartbeat is older than ``grace_period`` s, or at once when it was started on
this host by a process that no longer exists (the driver was killed). Dead trials are failed
with reason ``stale`` and their point reruns, resuming from the run directory's ``last.ckpt``.
A worker whose trial was declared dead loses the claim and stops its trial process.
Heartbeats compare wall clocks, so nodes sharing a storage need synchronised clocks (NTP).
"""

from __future__ import annotations

import functools
import os
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import optuna
import psutil
from optuna.distributions import IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from lightning_dielectric.sweep.grid import GridPoint

HOST = socket.gethostname()
PID = os.getpid()
PID_START = psutil.Process(PID).create_time()
# Failure reasons that do not count against a point's max_retries.
NOT_ERRORS = ("yielded", "stale", "interrupted")
RESET_ATTR = "reset:"

T = TypeVar("T")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def retry_locked(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry a storage call that SQLite refused with 'database is locked' (concurrent writers)."""
    return _retrying(fn, lambda err: "locked" in str(err))


def _retrying(fn: Callable[..., T], transient: Callable[[Exception], bool]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        from sqlalchemy.exc import IntegrityError, OperationalError

        for attempt in range(20):
            try:
                return fn(*args, **kwargs)
            except (OperationalError, IntegrityError) as err:
                if not transient(err) or attempt == 19:
                    raise
                time.sleep(random.uniform(0.05, 0.3) * (1 + attempt))
        raise AssertionError("unreachable")

    return wrapper


class StorageError(RuntimeError):
    """The storage cannot be opened (host unreachable, bad credentials); the message is one line."""


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``journal:PATH`` and unparsable URLs unchanged)."""
    if url.startswith("journal:"):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def storage_exists(url: str) -> bool:
    """False for an SQLite or journal file that does not exist yet (the sweep never ran); True otherwise."""
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            return Path(url.removeprefix(prefix)).exists()
    return True


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage for ``url`` (SQLAlchemy URL or ``journal:PATH``)."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    # Workers starting at once race to create the schema; the loser retries and finds it made.
    create = _retrying(RDBStorage, lambda err: "locked" in str(err) or "exists" in str(err) or "UNIQUE" in str(err)
                       or "unique" in str(err) or "duplicate" in str(err))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return create(url, engine_kwargs={"connect_args": {"timeout": 60}})
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        return create(url, engine_kwargs={"pool_pre_ping": True})
    except (SQLAlchemyError, ImportError, ValueError) as err:
        try:
            parsed = make_url(url)
            host, password = parsed.host or "localhost", parsed.password
        except ArgumentError:
            host, password = "?", None
        lines = str(getattr(err, "orig", None) or err).strip().splitlines()
        reason = lines[0] if lines else type(err).__name__
        if password:
            reason = reason.replace(str(password), "***")
        raise StorageError(f"cannot open storage {redact(url)} (host {host}): {reason}") from None


@dataclass
class PointState:
    """What the storage says about one grid point."""

    status: str  # "done" | "running" | "failed" | "pending"
    trials: list[FrozenTrial] = field(default_factory=list)

    @property
    def result(self) -> FrozenTrial | None:
        """The first COMPLETE trial of the point."""
        return next((t for t in self.trials if t.state == TrialState.COMPLETE), None)

    reset_after: int = -1  # trial number up to which failures were reset by ``sweep reset``

    def _counted(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.number > self.reset_after]

    @property
    def errors(self) -> int:
        return sum(1 for t in self._counted() if _fail_reason(t) == "error")

    @property
    def config_error(self) -> bool:
        """Whether a counted attempt failed with a configuration error (never retried)."""
        return any(_fail_reason(t) == "config" for t in self._counted())

    @property
    def wall_s(self) -> float:
        """Total trial-process time spent on the point over all attempts (s)."""
        return float(sum(t.user_attrs.get("wall_s", 0.0) for t in self.trials))


def _fail_reason(trial: FrozenTrial) -> str | None:
    if trial.state != TrialState.FAIL:
        return None
    return trial.system_attrs.get("fail_reason", "error")


class SweepStore:
    """A sweep's study in one storage. Not shared between threads: open one per thread."""

    def __init__(self, url: str, study_name: str, *, grace_period: float, max_retries: int) -> None:
        self.grace_period = grace_period
        self.max_retries = max_retries
        self.storage = open_storage(url)
        self.study = retry_locked(optuna.create_study)(
            storage=self.storage, study_name=study_name, direction="minimize", load_if_exists=True
        )
        self.study_id = retry_locked(self.storage.get_study_id_from_name)(study_name)
        self.last_beat: dict[int, float] = {}  # trial id -> time of our last heartbeat (s)
        self._numbers: dict[int, int] = {}  # trial id -> trial number (fixed once created)

    @classmethod
    def for_spec(cls, spec) -> SweepStore:
        """The store of a loaded sweep file (``SweepSpec``)."""
        return cls(spec.storage_url, spec.study_name, grace_period=spec.grace_period, max_retries=spec.max_retries)

    # -- reading ------------------------------------------------------------------------------
    @retry_locked
    def trials(self, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def number_of(self, trial_id: int) -> int:
        """The study-wide number of the trial with storage id ``trial_id``."""
        if trial_id not in self._numbers:
            self._numbers[trial_id] = retry_locked(self.storage.get_trial_number_from_id)(trial_id)
        return self._numbers[trial_id]

    def id_of(self, number: int) -> int:
        """The storage id of this study's trial ``number`` (what the storage's write calls take)."""
        return retry_locked(self.storage.get_trial_id_from_study_id_trial_number)(self.study_id, number)

    def is_dead(self, trial: FrozenTrial, now: float | None = None) -> bool:
        """Whether a RUNNING trial's worker is gone (heartbeat too old, or its process ended)."""
        attrs = trial.system_attrs
        now = time.time() if now is None else now
        if now - float(attrs.get("heartbeat", 0.0)) > self.grace_period:
            return True
        if attrs.get("host") == HOST and (attrs.get("pid"), attrs.get("pid_start")) != (PID, PID_START):
            return not _process_alive(int(attrs.get("pid", -1)), float(attrs.get("pid_start", 0.0)))
        return False

    def states(self, points: list[GridPoint]) -> dict[str, PointState]:
        """Status of every point, from one read of the storage."""
        by_key: dict[str, PointState] = {p.key: PointState("pending") for p in points}
        resets = retry_locked(self.storage.get_study_user_attrs)(self.study_id)
        for key, state in by_key.items():
            reset = resets.get(RESET_ATTR + key)
            state.reset_after = -1 if reset is None else self.number_of(int(reset))
        for trial in self.trials():
            state = by_key.get(trial.user_attrs.get("point"))
            if state is not None:
                state.trials.append(trial)
        now = time.time()
        for state in by_key.values():
            if state.result is not None:
                state.status = "done"
            elif any(t.state == TrialState.RUNNING and not self.is_dead(t, now) for t in state.trials):
                state.status = "running"
            elif state.errors > self.max_retries or state.config_error:
                state.status = "failed"
        return by_key

    def reset(self, keys: list[str]) -> int:
        """Make the points ``keys`` pending again (their past failures stop counting); returns how
        many had failed trials."""
        newest: dict[str, int] = {}
        for trial in self.trials():
            point = trial.user_attrs.get("point")
            if point in keys:
                newest[point] = max(newest.get(point, -1), trial.number)
        for point, number in newest.items():
            retry_locked(self.storage.set_study_user_attr)(self.study_id, RESET_ATTR + point, self.id_of(number))
        return len(newest)

    # -- writing ------------------------------------------------------------------------------
    def reap(self) -> list[FrozenTrial]:
        """Fail RUNNING trials whose worker is dead (reason ``stale``); returns them."""
        reaped = []
        for trial in self.trials(states=(TrialState.RUNNING,)):
            if self.is_dead(trial) and self.fail(self.id_of(trial.number), "stale"):
                reaped.append(trial)
        return reaped

    def claim(self, point: GridPoint, run_dir: Path) -> int | None:
        """Start a trial for ``point``; None when another worker holds or finished the point."""
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params={"width": point.width, "train_size": point.train_size, "seed": point.seed},
            distributions={
                "width": IntDistribution(point.width, point.width, log=True),
                "train_size": IntDistribution(point.train_size, point.train_size, log=True),
                "seed": IntDistribution(point.seed, point.seed),
            },
            user_attrs={
                "point": point.key,
                "family": point.family,
                "width": point.width,
                "N": point.num_parameters,
                "D": point.train_size,
                "seed": point.seed,
                "epochs": point.epochs,
                "designs": list(point.designs),
                "run_dir": str(run_dir),
            },
            system_attrs={"host": HOST, "pid": PID, "pid_start": PID_START, "heartbeat": time.time()},
        )
        trial_id = retry_locked(self.storage.create_new_trial)(self.study_id, template_trial=template)
        now = self.last_beat[trial_id] = time.time()
        number = self.number_of(trial_id)
        for other in self.trials(states=(TrialState.RUNNING, TrialState.COMPLETE)):
            if other.number == number or other.user_attrs.get("point") != point.key:
                continue
            if other.state == TrialState.COMPLETE or not self.is_dead(other, now):
                self.fail(trial_id, "yielded")
                return None
        return trial_id

    @retry_locked
    def beat(self, trial_id: int) -> bool:
        """Record a heartbeat; False when the trial is no longer ours (declared dead elsewhere)."""
        if self.storage.get_trial(trial_id).state != TrialState.RUNNING:
            return False
        try:
            now = time.time()
            self.storage.set_trial_system_attr(trial_id, "heartbeat", now)
        except UpdateFinishedTrialError:
            return False
        self.last_beat[trial_id] = now
        return True

    @retry_locked
    def complete(self, trial_id: int, value: float, attrs: dict[str, Any]) -> bool:
        """Record the result; False when the trial had been failed by another worker meanwhile."""
        try:
            for key, val in attrs.items():
                self.storage.set_trial_user_attr(trial_id, key, val)
            return self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])
        except UpdateFinishedTrialError:
            return False

    @retry_locked
    def fail(self, trial_id: int, reason: str, attrs: dict[str, Any] | None = None) -> bool:
        """Mark a trial FAIL with ``reason`` (error / yielded / stale / interrupted)."""
        try:
            self.storage.set_trial_system_attr(trial_id, "fail_reason", reason)
            for key, val in (attrs or {}).items():
                self.storage.set_trial_user_attr(trial_id, key, val)
            return self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False


def _process_alive(pid: int, start: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - start) < 1e-3
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
