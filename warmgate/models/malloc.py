"""glibc malloc tuned so that memory ONNX Runtime frees goes back to the kernel.

With the CPU arena shrinking (or off), ORT frees each run's activation buffers to malloc. glibc
keeps freed memory in per-thread heaps (up to 8 × cores of them, 64 MB each), and its dynamic
mmap threshold climbs to 32 MB after the first large frees, so buffers of a big shape stay
resident forever: the served MiniLM held 337 MB of anonymous memory in six such heaps. A fixed
mmap threshold puts every large buffer in its own mapping, returned on ``free``; two arenas cap
the per-thread heaps. The cost is a page fault per page of large buffers on each run
(``scripts/bench_memory.py`` measures it).

``mallopt`` is called at run time, so no environment variable has to be set before the process
starts; elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("warmgate.models.malloc")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENAS = 2


def return_freed_memory() -> bool:
    """Apply the settings above; True when glibc took them."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(
        mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_BYTES),
            (M_ARENA_MAX, ARENAS),
        )
    )
    if ok:
        log.debug("malloc: mmap threshold %d bytes, %d arenas", MMAP_THRESHOLD_BYTES, ARENAS)
    return ok
