"""Warm trial processes: a sweep worker's next trial process is started while its current trial
runs, so the next trial finds the training CLI (torch, Lightning, PyG: about 7 s on 2 cores)
already imported.

A spare is ``python -m lightning_dielectric.sweep.child PARENT_PID --warm``: it dies with the
driver like every trial process, imports :mod:`lightning_dielectric.training.cli`, then waits for
one line on stdin, ``{"argv": [...], "log": PATH}``, and runs ``lightning ARGV`` in itself, with
its output appended to PATH (after whatever the imports printed). End of input without a line
(the worker has no more trials) ends it at once. The trial is the same computation a cold
``python -m lightning_dielectric ARGV`` performs: nothing it computes depends on when its modules
were imported, and its environment is the worker's, fixed before the spare starts.

Only single-process trials run warm: Lightning's DDP launcher starts its other ranks by re-running
the script it was started as, which a spare is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WARM = "--warm"


class Spare:
    """A trial process importing the training CLI ahead of its trial, with environment ``env``."""

    def __init__(self, env: dict[str, str]) -> None:
        # Anonymous, read-write: the spare copies what its imports printed into its trial's log.
        with tempfile.TemporaryFile() as early:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lightning_dielectric.sweep.child", str(os.getpid()), WARM],
                stdin=subprocess.PIPE, stdout=early, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )

    def hand(self, argv: list[str], log: Path) -> subprocess.Popen | None:
        """Run ``lightning ARGV`` in this process, output appended to ``log``; None if it is gone."""
        if self.proc.poll() is not None:
            return None
        try:
            self.proc.stdin.write((json.dumps({"argv": argv, "log": str(log)}) + "\n").encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            return None
        return self.proc

    def close(self) -> None:
        """End an unused spare (it exits on end of input)."""
        if self.proc.stdin.closed:
            return
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve() -> None:
    """The spare's side: import the CLI, wait for the trial, run it here (exit status as ``lightning``'s)."""
    from lightning_dielectric.training import cli

    line = sys.stdin.readline()
    if not line:
        return
    job = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    os.lseek(1, 0, os.SEEK_SET)
    early = b"".join(iter(lambda: os.read(1, 1 << 16), b""))
    fd = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, early)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = [str(Path(cli.__file__).parents[1] / "__main__.py"), *job["argv"]]  # as `python -m lightning_dielectric`
    cli.main(job["argv"])
