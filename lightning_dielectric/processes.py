"""Worker processes: a start method that is safe in a threaded parent, an ordered parallel map,
and children that die with their parent.

Pools start their workers from a *forkserver* (a fresh single-threaded process that imports the
worker's module once and forks each worker from itself), never by forking the caller: the caller
may run threads (Lightning, a rich progress bar, torch's thread pool), and a forked child can
inherit a lock one of them held, such as stderr's, and hang on its first write. Where forkserver is
missing (Windows) workers are spawned.

Parent death: pool workers watch the process that started the pool (``exit_with_parent``; their
OS parent is the forkserver); other children use the kernel's parent-death signal on Linux
(``die_with_parent``: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, kept across ``exec``, fires when the
thread that started the child ends; a no-op elsewhere).
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.context import BaseContext

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Arrange SIGKILL for this process when ``parent`` dies; False if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        return os.getppid() == parent  # the parent may have died before prctl took effect
    return True


def exit_with_parent() -> None:
    """Pool initializer: end this worker as soon as the process that started the pool dies (SIGKILL
    included), so no orphan keeps holding memory or CPU."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the pipe closes
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def default_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pool_context(worker_module: str) -> BaseContext:
    """The multiprocessing context for pools whose tasks live in ``worker_module``.

    forkserver, with the main script (as with spawn, it must guard its work by
    ``if __name__ == "__main__"``) and ``worker_module`` imported once in the server when this
    process starts its server; later pools fork from the same server and import what else they need
    on first use.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", worker_module])
    return ctx


def ordered_map(func: Callable, tasks: Iterable, workers: int) -> Iterator:
    """``map(func, tasks)`` over a process pool, in order, with at most 2 × workers tasks in flight."""
    if workers <= 1:
        yield from map(func, tasks)
        return
    tasks = iter(tasks)
    with pool_context(func.__module__).Pool(workers, initializer=exit_with_parent) as pool:
        pending = deque(pool.apply_async(func, (t,)) for t in itertools.islice(tasks, 2 * workers))
        while pending:
            result = pending.popleft().get()
            for t in itertools.islice(tasks, 1):
                pending.append(pool.apply_async(func, (t,)))
            yield result
