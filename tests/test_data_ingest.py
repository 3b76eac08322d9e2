"""Ingest of the published dataset forms (CSE JSON, HDF5) → Parquet: values, quarantine, splits, exit codes."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from lightning_dielectric.data.ingest import main
from lightning_dielectric.data.schema import ENERGY_GRID, SPLITS
from lightning_dielectric.data.validate import min_image_distance
from lightning_dielectric.data.writer import read_metadata, shard_paths

METALS = ["Al", "Ti", "Fe", "Ni", "Cu", "Zn", "Pd", "Ag", "Sn", "Pt", "Au", "Bi"]


# ---------------------------------------------------------------- fixtures in the published forms


def make_structure(rng: np.random.Generator, kind: int) -> Structure:
    """Varied metallic cells: CsCl type, hexagonal, strongly skewed triclinic, Cu3Au type."""
    a, b = rng.choice(METALS, 2, replace=False)
    if kind % 4 == 0:
        return Structure(Lattice.cubic(rng.uniform(2.8, 3.4)), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])
    if kind % 4 == 1:
        lat = Lattice.hexagonal(rng.uniform(2.7, 3.1), rng.uniform(4.3, 5.0))
        return Structure(lat, [a, a, b], [[0, 0, 0], [1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.25]])
    if kind % 4 == 2:
        lat = Lattice.from_parameters(4.1, 5.3, 6.2, 62.0, 118.0, 71.0)
        return Structure(lat, [a, b, b], [[0.05, 0.1, 0.2], [0.55, 0.45, 0.6], [0.3, 0.9, 0.85]])
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]  # Cu3Au type
    return Structure(Lattice.cubic(rng.uniform(3.6, 4.1)), [a, b, b, b], fcc)


def cse_dict(structure: Structure, mat_id: str, rng: np.random.Generator) -> dict:
    """A serialized ComputedStructureEntry as the published JSON files hold it."""

    def spectrum(offset: float) -> list:
        m = np.empty((len(ENERGY_GRID), 4))
        m[:, 0] = ENERGY_GRID
        m[:, 1:] = offset + rng.uniform(0.0, 4.0, (len(ENERGY_GRID), 3))
        return m.tolist()

    data = {
        "mat_id": mat_id,
        "e_above_hull": float(rng.uniform(0, 0.2)),
        "drude_freq": rng.uniform(0.5, 6.0, 3).tolist(),
        "eps_inter_re": spectrum(1.0),
        "eps_inter_im": spectrum(0.0),
    }
    entry = ComputedStructureEntry(structure, energy=float(rng.normal()), data=data)
    return json.loads(json.dumps(entry.as_dict()))


def write_json(path: Path, content, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def make_cse_source(directory: Path, n: int, seed: int = 0, prefix: str = "mp") -> dict[str, dict]:
    """n entries, one file each (nested sub-directories, some gzipped); returns mat_id → entry dict."""
    rng = np.random.default_rng(seed)
    entries = {}
    for i in range(n):
        entry = cse_dict(make_structure(rng, i), f"{prefix}-{i:04d}", rng)
        entries[entry["data"]["mat_id"]] = entry
        sub = directory / f"block{i % 3}"
        if i % 5 == 4:
            write_json(sub / f"{prefix}-{i:04d}.json.gz", entry, gz=True)
        else:
            write_json(sub / f"{prefix}-{i:04d}.json", entry)
    return entries


def expected_from_entry(entry: dict) -> dict:
    """Reference values computed through pymatgen's own deserialization."""
    cse = ComputedStructureEntry.from_dict(entry)
    s = cse.structure
    re = np.asarray(cse.data["eps_inter_re"])[:, 1:].mean(axis=1)
    im = np.asarray(cse.data["eps_inter_im"])[:, 1:].mean(axis=1)
    return {
        "formula": s.composition.reduced_formula,
        "e_above_hull": cse.data["e_above_hull"],
        "lattice": s.lattice.matrix,
        "atomic_numbers": np.array(s.atomic_numbers),
        "positions": s.cart_coords,
        "eps_re": re,
        "eps_im": im,
        "drude": np.sqrt(np.mean(np.square(cse.data["drude_freq"]))),
    }


