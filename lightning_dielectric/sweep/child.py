"""``python -m lightning_dielectric.sweep.child PARENT_PID CMD...``: exec CMD so that it dies with the driver
(``PARENT_PID --warm``: a spare that imports the training CLI and waits for its trial, :mod:`.warm`).

The parent-death signal (:mod:`lightning_dielectric.processes`) kills the trial when the driver
is killed, even by SIGKILL, so a resumed sweep never finds an orphaned trial still writing to the
run directory.
"""

from __future__ import annotations

import os
import sys

from lightning_dielectric.processes import die_with_parent
from lightning_dielectric.sweep.warm import WARM, serve


def main(argv: list[str]) -> None:
    parent, cmd = int(argv[0]), argv[1:]
    if not die_with_parent(parent):
        sys.exit(f"sweep trial: driver process {parent} is gone; not starting {cmd[0]}")
    if cmd == [WARM]:
        serve()
        return
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
