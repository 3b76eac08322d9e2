"""The sweep store on a storage shared with another study, where Optuna's storage-wide trial ids
differ from the study's trial numbers: retries, ``sweep reset`` and stale-trial reaping must count
the sweep's own trials, and a reset written as a trial id (as earlier versions did) keeps working."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna
import pytest

from lightning_dielectric.sweep.grid import expand
from lightning_dielectric.sweep.spec import load_spec
from lightning_dielectric.sweep.store import RESET_ATTR, SweepStore, open_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_sweep_driver import write_sweep  # noqa: E402


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_failures_resets_and_reaping_count_the_sweeps_own_trials(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'shared.journal'}"
    other = optuna.create_study(storage=open_storage(url), study_name="someone-else")
    for _ in range(3):  # shifts the storage ids of the sweep's trials away from their numbers
        other.enqueue_trial({})
    spec = load_spec(write_sweep(tmp_path, design="width", widths=[8], storage=url, max_retries=0))
    store = SweepStore.for_spec(spec)
    (point,) = expand(spec)

    first = store.claim(point, tmp_path / "run")
    assert first is not None and store.number_of(first) == 0 and store.id_of(0) == first != 0
    store.fail(first, "error")
    assert store.states([point])[point.key].status == "failed"  # max_retries 0: one error fails it
    assert store.reset([point.key]) == 1
    assert store.storage.get_study_user_attrs(store.study_id)[RESET_ATTR + point.key] == first  # an id, as before
    assert store.states([point])[point.key].status == "pending"

    second = store.claim(point, tmp_path / "run")
    assert second is not None and store.number_of(second) == 1
    store.storage.set_trial_system_attr(second, "heartbeat", time.time() - spec.grace_period - 1)
    store.storage.set_trial_system_attr(second, "host", "node-elsewhere")
    (reaped,) = store.reap()
    assert reaped.number == 1 and store.storage.get_trial(second).system_attrs["fail_reason"] == "stale"
    assert store.states([point])[point.key].status == "pending"  # stale does not count as an error

    third = store.claim(point, tmp_path / "run")
    store.fail(third, "error")  # after the reset: counts again
    assert store.states([point])[point.key].status == "failed"
