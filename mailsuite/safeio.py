"""Small durable-file primitives shared by the store and the queue.

A mail server may acknowledge a message only once it survives a power cut, and on POSIX that
needs two things: the file's data fsync'ed, and the directory holding its name fsync'ed too.
These helpers make both explicit so callers cannot forget the second half.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

_COPY_CHUNK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (created, linked, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_syncfs = _load_syncfs()


def syncfs_available() -> bool:
    """Whether this system has syncfs(2) (Linux)."""
    return _syncfs is not None


def _syncfs_fd(fd: int) -> None:
    if _syncfs(fd) != 0:  # type: ignore[misc]
        error = ctypes.get_errno()
        raise OSError(error, f"syncfs: {os.strerror(error)}")


def sync_paths(
    files: Iterable[Path] = (), directories: Iterable[Path] = (), use_syncfs: bool = True
) -> None:
    """Make ``files`` (their data) and ``directories`` (their entries) durable at once.

    With syncfs(2), one call per filesystem holding them: the kernel writes back every dirty
    page first and then commits the journal once, so a batch of N new messages costs one journal
    commit instead of N. Without it (or ``use_syncfs=False``) each one is fsync'ed in turn.
    """
    files, directories = list(files), list(directories)
    if use_syncfs and _syncfs is not None:
        # Files of one directory share its filesystem: look at each directory once.
        seen = dict.fromkeys([*directories, *(Path(f).parent for f in files)])
        done: set[int] = set()
        for directory in seen:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                device = os.fstat(fd).st_dev
                if device not in done:
                    _syncfs_fd(fd)
                    done.add(device)
            finally:
                os.close(fd)
        return
    for path in dict.fromkeys([*files, *directories]):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def makedirs_durable(path: Path, mode: int = 0o700) -> bool:
    """Create ``path`` and any missing parents, fsync'ing each new directory's parent.

    Returns True when something was created. A directory that another thread or process creates
    at the same moment counts as existing.
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    created = False
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        fsync_dir(directory.parent)
        created = True
    return created


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is written (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def temp_name(directory: Path, name: str) -> Path:
    """A hidden, unique sibling name for writing ``name`` before renaming it into place."""
    return directory / f".{name}.{secrets.token_hex(6)}.tmp"


def write_file_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o600,
    sync_dir: bool = True,
    prepare: Callable[[int], None] | None = None,
) -> None:
    """Replace ``path`` with ``data`` all at once: temp file, fsync, rename, fsync directory.

    Readers see either the old content or the new one, never a partial file, even after a crash.
    ``prepare(fd)`` runs on the new file before anything is written (its owner, its mode).
    """
    tmp = temp_name(path.parent, path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            if prepare is not None:
                prepare(fd)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def copy_file_synced(source: Path, dest: Path, mode: int = 0o600) -> None:
    """Copy ``source`` to the new file ``dest`` (which must not exist) and fsync it.

    The directory entry is not fsync'ed: the caller renames or syncs the directory itself.
    """
    with open(source, "rb") as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            try:
                while chunk := src.read(_COPY_CHUNK):
                    write_all(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
