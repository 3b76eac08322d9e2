"""``python -m lightning_dielectric.sweep.child PARENT_PID CMD...``: exec CMD so that it dies with the driver.

On Linux the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, kept across
``exec``) kills the trial when the driver is killed, even by SIGKILL, so a resumed sweep never
finds an orphaned trial still writing to the run directory. Elsewhere CMD is exec'd as is.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    parent, cmd = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the driver died before prctl took effect
            sys.exit(f"sweep trial: driver process {parent} is gone; not starting {cmd[0]}")
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
