"""Delivery journal: acknowledge a lone message after one fsync, link it into Maildirs after.

Putting a new file into a Maildir durably costs two journal commits on any POSIX filesystem:
fsync of its data, then fsync of ``new/`` for its name. Postfix acknowledges after one (its queue
file) and delivers later; this does the same for a message whose batch is just itself:

1. ``take()`` hands out a spool file created in advance, whose name is already durable (the pool
   is refilled in bulk: 64 files, one directory fsync);
2. ``record()`` writes the message into it, puts the envelope (target Maildirs and file names,
   size, CRC-32) in an extended attribute of the same inode and fsyncs the file once: data, size
   and envelope are durable together, and the SMTP server may answer 250;
3. the caller links the file into each ``new/`` (visible at once to IMAP and POP3), and later,
   off the client's critical path, syncs those directories and ``settle()``s the entries.

After a crash, ``recover()`` finishes whatever step 3 left undone: an entry whose envelope and
CRC check out is linked into each target Maildir that does not already hold it (by name in
``new/``, or ``cur/`` with flags), then removed. An entry without a valid envelope was never
acknowledged and is dropped. As with Postfix, a crash in the instant between a durable link and
the removal of its entry can deliver a message twice; it can never lose one.

Needs user extended attributes (ext4, XFS, btrfs, tmpfs have them); ``available()`` says whether
this spool directory does, and callers fall back to the two-commit path when it does not.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from twisted.logger import Logger

from mailsuite.safeio import fsync_dir, makedirs_durable, write_all

log = Logger(namespace="mailsuite.store")

ATTRIBUTE = "user.mailsuite.envelope"
POOL_SIZE = 64
MAX_TARGETS = 16  # keeps the attribute far below the 4 KiB an ext4 inode block allows
_SUFFIX = ".journal"

Target = tuple[str, str]  # (address, Maildir key)
Deliver = Callable[[Path, str, str], Path]  # (file, address, key) -> the new/ dir it went to


class DeliveryJournal:
    """Pool of pre-created spool files plus the record/recover protocol above (thread-safe)."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        self._lock = threading.Lock()
        self._pool: list[Path] = []
        self._sequence = itertools.count()
        self._prefix = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._available: bool | None = None

    @property
    def directory(self) -> Path:
        return self._directory

    def available(self) -> bool:
        """Whether the spool's filesystem keeps user extended attributes (probed once)."""
        if self._available is None:
            self._available = self._probe()
        return self._available

    def _probe(self) -> bool:
        if not hasattr(os, "setxattr"):
            return False
        try:
            makedirs_durable(self._directory)
            probe = self._directory / f".probe-{self._prefix}"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.setxattr(fd, ATTRIBUTE, b"{}")
                return os.getxattr(fd, ATTRIBUTE) == b"{}"
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError:
            return False

    def take(self) -> Path:
        """An empty spool file whose directory entry is already durable."""
        with self._lock:
            if not self._pool:
                self._refill()
            return self._pool.pop()

    def release(self, path: Path) -> None:
        """Give back an entry from take() that was not used."""
        with self._lock:
            self._pool.append(path)

    def _refill(self) -> None:
        makedirs_durable(self._directory)
        created = []
        for _ in range(POOL_SIZE):
            path = self._directory / f"{self._prefix}-{next(self._sequence)}{_SUFFIX}"
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            created.append(path)
        fsync_dir(self._directory)
        created.reverse()  # pop() hands them out in creation order
        self._pool.extend(created)

    def record(self, path: Path, data: bytes | bytearray, targets: Iterable[Target]) -> None:
        """Write ``data`` and its envelope into ``path`` (from take()) and fsync: durable."""
        envelope = {
            "size": len(data),
            "crc32": zlib.crc32(data),
            "targets": [list(target) for target in targets],
        }
        if not envelope["targets"] or len(envelope["targets"]) > MAX_TARGETS:
            raise ValueError("a journal entry needs 1 to 16 targets")
        fd = os.open(path, os.O_WRONLY)
        try:
            write_all(fd, data)
            os.setxattr(fd, ATTRIBUTE, json.dumps(envelope, separators=(",", ":")).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def settle(self, paths: Iterable[Path]) -> None:
        """Remove entries whose Maildir links are durable (after the new/ directories' sync)."""
        for path in paths:
            try:
                os.removexattr(path, ATTRIBUTE)  # the Maildir copies share this inode
            except OSError:
                pass
            path.unlink(missing_ok=True)

    def recover(self, deliver: Deliver) -> int:
        """Finish the deliveries a crash interrupted (startup, before listening); returns them.

        ``deliver(file, address, key)`` links ``file`` into the INBOX of ``address`` as ``key``
        unless it holds that key already, and returns the ``new/`` directory to sync.
        """
        try:
            entries = sorted(os.scandir(self._directory), key=lambda e: e.name)
        except FileNotFoundError:
            return 0
        finished: list[Path] = []
        new_dirs: dict[Path, None] = {}
        for entry in entries:
            if not entry.name.endswith(_SUFFIX):
                continue
            path = Path(entry.path)
            try:
                directories = self.replay(path, deliver)
            except ValueError as exc:  # a target the store refuses: keep the entry, for a person
                log.error("journal entry {path} not delivered: {why}", path=str(path), why=exc)
                continue
            if directories is None:
                path.unlink(missing_ok=True)  # never acknowledged: empty, partial or settled
                continue
            new_dirs.update(dict.fromkeys(directories))
            finished.append(path)
        for directory in new_dirs:
            fsync_dir(directory)
        self.settle(finished)
        return len(finished)

    @staticmethod
    def replay(path: Path, deliver: Deliver) -> list[Path] | None:
        """deliver() the entry to each of its targets; the new/ dirs to sync, None if invalid."""
        targets = _valid_targets(path)
        if targets is None:
            return None
        return [deliver(path, address, key) for address, key in targets]


def _valid_targets(path: Path) -> list[Target] | None:
    """The entry's targets if its envelope is present and its data matches it, else None."""
    try:
        raw = os.getxattr(path, ATTRIBUTE)
        envelope = json.loads(raw)
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(envelope, dict) or envelope.get("size") != len(data):
        return None
    if envelope.get("crc32") != zlib.crc32(data):
        return None
    targets = envelope.get("targets")
    if not isinstance(targets, list) or not targets:
        return None
    result = []
    for target in targets:
        if not isinstance(target, list) or len(target) != 2:
            return None
        if not all(isinstance(part, str) for part in target):
            return None
        result.append((target[0], target[1]))
    return result
