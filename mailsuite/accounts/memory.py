"""Give memory back to the system after password hashing.

argon2 allocates its whole memory cost (19 MiB by default) for each verification and frees it
right after. In a thread's own glibc arena that block stays at the top of the arena's heap, and
neither free() nor malloc_trim() shrinks the top of a non-main arena: every thread that ever
verified a password kept 19 MiB (PSS 53 -> 92 MB after a burst of submission logins, whatever
the quiet period). With one arena for the whole process (``use_one_malloc_arena``, called before
any worker thread starts) the block is returned as soon as it is freed, at no measurable cost per
verification (24 ms either way); Python's own small-object allocator does not use glibc arenas,
so the threads hardly share a lock. Forcing the blocks onto mmap instead (a pinned mmap
threshold) also returns them, but cost 12 ms of system time per login. ``release_free_memory``
(``malloc_trim``) still runs after a quiet period for whatever fragmentation is left.
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

_M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def use_one_malloc_arena() -> bool:
    """Make every thread allocate from glibc's main arena; False if not glibc.

    Effective for threads that have not allocated yet: call it before thread pools start.
    """
    if _malloc_trim is None:
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    return bool(libc.mallopt(_M_ARENA_MAX, 1))


def release_free_memory() -> bool:
    """Return the free memory of every malloc arena to the system (glibc); False elsewhere.

    Blocks (a few ms for a large heap): call it in a worker thread.
    """
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
