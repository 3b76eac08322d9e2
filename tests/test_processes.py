"""Worker pools are safe to start from a process with threads: workers are not forks of the caller."""

import signal
import subprocess
import sys
import textwrap
import time

import psutil

from lightning_dielectric.processes import ordered_map

WORKER_MODULE = '''
import threading

HELD = threading.Lock()


def try_lock(k):
    """True when this process can take HELD (a forked copy of a held lock never frees)."""
    got = HELD.acquire(timeout=2)
    if got:
        HELD.release()
    return k, got
'''

CALLER = '''
import threading, time
import lockmod
from lightning_dielectric.processes import ordered_map

holder_ready, done = threading.Event(), threading.Event()


def hold():  # a background thread (a progress bar writing to stderr) holds a lock during pool start
    with lockmod.HELD:
        holder_ready.set()
        done.wait()


if __name__ == "__main__":
    threading.Thread(target=hold, daemon=True).start()
    holder_ready.wait()
    print(list(ordered_map(lockmod.try_lock, range(4), 2)))
    done.set()
'''


def test_workers_do_not_inherit_locks_held_by_the_callers_threads(tmp_path):
    (tmp_path / "lockmod.py").write_text(textwrap.dedent(WORKER_MODULE))
    (tmp_path / "caller.py").write_text(textwrap.dedent(CALLER))
    out = subprocess.run([sys.executable, "caller.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([(k, True) for k in range(4)])


def test_ordered_map_keeps_order_with_and_without_a_pool():
    tasks = [str(k) for k in range(9)]
    assert list(ordered_map(int, tasks, 1)) == list(ordered_map(int, tasks, 3)) == list(range(9))


SLOW_MODULE = '''
import time


def slow(k):
    time.sleep(0.5)
    return k
'''

SLOW_CALLER = '''
import slowmod
from lightning_dielectric.processes import ordered_map

if __name__ == "__main__":
    for _ in ordered_map(slowmod.slow, range(1000), 2):
        pass
'''


def test_killed_caller_leaves_no_process_behind(tmp_path):
    (tmp_path / "slowmod.py").write_text(textwrap.dedent(SLOW_MODULE))
    (tmp_path / "caller.py").write_text(textwrap.dedent(SLOW_CALLER))
    proc = subprocess.Popen([sys.executable, "caller.py"], cwd=tmp_path)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while len(family) < 4 and time.monotonic() < deadline:  # forkserver, resource tracker, 2 workers
            family = psutil.Process(proc.pid).children(recursive=True)
            time.sleep(0.2)
        assert len(family) >= 4, f"pool did not start: {family}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(family, timeout=15)
        assert not alive, f"left behind: {[p.cmdline()[-1][:60] for p in alive]}"
    finally:
        proc.kill()
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
