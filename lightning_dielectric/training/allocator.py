"""glibc ``malloc`` settings for training processes on CPU.

PyTorch's CPU tensors come straight from ``malloc``. glibc serves every block above its mmap
threshold (at most 32 MiB by default) with a fresh ``mmap`` and unmaps it on ``free``, so an
activation of that size — (rows, K·w) features of a fused network, a large batch's triplets — is
page-faulted in anew at every step. :func:`reuse_freed_blocks` raises the threshold (and the
heap-trim threshold with it), so such blocks come from the heap and are reused from step to step;
peak memory is unchanged, freed memory is kept by the process for its next step. Measured in
docs/benchmarks.md (fused section).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def reuse_freed_blocks(limit: int = 1 << 30) -> bool:
    """Serve blocks of up to ``limit`` bytes from the heap and keep up to ``limit`` free bytes at its
    top (glibc ``mallopt``); False, and nothing changed, where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