def read_rows(root: Path) -> dict[str, dict]:
    """mat_id → stored values (and split) of every row of a dataset."""
    rows = {}
    for split in SPLITS:
        for path in shard_paths(root, split):
            for r in pq.read_table(path).to_pylist():
                r["split"] = split
                rows[r["mat_id"]] = r
    return rows


def training_ids(root: Path) -> list[str]:
    return [m for p in shard_paths(root, "train") for m in pq.read_table(p, columns=["mat_id"]).column(0).to_pylist()]


def assert_row_matches(row: dict, exp: dict) -> None:
    assert row["formula"] == exp["formula"]
    np.testing.assert_allclose(np.reshape(row["lattice"], (3, 3)), exp["lattice"], rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(row["atomic_numbers"], exp["atomic_numbers"])
    np.testing.assert_allclose(np.asarray(row["positions"]), exp["positions"], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(row["eps_re"], exp["eps_re"], rtol=1e-6)
    np.testing.assert_allclose(row["eps_im"], exp["eps_im"], rtol=1e-6, atol=1e-6)
    assert row["drude"] == pytest.approx(exp["drude"], rel=1e-6)
    if exp["e_above_hull"] is None:
        assert row["e_above_hull"] is None
    else:
        assert row["e_above_hull"] == pytest.approx(exp["e_above_hull"], rel=1e-6)


def ingest(source: Path, out: Path, *extra: str) -> int:
    return main([str(source), "--out", str(out), "--workers", "1", "--quiet", *extra])


def quarantine(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "quarantine.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- CSE JSON


def test_cse_json_round_trip_values(tmp_path):
    entries = make_cse_source(tmp_path / "src", 12)
    # A site given by Cartesian xyz only, and a file holding a list of two entries.
    rng = np.random.default_rng(5)
    with_abc = cse_dict(make_structure(rng, 2), "xyz-0001", rng)
    xyz_only = copy.deepcopy(with_abc)  # pymatgen itself needs abc, so it is the reference
    for site in xyz_only["structure"]["sites"]:
        del site["abc"]
    listed = [cse_dict(make_structure(rng, k), f"list-{k}", rng) for k in (0, 1)]
    listed[1]["data"]["e_above_hull"] = None
    write_json(tmp_path / "src" / "xyz.json", xyz_only)
    write_json(tmp_path / "src" / "list.json", listed)
    entries.update({"xyz-0001": with_abc, "list-0": listed[0], "list-1": listed[1]})

    assert ingest(tmp_path / "src", tmp_path / "ds") == 0
    rows = read_rows(tmp_path / "ds")
    assert set(rows) == set(entries)
    for mat_id, entry in entries.items():
        assert_row_matches(rows[mat_id], expected_from_entry(entry))
    assert quarantine(tmp_path / "ds") == []
    meta = read_metadata(tmp_path / "ds")
    assert meta["provenance"]["format"] == "cse-json"
    assert meta["provenance"]["records_read"] == len(entries)


@pytest.fixture(scope="module")
def source40(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("cse40") / "src"
    make_cse_source(src, 40)
    return src


def test_parallel_ingest_equals_serial(tmp_path, source40):
    assert ingest(source40, tmp_path / "serial") == 0
    assert main([str(source40), "--out", str(tmp_path / "par"), "--workers", "2", "--quiet"]) == 0
    serial, par = read_metadata(tmp_path / "serial"), read_metadata(tmp_path / "par")
    assert [s["sha256"] for s in serial["shards"]] == [s["sha256"] for s in par["shards"]]


def test_split_by_formula_has_no_leakage(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    n = 0
    for f in range(20):  # 20 formulas, 1–3 polymorphs each
        a, b = METALS[f % 12], METALS[(f * 5 + 1) % 12] if METALS[(f * 5 + 1) % 12] != METALS[f % 12] else "Zn"
        for p in range(1 + f % 3):
            s = Structure(Lattice.cubic(2.9 + 0.1 * p), [a, b] if f < 12 else [a, b, b],
                          [[0, 0, 0], [0.5, 0.5, 0.5]] + ([[0.0, 0.5, 0.5]] if f >= 12 else []))
            write_json(src / f"m{n:03d}.json", cse_dict(s, f"m-{n:03d}", rng))
            n += 1
    assert ingest(src, tmp_path / "ds", "--seed", "7", "--split-method", "balanced") == 0
    rows = read_rows(tmp_path / "ds")
    assert len(rows) == n
    formulas = {s: {r["formula"] for r in rows.values() if r["split"] == s} for s in SPLITS}
    assert not formulas["train"] & formulas["val"]
    assert not formulas["train"] & formulas["test"]
    assert not formulas["val"] & formulas["test"]
    assert all(formulas.values())
    assert read_metadata(tmp_path / "ds")["split"] == {"method": "balanced", "seed": 7, "fractions": [0.8, 0.1, 0.1]}


def test_split_files_option(tmp_path):
    entries = make_cse_source(tmp_path / "src", 15)
    ids = sorted(entries)
    lists = {"train": ids[:9], "val": ids[9:11], "test": ids[11:14]}  # ids[14] is in no split file
    (tmp_path / "splits").mkdir()
    for name, members in lists.items():
        (tmp_path / "splits" / f"{name}.txt").write_text("\n".join(members + ["absent-id"] * (name == "val")) + "\n")
    rc = ingest(tmp_path / "src", tmp_path / "ds", "--split-files", str(tmp_path / "splits"))
    assert rc == 3  # the material listed in no split file is quarantined, not silently dropped
    rows = read_rows(tmp_path / "ds")
    for name, members in lists.items():
        assert sorted(m for m, r in rows.items() if r["split"] == name) == sorted(members)
    assert [(q["mat_id"], q["kind"]) for q in quarantine(tmp_path / "ds")] == [(ids[14], "not in split files")]
    assert read_metadata(tmp_path / "ds")["split"]["method"] == "split-files"


def test_split_files_missing_is_a_usage_error(tmp_path, capsys):
    make_cse_source(tmp_path / "src", 3)
    assert ingest(tmp_path / "src", tmp_path / "ds", "--split-files", str(tmp_path / "nowhere")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.txt" in err
    assert not (tmp_path / "ds").exists()


def test_nested_training_subsets_are_stable(tmp_path, source40):
    assert ingest(source40, tmp_path / "a", "--seed", "1") == 0
    assert main([str(source40), "--out", str(tmp_path / "b"), "--seed", "1", "--workers", "2", "--quiet"]) == 0
    assert ingest(source40, tmp_path / "c", "--seed", "2") == 0
    order_a, order_b, order_c = training_ids(tmp_path / "a"), training_ids(tmp_path / "b"), training_ids(tmp_path / "c")
    assert order_a == order_b  # same seed → same order, whatever the parallelism
    assert order_a != order_c  # another seed, another split and order
    for d1, d2 in [(5, 10), (10, 20), (1, len(order_a))]:
        assert set(order_a[:d1]) < set(order_a[:d2])
    assert sorted(order_a) != order_a  # stored in a random order, not sorted


# ---------------------------------------------------------------- HDF5 release


def write_h5(path: Path, records: list[dict]) -> None:
    with h5py.File(path, "w") as f:
        for r in records:
            g = f.create_group(r["mat_id"])
            g["mat_id"] = r["mat_id"]
            g["e_above_hull"] = r["e_above_hull"]
            g["composition"] = r["formula"]
            g["lattice"] = r["lattice"]
            g["atomic_number"] = r["atomic_numbers"]
            g["position"] = r["positions"]
            g["drude"] = r["drude"]
            g["eps"] = (r["eps_re"] + 1j * r["eps_im"]).astype(np.complex64)


def h5_record(rng: np.random.Generator, mat_id: str, kind: int) -> dict:
    s = make_structure(rng, kind)
    return {
        "mat_id": mat_id,
        "formula": s.composition.reduced_formula,
        "e_above_hull": float(rng.uniform(0, 0.1)),
        "lattice": s.lattice.matrix,
        "atomic_numbers": np.array(s.atomic_numbers, dtype=np.int64),
        "positions": s.cart_coords,
        "drude": float(rng.uniform(1, 8)),
        "eps_re": (1 + rng.uniform(0, 5, len(ENERGY_GRID))).astype(np.float32).astype(np.float64),
        "eps_im": rng.uniform(0, 5, len(ENERGY_GRID)).astype(np.float32).astype(np.float64),
    }


def make_h5_source(directory: Path, sizes=(8, 3, 3), seed: int = 0) -> dict[str, tuple[str, dict]]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in zip(SPLITS, sizes):
        recs = [h5_record(rng, f"{split}-{i:03d}", i) for i in range(n)]
        write_h5(directory / f"{split}.h5", recs)
        out.update({r["mat_id"]: (split, r) for r in recs})
    return out


def test_h5_round_trip_keeps_split(tmp_path):
    source = make_h5_source(tmp_path / "h5")
    assert ingest(tmp_path / "h5", tmp_path / "ds") == 0
    rows = read_rows(tmp_path / "ds")
    assert set(rows) == set(source)
    for mat_id, (split, rec) in source.items():
        assert rows[mat_id]["split"] == split
        assert_row_matches(rows[mat_id], rec)
    meta = read_metadata(tmp_path / "ds")
    assert meta["split"]["method"] == "source" and meta["provenance"]["format"] == "h5"
    assert meta["counts"] == {"train": 8, "val": 3, "test": 3}


def test_h5_single_file_and_parallel(tmp_path):
    make_h5_source(tmp_path / "h5", sizes=(20, 2, 2))
    args = ["--workers", "2", "--quiet", "--format", "h5"]
    assert main([str(tmp_path / "h5" / "train.h5"), "--out", str(tmp_path / "ds"), *args]) == 0
    assert read_metadata(tmp_path / "ds")["counts"] == {"train": 20, "val": 0, "test": 0}


H5_BAD = {
    "negative Drude frequency": lambda g: _replace(g, "drude", -1.0),
    "wrong grid length": lambda g: _replace(g, "eps", np.ones(2000, np.complex64)),
    "missing key": lambda g: g.__delitem__("position"),
    "Z > 83": lambda g: _replace(g, "atomic_number", np.full(len(g["atomic_number"]), 90)),
    "non-finite number": lambda g: _replace(g, "lattice", np.full((3, 3), np.nan)),
}


def _replace(group, key, value):
    del group[key]
    group[key] = value


@pytest.mark.parametrize("kind", sorted(H5_BAD))
def test_h5_quarantine(tmp_path, kind):
    source = make_h5_source(tmp_path / "h5", sizes=(4, 2, 2))
    with h5py.File(tmp_path / "h5" / "val.h5", "a") as f:
        H5_BAD[kind](f["val-001"])
    assert ingest(tmp_path / "h5", tmp_path / "ds") == 3
    [q] = quarantine(tmp_path / "ds")
    assert q["kind"] == kind and q["mat_id"] == "val-001"
    assert q["source"].endswith("val.h5:/val-001")
    assert set(read_rows(tmp_path / "ds")) == set(source) - {"val-001"}


def test_unreadable_h5_file_is_quarantined(tmp_path):
    source = make_h5_source(tmp_path / "h5", sizes=(4, 2, 0))
    (tmp_path / "h5" / "test.h5").write_bytes(b"not an hdf5 file")
    assert ingest(tmp_path / "h5", tmp_path / "ds") == 3
    [q] = quarantine(tmp_path / "ds")
    assert q["kind"] == "unreadable file" and q["source"].endswith("test.h5")
    assert set(read_rows(tmp_path / "ds")) == set(source)


# ---------------------------------------------------------------- every quarantine reason (CSE JSON)


def _set_data(key, value):
    def edit(e):
        e["data"][key] = value
    return edit


def _edit_eps(fn):
    def edit(e):
        arr = np.asarray(e["data"]["eps_inter_im"])
        e["data"]["eps_inter_im"] = fn(arr).tolist()
    return edit


def _set_species(k, species):
    def edit(e):
        e["structure"]["sites"][k]["species"] = species
    return edit


def _too_close_through_boundary(e):
    # A long skewed cell where the atoms are 9+ Å apart inside the cell but 0.3 Å through its face.
    lat = Lattice.from_parameters(10.0, 4.0, 4.5, 80.0, 100.0, 65.0)
    s = Structure(lat, ["Cu", "Ni"], [[0.01, 0.2, 0.3], [0.98, 0.2, 0.3]])
    e["structure"] = json.loads(json.dumps(s.as_dict()))


def _too_close_to_own_image(e):
    s = Structure(Lattice.from_parameters(0.45, 4.0, 4.0, 90, 90, 90), ["Cu"], [[0, 0, 0]])
    e["structure"] = json.loads(json.dumps(s.as_dict()))


def _flat_lattice(e):
    e["structure"]["lattice"]["matrix"] = [[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]]


def _del_data(key):
    def edit(e):
        del e["data"][key]
    return edit


CSE_BAD = {
    "missing key": [_del_data("drude_freq"), _del_data("mat_id"), lambda e: e.pop("structure")],
    "non-finite number": [_edit_eps(lambda a: np.where(np.arange(a.size).reshape(a.shape) == 9, np.nan, a)),
                          _set_data("drude_freq", [1.0, float("inf"), 2.0]), _set_data("e_above_hull", float("nan"))],
    "wrong grid length": [_edit_eps(lambda a: a[:2000])],
    "grid not 0-20 eV": [_edit_eps(lambda a: np.column_stack([np.linspace(0, 40, len(a)), a[:, 1:]]))],
    "negative Drude frequency": [_set_data("drude_freq", [2.0, -0.5, 2.0])],
    "unknown element": [_set_species(0, [{"element": "Xx", "occu": 1}])],
    "Z > 83": [_set_species(0, [{"element": "U", "occu": 1}])],
    "disordered site": [_set_species(0, [{"element": "Cu", "occu": 0.5}, {"element": "Au", "occu": 0.5}]),
                        _set_species(0, [{"element": "Cu", "occu": 0.9}])],
    "no atoms": [lambda e: e["structure"].__setitem__("sites", [])],
    "atoms closer than 0.5 Å": [_too_close_through_boundary, _too_close_to_own_image],
    "non-positive volume": [_flat_lattice],
    "malformed value": [_set_data("eps_inter_re", "not an array"),
                        lambda e: e["structure"]["lattice"].__setitem__("matrix", [[1, 2], [3, 4]])],
}
CASES = [(kind, k) for kind, edits in CSE_BAD.items() for k in range(len(edits))]


@pytest.fixture(scope="module")
def good_source(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    return d, make_cse_source(d / "src", 4, seed=11, prefix="good")


def _with_good(tmp_path, good_source) -> Path:
    src = tmp_path / "src"
    for path in sorted((good_source[0] / "src").rglob("*.json*")):
        dest = src / path.relative_to(good_source[0] / "src")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    return src


def _check_one_quarantined(tmp_path, good_source, kind, bad_path, mat_id):
    assert ingest(tmp_path / "src", tmp_path / "ds") == 3
    [q] = quarantine(tmp_path / "ds")
    assert q["kind"] == kind, q
    assert q["reason"].startswith(kind)
    assert q["source"] == str(bad_path)
    assert q["mat_id"] == mat_id
    assert set(read_rows(tmp_path / "ds")) == set(good_source[1])  # every good record survives


@pytest.mark.parametrize("kind,k", CASES, ids=[f"{kind}-{k}" for kind, k in CASES])
def test_cse_quarantine_reason(tmp_path, good_source, kind, k):
    src = _with_good(tmp_path, good_source)
    rng = np.random.default_rng(k)
    entry = cse_dict(make_structure(rng, 0), "bad-0001", rng)
    CSE_BAD[kind][k](entry)
    bad = write_json(src / "zz" / "bad.json", entry)
    mat_id = entry.get("data", {}).get("mat_id")
    _check_one_quarantined(tmp_path, good_source, kind, bad, mat_id)


def test_malformed_json_is_quarantined(tmp_path, good_source):
    src = _with_good(tmp_path, good_source)
    bad = write_json(src / "broken.json", '{"structure": {"sites": [')
    _check_one_quarantined(tmp_path, good_source, "malformed JSON", bad, None)


def test_unreadable_file_is_quarantined(tmp_path, good_source):
    src = _with_good(tmp_path, good_source)
    bad = src / "corrupt.json.gz"
    bad.write_bytes(b"this is not gzip data")
    _check_one_quarantined(tmp_path, good_source, "unreadable file", bad, None)


def test_duplicate_mat_id_keeps_the_first(tmp_path, good_source):
    src = _with_good(tmp_path, good_source)
    first_id = sorted(good_source[1])[0]
    dup = copy.deepcopy(good_source[1][first_id])
    dup["data"]["drude_freq"] = [9.0, 9.0, 9.0]
    bad = write_json(src / "zz" / "dup.json", dup)  # sorts after the original
    _check_one_quarantined(tmp_path, good_source, "duplicate mat_id", bad, first_id)
    row = read_rows(tmp_path / "ds")[first_id]
    assert row["drude"] == pytest.approx(expected_from_entry(good_source[1][first_id])["drude"], rel=1e-6)


def test_summary_counts_each_reason(tmp_path, good_source, capsys):
    src = _with_good(tmp_path, good_source)
    rng = np.random.default_rng(0)
    for k, (kind, edit) in enumerate([("negative Drude frequency", CSE_BAD["negative Drude frequency"][0]),
                                      ("no atoms", CSE_BAD["no atoms"][0]),
                                      ("no atoms", CSE_BAD["no atoms"][0])]):
        entry = cse_dict(make_structure(rng, 0), f"bad-{k}", rng)
        edit(entry)
        write_json(src / f"bad{k}.json", entry)
    assert ingest(src, tmp_path / "ds") == 3
    out = capsys.readouterr().out
    assert "quarantined 3 records" in out
    lines = dict(line.strip().rsplit(None, 1) for line in out.splitlines() if line.startswith("    "))
    lines = {kind.strip(): n for kind, n in lines.items()}
    assert lines == {"negative Drude frequency": "1", "no atoms": "2"}
    assert read_metadata(tmp_path / "ds")["provenance"]["quarantined"] == {"negative Drude frequency": 1, "no atoms": 2}


def test_all_records_bad_still_writes_quarantine(tmp_path):
    write_json(tmp_path / "src" / "a.json", "[1, 2")
    assert ingest(tmp_path / "src", tmp_path / "ds") == 3
    assert read_metadata(tmp_path / "ds")["counts"] == {"train": 0, "val": 0, "test": 0}
    assert [q["kind"] for q in quarantine(tmp_path / "ds")] == ["malformed JSON"]


# ---------------------------------------------------------------- usage errors


def test_missing_source_exit_2(tmp_path, capsys):
    assert ingest(tmp_path / "nope", tmp_path / "ds") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "nope") in err
    assert not (tmp_path / "ds").exists()


def test_existing_root_is_refused(tmp_path, capsys):
    make_cse_source(tmp_path / "src", 3)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("precious")
    assert ingest(tmp_path / "src", tmp_path / "ds") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err
    assert (tmp_path / "ds" / "keep.txt").read_text() == "precious"
    assert ingest(tmp_path / "src", tmp_path / "ds", "--overwrite") == 0
    assert not (tmp_path / "ds" / "keep.txt").exists() and (tmp_path / "ds" / "quarantine.jsonl").exists()


def test_empty_source_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert ingest(tmp_path / "empty", tmp_path / "ds") == 2
    assert "no JSON" in capsys.readouterr().err


def test_console_router_reaches_ingest(tmp_path):
    from lightning_dielectric.cli import main as cli_main

    make_cse_source(tmp_path / "src", 3)
    assert cli_main(["data", "ingest", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet",
                     "--workers", "1"]) == 0
    assert sum(read_metadata(tmp_path / "ds")["counts"].values()) == 3


# ---------------------------------------------------------------- minimum-image distance


def _pymatgen_min_distance(lattice, positions, reach):
    """Reference: pymatgen's neighbour search (exact for any cell), self-images included."""
    s = Structure(Lattice(lattice), ["Cu"] * len(positions), positions, coords_are_cartesian=True)
    _, _, _, distances = s.get_neighbor_list(reach)
    return distances.min() if len(distances) else np.inf


@pytest.mark.parametrize("seed", range(30))
def test_min_image_distance_matches_neighbour_search_on_skewed_cells(seed):
    rng = np.random.default_rng(seed)
    # Strongly skewed cells: a small diagonal plus large random shear, some cells under the reach.
    lattice = np.diag(rng.uniform(0.8, 4.0, 3)) + np.triu(rng.uniform(-4.0, 4.0, (3, 3)), 1)
    positions = rng.uniform(-0.5, 1.5, (int(rng.integers(1, 6)), 3)) @ lattice
    reach = 2.5
    expected = _pymatgen_min_distance(lattice, positions, reach)
    got = min_image_distance(lattice, positions, reach=reach)
    if expected < reach:
        assert got == pytest.approx(expected, rel=1e-9)
    else:
        assert got == np.inf


# ---------------------------------------------------------------- source → ingest → DataModule batch


def _batches_by_mat_id(root: Path) -> dict[str, dict]:
    from lightning_dielectric.data import DielectricDataModule

    dm = DielectricDataModule(str(root), batch_size=3, cutoff=5.0, threebody_cutoff=4.0)
    out = {}
    for split in SPLITS:
        for batch in getattr(dm, f"{split}_dataloader")():
            ptr = batch.ptr.numpy()
            edge_vec = batch.pos[batch.edge_index[1]] + torch.einsum(
                "ek,ekl->el", batch.cell_offset, batch.cell[batch.batch[batch.edge_index[0]]]
            ) - batch.pos[batch.edge_index[0]]
            assert float(edge_vec.norm(dim=1).max()) <= 5.0 + 1e-4  # graph consistent with cell and positions
            for b, mat_id in enumerate(batch.mat_id):
                nodes = slice(ptr[b], ptr[b + 1])
                out[mat_id] = {
                    "split": split,
                    "atomic_numbers": batch.z[nodes].numpy(),
                    "positions": batch.pos[nodes].numpy(),
                    "lattice": batch.cell[b].numpy(),
                    "eps_re": batch.eps[b, :, 0].numpy(),
                    "eps_im": batch.eps[b, :, 1].numpy(),
                    "drude": float(batch.drude[b]),
                }
    return out


def _assert_batch_matches(got: dict, exp: dict) -> None:
    np.testing.assert_array_equal(got["atomic_numbers"], exp["atomic_numbers"])
    np.testing.assert_allclose(got["positions"], exp["positions"], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got["lattice"], exp["lattice"], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got["eps_re"], exp["eps_re"], rtol=1e-6)
    np.testing.assert_allclose(got["eps_im"], exp["eps_im"], rtol=1e-6, atol=1e-6)
    assert got["drude"] == pytest.approx(exp["drude"], rel=1e-6)


def test_cse_source_to_datamodule_batch(tmp_path):
    entries = make_cse_source(tmp_path / "src", 12, seed=21)
    assert ingest(tmp_path / "src", tmp_path / "ds") == 0
    got = _batches_by_mat_id(tmp_path / "ds")
    assert set(got) == set(entries)
    for mat_id, entry in entries.items():
        _assert_batch_matches(got[mat_id], expected_from_entry(entry))


def test_h5_source_to_datamodule_batch(tmp_path):
    source = make_h5_source(tmp_path / "h5", sizes=(7, 3, 2), seed=22)
    assert ingest(tmp_path / "h5", tmp_path / "ds") == 0
    got = _batches_by_mat_id(tmp_path / "ds")
    assert set(got) == set(source)
    for mat_id, (split, rec) in source.items():
        assert got[mat_id]["split"] == split
        _assert_batch_matches(got[mat_id], rec)
