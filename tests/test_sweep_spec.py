"""Sweep files: validation errors name the key; grid expansion; the generated trial configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightning_dielectric.models import count_parameters
from lightning_dielectric.sweep.grid import expand, fused_trials, trial_config, write_trial_config
from lightning_dielectric.sweep.spec import SweepSpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "configs" / "quick" / "optimetal2b_cgc.yaml"


def spec_dict(**changes) -> dict:
    raw = {
        "study_name": "t",
        "base": str(BASE),
        "families": ["2b-cgc"],
        "design": ["data", "width"],
        "widths": [8, 16, 32],
        "train_sizes": [100, 200, 400],
        "fixed_width": 16,
        "fixed_train_size": 400,
        "seeds": [0, 1],
        "epochs": 3,
        "data_root": "data/synthetic",
        "out": "runs/t",
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"familes": ["2b-cgc"]}, "familes"),  # typo: unknown key
        ({"families": ["2b-cgc", "4b"]}, "families[1]"),
        ({"epochs": None}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"widths": [8, "wide"]}, "widths[1]"),
        ({"widths": [8, 8]}, "widths"),
        ({"design": ["data", "diagonal"]}, "design[1]"),
        ({"fixed_width": None}, "fixed_width"),  # the data line needs it
        ({"design": "grid", "train_sizes": None}, "train_sizes"),
        ({"base": "configs/nope.yaml"}, "base"),
        ({"base": {"2b-tc": str(BASE)}}, "base.2b-cgc"),
        ({"seeds": [-1]}, "seeds[0]"),
        ({"overrides": {"data..x": 1}}, "overrides.data..x"),
        ({"heartbeat_interval": 10, "grace_period": 15}, "grace_period"),
        ({"families": ["3b"], "widths": [8, 12]}, "widths[1]"),  # 8 attention heads must divide w
        ({"trials_per_device": 0}, "trials_per_device"),
        ({"trials_per_device": "two"}, "trials_per_device"),
        ({"trials_per_device": True}, "trials_per_device"),
        ({"trials_per_device": 1.5}, "trials_per_device"),
    ],
)
def test_bad_sweep_file_names_the_key(tmp_path, changes, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec_dict(**changes)))
    with pytest.raises(SweepSpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}: key '{key}':"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "changes, tail",
    [
        ({"epochs": "ten"}, "key 'epochs': expected a positive integer, got 'ten'"),  # wrong type
        ({"study_name": 3}, "key 'study_name': expected a non-empty string, got 3"),
        ({"data_root": 5}, "key 'data_root': expected a path, got 5"),
        ({"heartbeat_interval": "fast"}, "key 'heartbeat_interval': expected a positive number, got 'fast'"),
        ({"storage": " "}, "key 'storage': expected an SQLAlchemy URL or 'journal:PATH', got ' '"),
        ({"overrides": ["data.batch_size"]},
         "key 'overrides': expected a mapping of dotted config keys, got ['data.batch_size']"),
        ({"base": 3}, "key 'base': expected a config path or a mapping family -> path, got 3"),
        ({"train_sizes": []}, "key 'train_sizes': expected a non-empty list, got []"),
        ({"seeds": 0}, "key 'seeds': expected a non-empty list, got 0"),
        ({"design": "diagonal"}, "key 'design[0]': unknown design 'diagonal' (known: data, width, grid)"),
        ({"out": None}, "key 'out': missing"),  # missing required key
        ({"study_name": None}, "key 'study_name': missing"),
        ({"design": "width", "fixed_train_size": None}, "key 'fixed_train_size': missing: design 'width' needs it"),
        ({"widths": [8, 16, 8]}, "key 'widths': duplicate values in [8, 16, 8]"),
        ({"fuse_seeds": "yes"}, "key 'fuse_seeds': expected true or false, got 'yes'"),
    ],
)
def test_bad_value_message_names_file_key_and_value(tmp_path, changes, tail):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec_dict(**changes)))
    with pytest.raises(SweepSpecError) as err:
        load_spec(path)
    assert str(err.value) == f"{path}: {tail}"


def test_unknown_key_lists_every_allowed_key_once(tmp_path):
    import dataclasses

    from lightning_dielectric.sweep.spec import SweepSpec

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec_dict(epoch=3)))
    with pytest.raises(SweepSpecError) as err:
        load_spec(path)
    prefix = f"{path}: key 'epoch': unknown key (allowed: "
    assert str(err.value).startswith(prefix)
    allowed = str(err.value)[len(prefix):-1].split(", ")
    assert allowed == [f.name for f in dataclasses.fields(SweepSpec) if f.name != "source"]


def test_optional_keys_default_and_convert():
    spec = parse_spec(spec_dict(design="width", train_sizes=None, fixed_width=None, heartbeat_interval=5,
                                grace_period=11, families="2b-cgc"))
    assert spec.design == ("width",) and spec.families == ("2b-cgc",)
    assert spec.train_sizes == () and spec.fixed_width is None
    assert spec.heartbeat_interval == 5.0 and isinstance(spec.heartbeat_interval, float)
    assert spec.base == {"2b-cgc": BASE} and spec.data_root == Path("data/synthetic")
    assert (spec.devices, spec.workers, spec.max_retries, spec.storage, spec.overrides) == (1, 1, 2, None, {})


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(SweepSpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SweepSpecError, match="expected a mapping"):
        load_spec(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("widths: [1, 2\n")
    with pytest.raises(SweepSpecError, match="not valid YAML"):
        load_spec(tmp_path / "broken.yaml")


def test_cli_reports_bad_file_in_one_line(tmp_path, capsys):
    from lightning_dielectric.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec_dict(families=["2b-cgc", "gpt"])))
    assert main(["sweep", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: key 'families[1]': unknown family 'gpt' (known: 2b-cgc, 2b-tc, 3b, magpie)"


def test_trials_per_device_defaults_to_one_and_parses(tmp_path, capsys):
    assert parse_spec(spec_dict()).trials_per_device == 1
    assert parse_spec(spec_dict(trials_per_device=4)).trials_per_device == 4
    from lightning_dielectric.cli import main

    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(spec_dict(data_root=str(tmp_path))))
    with pytest.raises(SystemExit) as err:
        main(["sweep", "run", str(path), "--trials-per-device", "0"])
    assert err.value.code == 2
    assert "--trials-per-device must be at least 1" in capsys.readouterr().err


def test_data_and_width_lines_share_their_crossing_point():
    spec = parse_spec(spec_dict())
    points = expand(spec)
    # per seed: 3 data points + 3 width points - 1 shared (w=16, D=400)
    assert len(points) == 2 * 5
    shared = [p for p in points if p.designs == ("data", "width")]
    assert {(p.width, p.train_size) for p in shared} == {(16, 400)}
    data_line = sorted(p.train_size for p in points if "data" in p.designs and p.seed == 0)
    width_line = sorted(p.width for p in points if "width" in p.designs and p.seed == 0)
    assert data_line == [100, 200, 400] and width_line == [8, 16, 32]
    assert len({p.key for p in points}) == len(points)
    costs = [p.cost for p in points]
    assert costs == sorted(costs, reverse=True)  # longest first


def test_grid_design_is_the_full_product():
    spec = parse_spec(spec_dict(design="grid", families=["2b-cgc", "3b"], seeds=[1]))
    points = expand(spec)
    assert {(p.family, p.width, p.train_size) for p in points} == {
        (f, w, d) for f in ("2b-cgc", "3b") for w in (8, 16, 32) for d in (100, 200, 400)
    }


def test_trial_config_sets_axes_lr_rule_and_paths(tmp_path):
    tc_base = ROOT / "configs" / "optimetal2b_tc.yaml"  # width 256, lr 6e-4
    spec = parse_spec(
        spec_dict(base={"2b-cgc": str(BASE), "2b-tc": str(tc_base)}, families=["2b-cgc", "2b-tc"],
                  overrides={"data.batch_size": 8}, out=str(tmp_path))
    )
    by = {(p.family, p.width, p.train_size, p.seed): p for p in expand(spec)}
    tc = by[("2b-tc", 32, 400, 1)]
    cfg = trial_config(spec, tc, tmp_path / "run")
    init = cfg["model"]["model"]["init_args"]
    assert init == {"conv": "tc", "width": 32, "spectra_width": 128}
    assert cfg["model"]["model"]["class_path"] == "lightning_dielectric.models.optimetal2b.OptiMetal2B"
    expected_lr = 6e-4 * count_parameters("2b-tc", 256) / count_parameters("2b-tc", 32)
    assert cfg["model"]["lr"] == pytest.approx(expected_lr)
    assert cfg["data"] == {"batch_size": 8, "root": str(Path("data/synthetic").resolve()), "train_size": 400, "seed": 1}
    assert cfg["seed_everything"] == 1
    assert cfg["data"]["seed"] == 1  # the data order follows the trial seed too
    assert cfg["trainer"]["max_epochs"] == 3 and cfg["trainer"]["devices"] == 1
    assert cfg["trainer"]["logger"]["init_args"]["save_dir"] == str((tmp_path / "run").resolve())
    assert cfg["checkpoint"]["dirpath"] == str((tmp_path / "run" / "checkpoints").resolve())
    assert cfg["result"]["path"] == str((tmp_path / "run" / "result.json").resolve())
    assert cfg["result"]["family"] == "2b-tc"  # the run record's family comes from the grid
    # CGC keeps the base learning rate at every width
    cgc = trial_config(spec, by[("2b-cgc", 32, 400, 0)], tmp_path / "run")
    assert cgc["model"]["lr"] == pytest.approx(yaml.safe_load(BASE.read_text())["model"]["lr"])
    path = write_trial_config(spec, (tc,))
    assert path == tc.run_dir(spec.out) / "trial.yaml"
    assert yaml.safe_load(path.read_text()) == trial_config(spec, tc, tc.run_dir(spec.out))
    assert tc.num_parameters == count_parameters("2b-tc", 32)


def test_fused_trials_group_consecutive_seeds_and_write_members(tmp_path):
    spec = parse_spec(spec_dict(design="width", widths=[8], seeds=[0, 1, 2, 5], fuse_seeds=True, out=str(tmp_path)))
    points = expand(spec)
    assert [[p.seed for p in t] for t in fused_trials(spec, points)] == [[0, 1, 2], [5]]
    pending = [p for p in points if p.seed in (0, 2, 5)]  # seed 1 done: 0 and 2 no longer neighbours
    assert [[p.seed for p in t] for t in fused_trials(spec, pending)] == [[0], [2], [5]]
    assert [len(t) for t in fused_trials(spec.replace(fuse_seeds=False), points)] == [1, 1, 1, 1]
    trial = fused_trials(spec, points)[0]
    path = write_trial_config(spec, trial)
    assert path.parent == tmp_path / "trials" / "2b-cgc_w8_D400_s0-2_e3"
    cfg = yaml.safe_load(path.read_text())
    assert cfg["model"]["members"] == 3 and cfg["seed_everything"] == 0 and cfg["data"]["seed"] == 0
    assert cfg["member_runs"]["dirs"] == [str(p.run_dir(spec.out).resolve()) for p in trial]
    assert cfg["checkpoint"]["dirpath"] == str((path.parent / "checkpoints").resolve())
    # fused sweeps give every seed the smallest seed's data order, alone or fused
    alone = trial_config(spec, points[-1], points[-1].run_dir(spec.out))
    assert alone["seed_everything"] == 5 and alone["data"]["seed"] == 0
