"""``training.allocator``: after ``reuse_freed_blocks`` a large block comes from the heap, not mmap."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes
from lightning_dielectric.training.allocator import reuse_freed_blocks
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
def mapped(n):  # bytes held in mmapped blocks while a block of n bytes is allocated
    p = libc.malloc(n); held = libc.mallinfo2().hblkhd; libc.free(p); return held
size = 100 << 20
before = mapped(size)
assert reuse_freed_blocks()
print(before >= size, mapped(size) < size)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_blocks_come_from_the_heap_after_reuse_freed_blocks():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]
