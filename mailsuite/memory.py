"""Keep the server's memory from ratcheting up after bursts of password hashing.

argon2 allocates its whole memory cost (19 MiB by default) for each verification and frees it
right after. glibc's malloc, seeing a large mmap'ed block freed, raises its mmap threshold
(up to 32 MiB), so the next such block comes from a thread's arena and stays there: every thread
that ever verified a password then holds 19 MiB for good. Fixing the threshold turns that
adjustment off, so big blocks are always mmap'ed and handed back to the system on free.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD = 1024 * 1024  # blocks this big or bigger: mmap, returned to the system on free


def limit_malloc_caching() -> bool:
    """Fix glibc's mmap threshold; True if it was set (False elsewhere, e.g. musl or macOS)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
