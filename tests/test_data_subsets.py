"""The paper's split as the CSE-JSON default, its published train_<D>.txt subsets, and ``train_rows``.

The paper's conventions are reproduced here in a few lines (its code is not a dependency):
its split shuffles the sorted unique reduced formulas with ``np.random.seed(42);
np.random.shuffle`` and cuts by formula counts (int(0.8 n) train, int(0.1 n) val, rest test);
its subsets are ``random.Random(42).sample(train list, D)``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pymatgen.entries.computed_entries import ComputedStructureEntry
from test_data_ingest import ingest, make_cse_source, read_rows

from lightning_dielectric.data.schema import SPLITS
from lightning_dielectric.data.info import dataset_stats
from lightning_dielectric.data.splits import split_by_formula, split_like_paper
from lightning_dielectric.data.subsets import train_rows
from lightning_dielectric.data.writer import read_metadata, shard_paths


def paper_split(formula_of: dict[str, str]) -> dict[str, str]:
    """mat_id → split name, as the paper's preprocessing assigns them."""
    unique = np.unique(list(formula_of.values()))
    np.random.seed(42)
    np.random.shuffle(unique)
    n_train = int(0.8 * len(unique))
    n_val = n_train + int(0.1 * len(unique))
    split_of_formula = {f: ("train" if k < n_train else "val" if k < n_val else "test") for k, f in enumerate(unique)}
    return {m: split_of_formula[f] for m, f in formula_of.items()}


def paper_subsets(train_list: list[str], sizes: tuple[int, ...]) -> dict[int, list[str]]:
    return {d: random.Random(42).sample(train_list, k=d) for d in sizes}


def stored_train_ids(root: Path) -> list[str]:
    return [m for p in shard_paths(root, "train") for m in pq.read_table(p, columns=["mat_id"])["mat_id"].to_pylist()]


