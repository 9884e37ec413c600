"""A user's INBOX Maildir seen as a maildrop: a snapshot of its messages, read and commit.

Protocol-free (POP3 uses it; nothing here knows a command). Every function that touches the disk
blocks: callers run ``Maildrop.scan``, ``Maildrop.open`` and ``Maildrop.commit`` in a thread.

Identity: a message is its Maildir *base name*, the file name up to ``:2,`` (files in ``new/``
usually have no suffix; files in ``cur/`` are ``base:2,FLAGS``), the key the IMAP index uses too.
The base name never changes when another session moves a file from ``new/`` to ``cur/`` or
changes its flags, so a message found at scan time is found again by base name later, wherever
it went. Message files are never rewritten: reading marks nothing, ``commit()`` only unlinks and
renames.

Wire form: a POP3 client counts "octets" of the message with CRLF line endings. The file name
usually says: ``,W=<n>`` is that size by the convention Dovecot introduced, and ``,S=<n>`` on a
file our own MDA delivered is too (it stores CRLF only, ending with CRLF). So a login, like
Dovecot's, reads directories, not files. A file put there by other means without those fields
may hold bare LF: it is measured by running it through ``CRLFNormalizer`` (the same code that
prepares what is sent), once per process and inode, since Maildir files never change.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from mailsuite.safeio import fsync_dir
from mailsuite.store.names import (
    INFO_SEPARATOR,
    SEEN,
    TIME_PREFIX,
    crlf_size_from_name,
    split_info,
    uidl_for,
)

READ_CHUNK = 64 * 1024


class MessageGone(Exception):
    """The message was removed since the snapshot (expunged by another session)."""


class CRLFNormalizer:
    """Turns a byte stream into CRLF lines, chunk by chunk, as POP3 sends it.

    Bare LF becomes CRLF (a CR ending one chunk and an LF starting the next form one CRLF);
    CRLF and bare CR pass unchanged; a non-empty stream that does not end with a line break
    gets a final CRLF, so the message is whole lines and the ".CRLF" terminator can follow.
    """

    def __init__(self) -> None:
        self._last = b""  # the last byte seen ("" before any input)

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        head = b""
        if self._last == b"\r" and chunk[:1] == b"\n":
            head, chunk = b"\n", chunk[1:]
        self._last = chunk[-1:] if chunk else b"\n"
        if b"\n" not in chunk:
            return head + chunk
        return head + chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        return b"" if self._last in (b"", b"\n") else b"\r\n"


def wire_size_of(path: Path | str) -> int:
    """Octets of the file as POP3 sends it (CRLF lines), before dot-stuffing. Reads the file."""
    normalizer = CRLFNormalizer()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            size += len(normalizer.feed(chunk))
    return size + len(normalizer.finish())


class WireSizeCache:
    """Wire sizes by (device, inode, size, mtime): Maildir files never change once delivered,
    so each file is read once per process, not at every login. Thread-safe, bounded."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self._max = max_entries
        self._sizes: dict[tuple[int, int, int, int], int] = {}
        self._lock = threading.Lock()

    def size(self, path: Path | str, stat: os.stat_result) -> int:
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._sizes.get(key)
        if known is not None:
            return known
        size = wire_size_of(path)
        with self._lock:
            if len(self._sizes) >= self._max:
                self._sizes.clear()
            self._sizes[key] = size
        return size

    def __len__(self) -> int:
        return len(self._sizes)


@dataclass(frozen=True)
class DropMessage:
    """One message of a snapshot: where it was at scan time and its wire size."""

    base: str  # Maildir base name: the message's identity, shared with IMAP
    subdir: str  # "new" or "cur" at scan time
    name: str  # file name at scan time
    size: int  # octets as sent by RETR (CRLF lines), before dot-stuffing
    order: tuple[int, str] = field(compare=False, repr=False, default=(0, ""))

    @property
    def uidl(self) -> str:
        return uidl_for(self.base)

    @property
    def flags(self) -> str | None:
        return split_info(self.name)[1]


@dataclass
class CommitResult:
    deleted: int = 0  # files unlinked by this commit
    already_gone: int = 0  # marked messages somebody else removed first
    failed: list[str] = field(default_factory=list)  # base names that could not be deleted
    seen_failed: list[str] = field(default_factory=list)  # could not be marked \Seen


