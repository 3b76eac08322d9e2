"""Train/val/test assignment and the nested order of training rows.

Splits are by unique reduced formula, so no formula appears in two splits (polymorphs of one
composition stay together). Two algorithms (``SPLIT_METHODS``):

- ``paper`` (:func:`split_like_paper`): the paper's own split, cut by formula counts.
- ``balanced`` (:func:`split_by_formula`): cut by material counts, so the split sizes are close to
  the fractions of the materials.

Training rows are stored in a seeded random order so that the training subset of size D is
simply the first D rows: D1 < D2 implies subset(D1) ⊂ subset(D2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import SPLITS

PAPER_TRAIN_SIZES = tuple(2500 * 2**k for k in range(7))  # 2,500 … 160,000
SPLIT_METHODS = ("paper", "balanced")
PAPER_SPLIT_SEED = 42


@dataclass(frozen=True)
class SplitRule:
    """The formula split of rows that neither split files nor the source assign: ``method`` (one of
    ``SPLIT_METHODS``), its ``seed`` and the (train, val, test) ``fractions`` of the rows."""

    method: str
    seed: int
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    @classmethod
    def choose(cls, method: str, seed: int | None, fractions=(0.8, 0.1, 0.1), *, default_seed: int = 0) -> SplitRule:
        """The rule for ``method``; without ``seed`` the paper's 42 for ``paper``, else ``default_seed``."""
        if method not in SPLIT_METHODS:
            raise ValueError(f"unknown split method {method!r} (choose from {', '.join(SPLIT_METHODS)})")
        if seed is None:
            seed = PAPER_SPLIT_SEED if method == "paper" else default_seed
        return cls(method, seed, tuple(fractions))

    def split(self, formulas: list[str]) -> np.ndarray:
        """Each row's split index (0 train, 1 val, 2 test) from its reduced formula."""
        splitter = split_like_paper if self.method == "paper" else split_by_formula
        return splitter(formulas, self.fractions, self.seed)


def _check_fractions(fractions: tuple[float, float, float]) -> None:
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")


def split_like_paper(
    formulas: list[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = PAPER_SPLIT_SEED
) -> np.ndarray:
    """Assign each row a split index (0 train, 1 val, 2 test) exactly as the paper's preprocessing.

    The n sorted unique formulas (``np.unique``) are shuffled in place by NumPy's legacy
    Mersenne-Twister generator, ``np.random.RandomState(seed).shuffle`` (the same draws as the
    paper's ``np.random.seed(seed); np.random.shuffle(...)``), then cut by formula counts: the
    first ``int(fractions[0] * n)`` formulas are train, the next ``int(fractions[1] * n)`` val,
    the rest test.
    """
    _check_fractions(fractions)
    uniq, inverse = np.unique(np.asarray(formulas, dtype=str), return_inverse=True)
    shuffled = uniq.copy()
    np.random.RandomState(seed).shuffle(shuffled)
    rank = np.empty(len(uniq), dtype=np.int64)  # position of each sorted formula in the shuffle
    rank[np.searchsorted(uniq, shuffled)] = np.arange(len(uniq))
    n_train = int(fractions[0] * len(uniq))
    n_val = int(fractions[1] * len(uniq))
    formula_split = np.searchsorted([n_train, n_train + n_val], rank, side="right").astype(np.int8)
    return formula_split[inverse.reshape(-1)]


def split_by_formula(
    formulas: list[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> np.ndarray:
    """The ``balanced`` split: each row's split index (0 train, 1 val, 2 test) by its reduced formula.

    Unique formulas are shuffled with ``seed`` and taken in that order; a formula goes to the
    split whose cumulative material count it falls in, so the split sizes are close to
    ``fractions`` of the materials (not of the formulas).
    """
    _check_fractions(fractions)
    uniq, inverse, counts = np.unique(np.asarray(formulas, dtype=object), return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    start = np.cumsum(counts[order]) - counts[order]  # materials before each formula
    bounds = np.array([fractions[0], fractions[0] + fractions[1]]) * len(formulas)
    formula_split = np.empty(len(uniq), dtype=np.int8)
    formula_split[order] = np.searchsorted(bounds, start, side="right")
    return formula_split[inverse]


def read_split_files(directory: str | Path) -> dict[str, int]:
    """Read ``train.txt``, ``val.txt``, ``test.txt`` (one mat_id a line) into mat_id → split index."""
    directory = Path(directory)
    out: dict[str, int] = {}
    for index, name in enumerate(SPLITS):
        path = directory / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split file missing (need train.txt, val.txt, test.txt)")
        for line in path.read_text().splitlines():
            mat_id = line.strip()
            if not mat_id:
                continue
            if mat_id in out:
                raise ValueError(f"{path}: mat_id {mat_id!r} is listed in two split files")
            out[mat_id] = index
    return out


def training_order(n: int, seed: int) -> np.ndarray:
    """Seeded permutation of the n training rows; the first D rows form the nested subset of size D."""
    return np.random.default_rng(seed).permutation(n)
