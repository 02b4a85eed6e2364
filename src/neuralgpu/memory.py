"""Keep glibc from holding on to freed activation memory on the CPU.

glibc raises its mmap threshold each time a large block is freed, after which multi-megabyte
state tensors come from the heap and their memory is kept after they die. With checkpointing,
which frees and re-allocates thousands of such tensors a step, the resident set then grew to
~5x the live tensors (measured: 862 MB against 154 MB at length 201). Fixing the threshold at
glibc's default sends every large tensor to mmap, which returns its memory when it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt parameter number from glibc's malloc.h
DEFAULT_THRESHOLD = 128 * 1024


def release_large_blocks() -> bool:
    """Pin glibc's mmap threshold; False where the C library is not glibc (nothing to do)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD))
    except (OSError, AttributeError):
        return False
