"""glibc's malloc settings for the two ways this library uses CPU memory.

Training with checkpointing frees and re-allocates thousands of multi-megabyte state tensors a
step. glibc raises its mmap threshold each time a large block is freed, after which such tensors
come from the heap and their memory is kept after they die: the resident set grew to ~5x the
live tensors (measured: 862 MB against 154 MB at length 201). ``release_large_blocks`` pins the
threshold at glibc's default, so every large tensor is mmapped and returned when freed.

Long inference is the opposite case: a few state tensors a step, the same few sizes every step,
thousands of steps. With glibc's defaults the heap top is trimmed as soon as they are freed, so
every step faults its pages in afresh: at width 2,000 (batch 2, one thread) 8.7 s of a 21 s
evaluation was system time. ``reuse_freed_blocks`` serves them from the heap and keeps freed
memory for the next step: 0.0 s of system time and half the wall-clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameter numbers from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc accepts on 64-bit systems
KEEP_FREED_BYTES = 1024 * 1024 * 1024  # freed memory kept at the heap top before returning it


def _mallopt(settings: dict[int, int]) -> bool:
    """Apply glibc mallopt settings; False where the C library is not glibc (nothing to do)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return all(bool(libc.mallopt(parameter, value)) for parameter, value in settings.items())
    except (OSError, AttributeError):
        return False


def release_large_blocks() -> bool:
    """Training with checkpointing: pin the mmap threshold, so freed activations go back at once."""
    return _mallopt({M_MMAP_THRESHOLD: DEFAULT_THRESHOLD})


def reuse_freed_blocks() -> bool:
    """Inference: keep freed state tensors' memory for the next step instead of faulting it in again."""
    return _mallopt({M_MMAP_THRESHOLD: MAX_MMAP_THRESHOLD, M_TRIM_THRESHOLD: KEEP_FREED_BYTES})
