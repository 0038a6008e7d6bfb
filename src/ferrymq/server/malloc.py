"""glibc malloc settings for a long-running broker.

glibc raises its mmap threshold each time a large block is freed (up to 32
MiB), after which segment-sized buffers (recovery and compaction read whole
segments) come from the heap and fragment it, and every thread that
allocates gets an arena of its own. Both show up as RSS that never comes
back. A fixed threshold and two arenas keep the broker's RSS close to what
it uses (measured with bench/recovery.py: see bench/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["tune_malloc"]

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(mmap_threshold: int = 256 * 1024, arena_max: int = 2) -> bool:
    """Apply the settings on glibc (unless MALLOC_* is set in the environment,
    which wins); returns whether they were applied."""
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_ARENA_MAX, arena_max))
    log.debug("malloc tuning %s", "applied" if ok else "refused")
    return ok
