"""Give memory back to the system after bursts of password hashing.

argon2 allocates its whole memory cost (19 MiB by default) for each verification and frees it
right after; glibc keeps such blocks in the hashing thread's arena, so a thread that ever
verified a password holds 19 MiB. Forcing them onto mmap instead (a pinned mmap threshold)
returns them at once but makes every verification fault in 19 MiB anew, which measured here as
12 ms of system time per login. So the memory is kept while logins keep coming, and trimmed once
they stop (``malloc_trim`` after a quiet period, see AccountService).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        function = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_malloc_trim = _load_malloc_trim()


def release_free_memory() -> bool:
    """Return the free memory of every malloc arena to the system (glibc); False elsewhere.

    Blocks (a few ms for a large heap): call it in a worker thread.
    """
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