class Maildrop:
    """A snapshot of the INBOX Maildir at ``root`` (which may not exist yet: then it is empty).

    Messages are in delivery order (oldest first); new mail arriving later is not added: POP3
    shows the maildrop as it was at login (RFC 1939).
    """

    def __init__(self, root: Path, messages: list[DropMessage]) -> None:
        self.root = Path(root)
        self.messages = messages

    @classmethod
    def scan(cls, root: Path, sizes: WireSizeCache | None = None) -> Maildrop:
        """List ``new/`` and ``cur/`` and size each message (from its name when it says, else
        by reading it; see the module docstring). Blocking."""
        sizes = sizes if sizes is not None else WireSizeCache()
        found: dict[str, DropMessage] = {}
        for subdir in ("cur", "new"):  # cur first: if a base is in both, keep the cur/ file
            for entry in _entries(Path(root) / subdir):
                name = entry.name
                base = name.partition(":")[0]
                if not base or base in found:
                    continue
                size = crlf_size_from_name(base)
                time_prefix = TIME_PREFIX.match(name)
                mtime_ns = 0
                if size is None or time_prefix is None:
                    try:
                        stat = entry.stat(follow_symlinks=False)
                        if size is None:
                            size = sizes.size(entry.path, stat)
                    except FileNotFoundError:
                        continue  # expunged by another session while we looked
                    mtime_ns = stat.st_mtime_ns
                found[base] = DropMessage(
                    base, subdir, name, size, _order_key(name, mtime_ns, time_prefix)
                )
        messages = sorted(found.values(), key=lambda m: m.order)
        return cls(Path(root), messages)

    @property
    def total_size(self) -> int:
        return sum(m.size for m in self.messages)

    def path_of(self, message: DropMessage) -> Path:
        return self.root / message.subdir / message.name

    def locate(self, message: DropMessage) -> DropMessage:
        """The message where it is now (another session may have renamed it). Blocking.

        Raises MessageGone when no file with its base name is left.
        """
        if os.path.lexists(self.path_of(message)):
            return message
        new = self.root / "new" / message.base
        if os.path.lexists(new):
            return replace(message, subdir="new", name=message.base)
        for subdir in ("cur", "new"):
            for entry in _entries(self.root / subdir):
                if split_info(entry.name)[0] == message.base:
                    return replace(message, subdir=subdir, name=entry.name)
        raise MessageGone(message.base)

    def open(self, message: DropMessage) -> BinaryIO:
        """Open the message for reading, wherever it is now. Blocking; MessageGone if removed."""
        for _attempt in range(3):
            try:
                return open(self.path_of(self.locate(message)), "rb")
            except FileNotFoundError:
                continue  # renamed between locate() and open(): look again
        raise MessageGone(message.base)

    def commit(
        self, deleted: Iterable[DropMessage], seen: Iterable[DropMessage] = ()
    ) -> CommitResult:
        """Unlink ``deleted``, mark ``seen`` (new/ -> cur/, flag S) and fsync. Blocking.

        A message some other session already removed counts as deleted. Errors are collected,
        not raised, so one bad file does not keep the others from being committed.
        """
        result = CommitResult()
        deleted = list(deleted)
        deleted_bases = {m.base for m in deleted}
        for message in deleted:
            self._delete(message, result)
        for message in seen:
            if message.base not in deleted_bases and not self._mark_seen(message):
                result.seen_failed.append(message.base)
        for subdir in ("new", "cur"):
            try:
                fsync_dir(self.root / subdir)
            except FileNotFoundError:
                pass
        return result

    def _delete(self, message: DropMessage, result: CommitResult) -> None:
        for _attempt in range(3):
            try:
                current = self.locate(message)
                os.unlink(self.path_of(current))
            except MessageGone:
                result.already_gone += 1
                return
            except FileNotFoundError:
                continue  # renamed under us: locate again
            except OSError:
                result.failed.append(message.base)
                return
            result.deleted += 1
            return
        result.failed.append(message.base)

    def _mark_seen(self, message: DropMessage) -> bool:
        for _attempt in range(3):
            try:
                current = self.locate(message)
            except MessageGone:
                return True  # nothing left to mark
            flags = current.flags or ""
            if current.subdir == "cur" and SEEN in flags:
                return True
            new_flags = "".join(sorted(set(flags + SEEN)))
            target = self.root / "cur" / f"{current.base}{INFO_SEPARATOR}{new_flags}"
            try:
                os.rename(self.path_of(current), target)
                return True
            except FileNotFoundError:
                if not (self.root / "cur").is_dir():
                    return False
                continue
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                return False
        return False


def _entries(directory: Path) -> list[os.DirEntry]:
    """Regular, non-hidden files of ``directory``; none if it does not exist."""
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except FileNotFoundError:
        return []
    return [e for e in entries if not e.name.startswith(".") and e.is_file(follow_symlinks=False)]


def _order_key(name: str, mtime_ns: int, match: re.Match[str] | None = None) -> tuple[int, str]:
    """Delivery order: the time in the Maildir name (to the microsecond), else the file's mtime.

    ``match`` is ``TIME_PREFIX.match(name)`` when the caller has it already.
    """
    match = match or TIME_PREFIX.match(name)
    if match:
        micros = int(match.group(1)) * 1_000_000 + int(match.group(2) or 0)
    else:
        micros = mtime_ns // 1000
    return (micros, name)
