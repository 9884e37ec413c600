"""A message body being received: in memory while small, spilled to a spool file when large.

The SMTP protocol feeds ``write()`` on the reactor thread as DATA streams in; those calls never
fsync (page-cache writes only), so one big message does not stall other clients. After the end of
DATA a worker thread calls ``finalize()``, which makes the file durable, links it into Maildirs
and/or the queue, then ``remove()``s the spool name. Spool files are therefore never the only copy
of acknowledged mail, and ``clean_spool()`` may delete whatever a crash left behind.

Threading contract: ``write()`` and ``discard()`` run on one thread (the reactor), ``finalize()``
and ``remove()`` on a worker. Once ``finalize()`` has been called the spool file belongs to the
worker's job: ``discard()`` (say, on connection loss mid-delivery) then leaves it alone, and the
job must call ``remove()`` when it is done, also on failure.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import BinaryIO

DEFAULT_MEMORY_LIMIT = 256 * 1024

_SUFFIX = ".incoming"
_SEQUENCE = itertools.count()
# Spool directories already created by this process (saves a mkdir per message).
_known_spools: set[Path] = set()

# States of an IncomingMessage.
_RECEIVING = "receiving"
_FINALIZING = "finalizing"
_FINALIZED = "finalized"
_DISCARDED = "discarded"


def clean_spool(spool_dir: Path) -> int:
    """Delete spool files left by a crash; returns how many. Call once at startup.

    Safe because nothing in the spool was ever acknowledged: a 250 follows only once the file
    is linked into a Maildir or the queue.
    """
    removed = 0
    try:
        entries = list(os.scandir(spool_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.endswith(_SUFFIX) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


class IncomingMessage:
    """One message body, received in chunks; see the module docstring for the thread contract."""

    def __init__(self, spool_dir: Path, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self._spool_dir = Path(spool_dir)
        self._memory_limit = memory_limit
        self._buffer = bytearray()
        self._size = 0
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._state = _RECEIVING
        self._removed = False
        # Header lines added after the end of DATA to a message already spilled to a file:
        # (offset, bytes), written into place by finalize() in the worker thread.
        self._inserts: list[tuple[int, bytes]] = []
        # Guards state changes only; never held across I/O that could be slow, so the reactor
        # thread (discard) never waits for a worker's fsync.
        self._lock = threading.Lock()
        # Serialises finalize() calls so a second call returns only once the file is durable.
        self._finalize_lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes passed to write() so far."""
        return self._size

    @property
    def path(self) -> Path | None:
        """The spool file's path, once one was created (it may have been removed since)."""
        return self._path

    def write(self, data: bytes) -> None:
        """Append a chunk; OSError (e.g. disk full) propagates. After discard() data is dropped."""
        if self._state == _DISCARDED:
            self._size += len(data)
            return
        if self._state != _RECEIVING:
            raise RuntimeError("write() after finalize()")
        self._size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._buffer += data
        if len(self._buffer) > self._memory_limit:
            self._spill()

    def insert(self, offset: int, data: bytes) -> None:
        """Put ``data`` at byte ``offset`` of the message (a header added after the end of DATA,
        e.g. Authentication-Results or DKIM-Signature); before finalize(), on the reactor thread.

        In memory this is a cheap splice; a spilled file is rewritten by finalize() in the worker
        (one kernel-side copy), so the reactor never copies a large message.
        """
        with self._lock:
            if self._state != _RECEIVING:
                return
            if self._file is None:
                self._buffer[offset:offset] = data
            else:
                self._inserts.append((offset, data))
            self._size += len(data)

    def snapshot(self) -> bytes:
        """The message as received so far (worker thread, after the end of DATA, before insert()):
        what the DKIM verifier reads. A spilled message is read back from its file."""
        if self._file is None:
            return bytes(self._buffer)
        self._file.flush()
        assert self._path is not None
        return self._path.read_bytes()

    def head(self) -> bytes | None:
        """The header block (through the CRLF before the empty line) of a message still in
        memory, for checks that need nothing else; None if spilled or no empty line (reactor)."""
        if self._file is not None:
            return None
        end = self._buffer.find(b"\r\n\r\n")
        return bytes(self._buffer[: end + 2]) if end >= 0 else None

    def _apply_inserts(self) -> None:
        """Rewrite the spool file with the pending inserts in place (worker thread)."""
        old_file, old_path = self._file, self._path
        assert old_file is not None and old_path is not None
        old_file.flush()
        new_file = self._create_file()
        try:
            # The spool file was opened write-only: read it through a second descriptor.
            with open(old_path, "rb") as reader:
                source, target = reader.fileno(), new_file.fileno()
                position = 0
                for offset, data in sorted(self._inserts, key=lambda item: item[0]):
                    _copy_range(source, target, position, offset - position)
                    os.write(target, data)
                    position = offset
                _copy_range(source, target, position, os.fstat(source).st_size - position)
        except BaseException:
            new_file.close()
            assert self._path is not None
            self._path.unlink(missing_ok=True)
            self._file, self._path = old_file, old_path
            raise
        old_file.close()
        old_path.unlink(missing_ok=True)
        self._file, self._inserts = new_file, []

    def _spill(self) -> None:
        self._file = self._create_file()
        self._file.write(self._buffer)
        self._buffer = bytearray()

    def _create_file(self) -> BinaryIO:
        if self._spool_dir not in _known_spools:
            self._spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _known_spools.add(self._spool_dir)
        recreated = False
        while True:
            # Unique within this process by the counter, across processes by the pid; O_EXCL
            # catches whatever a crashed earlier process left behind (clean_spool removes it).
            path = self._spool_dir / f"{os.getpid()}-{next(_SEQUENCE)}{_SUFFIX}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except FileNotFoundError:
                # The spool directory was removed behind our back: create it again, once.
                if recreated:
                    raise
                recreated = True
                self._spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                continue
            self._path = path
            return os.fdopen(fd, "wb")

    def claim_memory(self) -> bytearray | None:
        """The whole message, if it never left memory; the caller then owns it (worker thread).

        Like finalize() it hands the message to the delivery job (discard() leaves it alone from
        then on); returns None, changing nothing, when the message was spilled to a file.
        """
        with self._lock:
            if self._removed or self._state != _RECEIVING or self._file is not None:
                return None
            self._state = _FINALIZED
            return self._buffer

    def finalize(self, sync: bool = True) -> Path:
        """Write out, fsync and close the spool file; return its path. Idempotent.

        Runs in a worker thread (it fsyncs). ``sync=False`` leaves the fsync to the caller, who
        makes a whole batch of spool files durable at once (safeio.sync_paths). Raises
        RuntimeError if the message was discarded, OSError on I/O failure (the spool file is
        then removed).
        """
        with self._finalize_lock:
            with self._lock:
                if self._removed:
                    raise RuntimeError("finalize() after remove()")
                if self._state == _FINALIZED:
                    assert self._path is not None
                    return self._path
                if self._state != _RECEIVING:
                    raise RuntimeError("finalize() of a discarded message")
                self._state = _FINALIZING
            try:
                if self._file is None:
                    self._spill()
                elif self._inserts:
                    self._apply_inserts()
                assert self._file is not None and self._path is not None
                self._file.flush()
                if sync:
                    os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
            except BaseException:
                self._close_and_unlink()
                with self._lock:
                    self._state = _DISCARDED
                raise
            with self._lock:
                self._state = _FINALIZED
            return self._path

    def remove(self) -> None:
        """Unlink the spool file, if any (after it has been linked elsewhere). Idempotent."""
        with self._lock:
            self._removed = True
            if self._state == _RECEIVING:
                self._state = _DISCARDED
        self._buffer = bytearray()
        self._close_and_unlink()

    def discard(self) -> None:
        """Drop the message (aborted, refused, connection lost). Idempotent.

        Leaves the file alone once finalize() has been called: the delivery job owns it then.
        """
        with self._lock:
            if self._state != _RECEIVING:
                return
            self._state = _DISCARDED
        self._buffer = bytearray()
        self._close_and_unlink()

    def _close_and_unlink(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # flushing the buffer failed (disk full?): the file is going away anyway
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def _copy_range(source: int, target: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes at ``offset`` of fd ``source`` to the position of fd ``target``."""
    while count > 0:
        try:
            done = os.copy_file_range(source, target, count, offset)
        except OSError:
            done = os.write(target, os.pread(source, min(count, 1 << 20), offset))
        if done <= 0:
            raise OSError("short copy while rewriting a spool file")
        offset += done
        count -= done
