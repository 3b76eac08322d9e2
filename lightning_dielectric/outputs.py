"""Output directories that commands own: refused when they hold someone else's files, replaced
as a whole when they hold the command's own earlier output (so no stale file survives a rerun),
and created with the user's normal permissions (``tempfile.mkdtemp`` alone would give 0700).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputDirError(ValueError):
    """``--out`` is a non-empty directory that the command did not write."""


def check_output_dir(out: Path, marker: str, option: str = "--out") -> None:
    """Raise :class:`OutputDirError` unless ``out`` is absent, empty, or holds ``marker`` (the file
    that every earlier output of the same command has)."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{option} {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise OutputDirError(f"{option} {out}: directory is not empty and holds no earlier output of this "
                             f"command ({marker} missing); choose a new or empty directory")


@contextmanager
def replaced_dir(out: Path, marker: str, option: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``out`` to write into; on success it replaces ``out``
    (after :func:`check_output_dir`), on error it is removed and ``out`` is left as it was."""
    check_output_dir(out, marker, option)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """``tempfile.mkdtemp`` with the permissions ``mkdir`` would give (umask applied, not 0700),
    since the directory is renamed into the final output."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
