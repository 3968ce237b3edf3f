"""Make the C allocator give part-sized buffers back to the system when they are freed.

Every multipart part on the wire is a buffer of the part size inside the CRT. glibc serves big
requests with ``mmap`` and unmaps them on ``free`` -- until the first such free, after which it
raises its mmap threshold (up to 32 MiB) and serves the next parts from the heap, whose freed
memory it keeps. A 512 MiB upload with 40 MiB of parts in flight peaked at 100 MiB of RSS that
way, and at 85 MiB with the threshold fixed (which also stops the raising). Process-wide, so it
is set only once a process uploads a large file.
"""

from __future__ import annotations

import sys

MIB = 1024 * 1024
#: above the 1 MiB reads of the hashing (those stay on the heap), below the smallest part (5 MiB)
MMAP_THRESHOLD = 4 * MIB
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def unmap_freed_parts(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve allocations of ``threshold`` bytes and more by ``mmap`` from now on; whether the
    platform's allocator took the setting (glibc does; elsewhere this does nothing)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here: ~2 ms of imports that a run without a large file need not pay

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