def write_split_files(directory: Path, lists: dict[str, list[str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, ids in lists.items():
        (directory / f"{name}.txt").write_text("".join(f"{m}\n" for m in ids))
    return directory


# ---------------------------------------------------------------- the paper's split


@pytest.mark.parametrize("n_formulas", [1, 2, 9, 10, 11, 57, 300])
def test_split_like_paper_equals_the_papers_recipe(n_formulas):
    rng = np.random.default_rng(n_formulas)
    names = [f"X{k}Y{rng.integers(1, 9)}" for k in range(n_formulas)]
    formulas = list(rng.choice(names, 3 * n_formulas))  # polymorphs: formulas repeat
    formula_of = {f"m-{i}": f for i, f in enumerate(formulas)}
    split = split_like_paper(formulas)
    assert [SPLITS[s] for s in split] == list(paper_split(formula_of).values())
    unique = set(formulas)
    per_split = [{f for f, s in zip(formulas, split) if s == k} for k in range(3)]
    n = len(unique)
    assert [len(f) for f in per_split] == [int(0.8 * n), int(0.1 * n), n - int(0.8 * n) - int(0.1 * n)]


def test_legacy_seed_and_random_state_shuffle_agree():
    """np.random.seed(42); np.random.shuffle(a) and np.random.RandomState(42).shuffle(a) are the same draws."""
    a = np.unique([f"F{k}" for k in range(1000)])
    b = a.copy()
    np.random.seed(42)
    np.random.shuffle(a)
    np.random.RandomState(42).shuffle(b)
    assert (a == b).all() and not (b == np.sort(b)).all()


@pytest.fixture(scope="module")
def source60(tmp_path_factory) -> tuple[Path, dict]:
    src = tmp_path_factory.mktemp("cse60") / "src"
    return src, make_cse_source(src, 60, seed=11)


def test_default_cse_json_split_is_the_papers_for_every_material(tmp_path, source60):
    src, entries = source60
    formula_of = {m: ComputedStructureEntry.from_dict(e).reduced_formula for m, e in entries.items()}
    expected = paper_split(formula_of)
    assert ingest(src, tmp_path / "ds") == 0
    rows = read_rows(tmp_path / "ds")
    assert {m: r["split"] for m, r in rows.items()} == expected
    meta = read_metadata(tmp_path / "ds")
    assert meta["split"] == {"method": "paper", "seed": 42, "fractions": [0.8, 0.1, 0.1]}
    assert meta["training_order_seed"] == 0
    # the fixture tells the two algorithms apart: the balanced split would not match
    balanced = split_by_formula(list(formula_of.values()), seed=0)
    assert [SPLITS[s] for s in balanced] != list(expected.values())


# ---------------------------------------------------------------- published subsets at ingest


@pytest.fixture(scope="module")
def paper_dataset(tmp_path_factory) -> tuple[Path, dict[int, list[str]], list[str]]:
    """A CSE-JSON source ingested with the paper's split files, train_5/10/20.txt and one listed
    material that the source does not hold."""
    base = tmp_path_factory.mktemp("paper")
    entries = make_cse_source(base / "src", 40, seed=4)
    formula_of = {m: ComputedStructureEntry.from_dict(e).reduced_formula for m, e in entries.items()}
    split = paper_split(formula_of)
    lists = {name: sorted(m for m, s in split.items() if s == name) for name in SPLITS}
    lists["train"].append("absent-0001")
    subsets = paper_subsets(lists["train"], (5, 10, 20))
    subsets[20] = [m for m in subsets[20] if m != "absent-0001"][:19] + ["absent-0001"]
    for d, ids in subsets.items():
        lists[f"train_{d}"] = ids
    write_split_files(base / "splits", lists)
    (base / "splits" / "README.txt").write_text("not a list\n")
    assert ingest(base / "src", base / "ds", "--split-files", str(base / "splits")) == 0
    return base / "ds", subsets, lists["train"]


def test_subset_lists_are_stored_with_the_dataset(paper_dataset):
    root, subsets, _ = paper_dataset
    meta = read_metadata(root)
    assert sorted(meta["train_subsets"]) == ["10", "20", "5"]
    assert meta["train_subsets"]["20"]["listed"] == 20 and meta["train_subsets"]["20"]["stored"] == 19
    for d, ids in subsets.items():
        entry = meta["train_subsets"][str(d)]
        assert entry["path"] == f"subsets/train_{d}.txt"
        stored = (root / entry["path"]).read_text().splitlines()
        assert stored == [m for m in ids if m != "absent-0001"]  # listed order, absent material left out
        assert entry["stored"] == len(stored)


def test_train_rows_selects_exactly_the_listed_materials(paper_dataset):
    root, subsets, _ = paper_dataset
    order = stored_train_ids(root)
    for d, ids in subsets.items():
        rows = train_rows(root, d)
        assert rows.dtype == np.int64 and (np.diff(rows) > 0).all()
        assert {order[i] for i in rows} == set(ids) - {"absent-0001"}
    # the fixture tells a stored list from the nested prefix
    assert {order[i] for i in train_rows(root, 10)} != set(order[:10])


def test_data_info_describes_the_listed_subset(paper_dataset):
    root, subsets, _ = paper_dataset
    rows = read_rows(root)
    listed = [m for m in subsets[10] if m in rows]
    stats = dataset_stats(root, train_size=10)
    assert stats["train_subset"] == "subsets/train_10.txt" and stats["splits"]["train"]["materials"] == len(listed)
    drude = sorted(rows[m]["drude"] for m in listed)
    np.testing.assert_allclose(sorted(stats["splits"]["train"]["_drude_values"]), drude, rtol=1e-6)
    assert dataset_stats(root, train_size=7)["train_subset"] == "prefix"


def test_unlisted_train_size_and_none_mean_the_prefix(paper_dataset):
    root, _, _ = paper_dataset
    assert train_rows(root, 7) is None
    assert train_rows(root, None) is None


def test_train_ids_file_selects_any_subset(paper_dataset, tmp_path):
    root, subsets, _ = paper_dataset
    order = stored_train_ids(root)
    chosen = order[3:9][::-1]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(chosen) + "\n\n")
    assert train_rows(root, None, str(path)).tolist() == list(range(3, 9))
    assert train_rows(root, 6, str(path)).tolist() == list(range(3, 9))
    other = tmp_path / "other.txt"  # an explicit file wins over the list stored for the same D
    other.write_text("\n".join(order[-10:]))
    assert train_rows(root, 10, str(other)).tolist() == list(range(len(order) - 10, len(order)))
    with pytest.raises(ValueError) as err:
        train_rows(root, 5, str(path))
    assert str(err.value) == f"{path}: lists 6 mat_ids but train_size is 5"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{first}\nnot-a-material\n", "mat_id 'not-a-material' is not in the training split of"),
        ("{first}\nnope-1\nnope-2\n", "mat_id 'nope-1' (and 1 more) is not in the training split of"),
        ("{first}\n{first}\n", "mat_id '{first}' is listed twice"),
        ("\n\n", "lists no mat_ids"),
    ],
)
def test_bad_train_ids_file_is_a_one_line_error(paper_dataset, tmp_path, content, message):
    root, _, _ = paper_dataset
    first = stored_train_ids(root)[0]
    path = tmp_path / "ids.txt"
    path.write_text(content.format(first=first))
    with pytest.raises(ValueError) as err:
        train_rows(root, None, str(path))
    assert str(err.value).startswith(f"{path}: {message.format(first=first)}") and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'missing.txt'}: cannot read"):
        train_rows(root, None, str(tmp_path / "missing.txt"))


def test_val_material_in_a_subset_list_is_a_usage_error(tmp_path, capsys):
    entries = make_cse_source(tmp_path / "src", 6)
    ids = sorted(entries)
    lists = {"train": ids[:4], "val": ids[4:5], "test": ids[5:], "train_2": [ids[0], ids[4]]}
    write_split_files(tmp_path / "splits", lists)
    assert ingest(tmp_path / "src", tmp_path / "ds", "--split-files", str(tmp_path / "splits")) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{tmp_path / 'splits' / 'train_2.txt'}: mat_id '{ids[4]}' is not in train.txt")
    assert len(err.splitlines()) == 1 and not (tmp_path / "ds").exists()


def test_subset_list_with_other_than_d_materials_is_a_usage_error(tmp_path, capsys):
    entries = make_cse_source(tmp_path / "src", 6)
    ids = sorted(entries)
    write_split_files(tmp_path / "splits", {"train": ids[:4], "val": ids[4:5], "test": ids[5:], "train_3": ids[:2]})
    assert ingest(tmp_path / "src", tmp_path / "ds", "--split-files", str(tmp_path / "splits")) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("train_3.txt: lists 2 mat_ids, expected 3 (the D of its name)")


def test_balanced_split_method_and_summary(tmp_path, source60, capsys):
    src, _ = source60
    assert ingest(src, tmp_path / "ds", "--split-method", "balanced", "--seed", "3") == 0
    assert "(split: balanced, seed 3)" in capsys.readouterr().out
    meta = read_metadata(tmp_path / "ds")
    assert meta["split"] == {"method": "balanced", "seed": 3, "fractions": [0.8, 0.1, 0.1]}
    assert meta["train_subsets"] == {}
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["training_order_seed"] == 3
