"""Chunked, deterministic, resumable generation of the synthetic tight-binding dataset.

Structure i (0-based) is drawn from ``np.random.default_rng([seed, i])``, so every value
depends only on (seed, i) — not on the number of workers or the chunking — and gets
``mat_id = tb-{i+1:06d}``. Chunks of ``chunk_size`` structures are computed in worker
processes and written atomically to ``<out.parent>/.<out.name>.work/chunk-NNNNN.parquet``;
a rerun with the same arguments computes only the missing chunks. When all chunks exist
they are written as the final dataset (split by reduced formula, ``e_above_hull`` null) with
:func:`lightning_dielectric.data.writer.write_dataset`, and the work directory is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.schema import records_to_table
from ..data.writer import DatasetExistsError, write_dataset
from ..processes import exit_with_parent, pool_context
from .hamiltonian import build_tb_model
from .optics import OpticsSettings, optical_response
from .prototypes import random_structure

GENERATOR_VERSION = 2  # 2: s–d basis for groups 3–11 (issue 21)


def material(seed: int, index: int, settings: OpticsSettings = OpticsSettings()) -> dict:
    """The record (schema keys) of structure ``index`` for ``seed``."""
    from pymatgen.core import Composition

    rng = np.random.default_rng([seed, index])
    lattice, numbers, positions, _ = random_structure(rng)
    result = optical_response(build_tb_model(lattice, numbers, positions), settings)
    formula = Composition(_counts(numbers)).reduced_formula
    return {
        "mat_id": f"tb-{index + 1:06d}",
        "formula": formula,
        "e_above_hull": None,
        "lattice": lattice,
        "atomic_numbers": numbers,
        "positions": positions,
        "eps_re": result.eps_re,
        "eps_im": result.eps_im,
        "drude": result.drude,
    }


def _counts(numbers: np.ndarray) -> dict:
    """Element → count of a cell's atomic numbers."""
    from pymatgen.core import Element

    z, c = np.unique(numbers, return_counts=True)
    return {Element.from_Z(int(a)): int(b) for a, b in zip(z, c)}


def _chunk(seed: int, start: int, stop: int, settings: OpticsSettings, path: str) -> int:
    """Compute structures [start, stop) and write them atomically to ``path``; returns the row count."""
    table = records_to_table([material(seed, i, settings) for i in range(start, stop)])
    tmp = f"{path}.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return stop - start


def generation_params(n: int, seed: int, chunk_size: int, settings: OpticsSettings) -> dict:
    """What determines the dataset's content (kept in the work directory and the provenance)."""
    return {"version": GENERATOR_VERSION, "n": n, "seed": seed, "chunk_size": chunk_size, "settings": asdict(settings)}


def finished_dataset(out: Path, params: dict) -> dict | None:
    """The metadata of ``out`` if it is a finished dataset generated with ``params``; None if
    ``out`` does not exist. Raises ``DatasetExistsError`` if it exists with other content."""
    if not out.exists():
        return None
    try:
        meta = json.loads((out / "dataset.json").read_text())
        provenance = meta["provenance"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DatasetExistsError(f"{out}: exists and is not a finished synthetic dataset; "
                                 "choose another --out") from None
    if {k: provenance.get(k) for k in params} != json.loads(json.dumps(params)):
        raise DatasetExistsError(f"{out}: dataset already exists, generated with other arguments "
                                 f"(n={provenance.get('n')}, seed={provenance.get('seed')}); choose another --out")
    return meta


def work_dir(out: Path) -> Path:
    """The chunk directory that belongs to the dataset ``out``."""
    return out.parent / f".{out.name}.work"


def generate(
    n: int,
    seed: int,
    out: str | Path,
    *,
    workers: int = 2,
    chunk_size: int = 100,
    settings: OpticsSettings = OpticsSettings(),
    max_chunks: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict | None:
    """Generate ``n`` structures into the dataset ``out``; returns its metadata.

    ``max_chunks`` limits how many missing chunks this call computes (the rest are left for
    a later call, which then returns the metadata); ``progress(done, total)`` is called with
    structure counts as chunks finish. Raises ``DatasetExistsError`` if ``out`` exists, and
    ``ValueError`` if the work directory belongs to different arguments.
    """
    out = Path(out)
    if n < 1 or chunk_size < 1 or workers < 1:
        raise ValueError(f"n, chunk_size and workers must be positive (got {n}, {chunk_size}, {workers})")
    if out.exists():
        raise DatasetExistsError(f"{out}: dataset already exists (remove it or choose another --out)")
    work = work_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    params = generation_params(n, seed, chunk_size, settings)
    manifest = work / "params.json"
    if manifest.exists():
        if json.loads(manifest.read_text()) != params:
            raise ValueError(f"{work}: unfinished generation with other arguments ({manifest}); delete it or rerun those")
    else:
        manifest.write_text(json.dumps(params, indent=2))

    chunks = [(c, c * chunk_size, min(n, (c + 1) * chunk_size)) for c in range((n + chunk_size - 1) // chunk_size)]
    path = {c: work / f"chunk-{c:05d}.parquet" for c, _, _ in chunks}
    todo = [ch for ch in chunks if not path[ch[0]].exists()]
    done = n - sum(stop - start for _, start, stop in todo)
    if progress:
        progress(done, n)
    if max_chunks is not None:
        todo = todo[:max_chunks]
    if todo:
        done = _run(todo, seed, settings, path, workers, done, n, progress)
    if any(not p.exists() for p in path.values()):
        return None
    meta = write_dataset(
        _read_chunks([path[c] for c, _, _ in chunks]),
        out,
        seed=seed,
        provenance={"source": "lightning_dielectric.synthetic", **params},
    )
    shutil.rmtree(work)
    return meta


def _run(todo, seed, settings, path, workers, done, n, progress) -> int:
    if workers == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # tiny matrices: BLAS threads only add overhead
            for c, start, stop in todo:
                done += _chunk(seed, start, stop, settings, str(path[c]))
                if progress:
                    progress(done, n)
        return done
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(__name__), initializer=init_worker)
    with pool:
        futures = [pool.submit(_chunk, seed, start, stop, settings, str(path[c])) for c, start, stop in todo]
        for future in as_completed(futures):
            done += future.result()
            if progress:
                progress(done, n)
    return done


def init_worker() -> None:
    """Die with the generating process (no orphans holding memory after a SIGKILL); one BLAS thread."""
    exit_with_parent()
    limit_blas_threads()


def limit_blas_threads() -> None:
    """One BLAS thread per worker process: the workers are the parallelism."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _read_chunks(paths: list[Path]) -> Iterator[pa.Table]:
    for p in paths:
        yield pq.read_table(p)
