"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

On Linux the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) does it; it is
kept across ``exec`` and fires when the thread that started the child ends. Elsewhere this is a
no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Arrange SIGKILL for this process when ``parent`` dies; False if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        return os.getppid() == parent  # the parent may have died before prctl took effect
    return True
