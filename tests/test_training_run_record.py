"""The run record (``result.json``): round trip, records written before it had a version, and
one-line errors naming the file and the key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lightning_dielectric.training.run_record import RECORD_FILE, RECORD_VERSION, RunRecord, RunRecordError


def sample_record(**changes) -> RunRecord:
    """A finished 3-epoch CPU run (values as a real record holds them)."""
    values = dict(
        val_loss=0.75, eps_loss=0.5, drude_loss=0.25, delta_e=12.5, best_epoch=2, epochs_done=3, max_epochs=3,
        finished=True, num_parameters=278_627, family="2b-cgc", flops_per_structure=4.0e7, structures_seen=156,
        flops=3 * 4.0e7 * 156, train_wall_s=7.5, device="cpu", num_devices=1, device_hours=7.5 / 3600,
    )
    return RunRecord(**(values | changes))


# What ``RunResult`` wrote before the record had a version (main at 491c077).
UNVERSIONED = {
    "val_loss": 0.75, "eps_loss": 0.5, "drude_loss": 0.25, "best_epoch": 2, "flops_per_structure": None,
    "structures_seen": 156, "train_wall_s": 7.5, "flops": None, "device": "cpu", "num_devices": 1,
    "device_hours": 0.0020833, "epochs_done": 3, "max_epochs": 3, "num_parameters": 278627, "finished": True,
}


def test_write_then_read_gives_the_same_record(tmp_path):
    record = sample_record()
    path = tmp_path / "run" / RECORD_FILE
    record.write(path)
    assert RunRecord.read(path) == record
    data = json.loads(path.read_text())
    assert data["version"] == RECORD_VERSION and data["family"] == "2b-cgc"
    assert set(data) == {"version"} | {f.name for f in dataclasses.fields(RunRecord)}
    assert not list(path.parent.glob("*.tmp"))


def test_unversioned_record_reads_as_version_1(tmp_path):
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps(UNVERSIONED, indent=2))
    record = RunRecord.read(path)
    assert record.val_loss == 0.75 and record.best_epoch == 2 and record.finished is True
    assert record.num_parameters == 278_627 and record.flops is None
    assert record.family is None and record.delta_e is None  # fields version 1 did not have


def test_version_2_record_reads_without_stop_epoch(tmp_path):
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps(UNVERSIONED | {"version": 2, "family": "2b-cgc", "delta_e": 12.5}))
    record = RunRecord.read(path)
    assert record.family == "2b-cgc" and record.stopped_epoch is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 99}, "key 'version': unknown run-record version 99"),
        ({"version": "2"}, "key 'version': unknown run-record version '2'"),
        ({"version": 2, "family": "2b-cgc", "delta_e": 1.0, "val_loss": None}, "key 'val_loss' missing"),
        ({"version": 2, "family": "2b-cgc"}, "key 'delta_e' missing (run record version 2)"),
        ({"version": 3, "family": "2b-cgc", "delta_e": 1.0}, "key 'stopped_epoch' missing (run record version 3)"),
        ({"version": 3, "family": "2b-cgc", "delta_e": 1.0, "stopped_epoch": 1.5},
         "key 'stopped_epoch': expected int or null, got 1.5"),
        ({"epochs_done": None}, "key 'epochs_done' missing (run record version 1)"),
        ({"finished": 1}, "key 'finished': expected bool, got 1"),
        ({"epochs_done": 2.5}, "key 'epochs_done': expected int, got 2.5"),
        ({"val_loss": "low"}, "key 'val_loss': expected float, got 'low'"),
        ({"val_los": 0.1}, "unknown key 'val_los'"),
    ],
)
def test_bad_record_is_one_line_naming_file_and_key(tmp_path, change, message):
    data = {k: v for k, v in (UNVERSIONED | change).items() if v is not None or k not in change}
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps(data))
    with pytest.raises(RunRecordError) as err:
        RunRecord.read(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_not_a_json_object_names_the_file(tmp_path, content):
    path = tmp_path / RECORD_FILE
    path.write_text(content)
    with pytest.raises(RunRecordError, match=str(Path(path)).replace(".", r"\.")):
        RunRecord.read(path)


def test_integers_read_as_floats_and_nulls_where_allowed(tmp_path):
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps(UNVERSIONED | {"val_loss": 1, "max_epochs": None}))
    record = RunRecord.read(path)
    assert record.val_loss == 1.0 and isinstance(record.val_loss, float) and record.max_epochs is None


def test_resuming_a_checkpoint_from_before_the_record_keeps_its_best_delta_e():
    """Checkpoints of main at 491c077 kept the best epoch's ΔE*ab in the module's ``hp_best``
    and the other best-so-far values in the callback's state; resuming joins them."""
    from lightning_dielectric.training.callbacks import RunResult

    best = {"val_loss": 0.75, "eps_loss": 0.5, "drude_loss": 0.25, "best_epoch": 2}
    compute = {"flops_per_structure": 4.0e7, "structures_seen": 156, "train_wall_s": 7.5}
    callback = RunResult()
    callback.on_load_checkpoint(None, None, {"hp_best": {"hp/best_val_loss": 0.75, "hp/delta_e": 12.5}})
    callback.load_state_dict({"best": best, "compute": compute})
    assert callback.best == best | {"delta_e": 12.5} and callback.compute == compute
    fresh = RunResult()  # a checkpoint of this version: its own state is used as it is
    fresh.on_load_checkpoint(None, None, {})
    fresh.load_state_dict({"best": best | {"delta_e": 3.0}, "compute": compute})
    assert fresh.best["delta_e"] == 3.0
