"""The capture Maildir's read side for the HTTP API: list, read and delete what was captured.

Every method touches the disk and blocks: the API runs them in threads. Deliveries go in
through the ordinary store (MaildirStore); reading here never takes a lock, since Maildir files
never change: a message is only ever added, renamed new/ -> cur/ (by IMAP or POP3, with flags
after ``:2,``) or unlinked. A message's id is its Maildir key (the name before ``:2,``), the
key the IMAP index and POP3 UIDL use too, so it stays the same wherever the file moves.
Clearing unlinks the files; IMAP and POP3 sessions see them expunged at their next look.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mailsuite.store.index.files import read_header_block

# Maildir keys as this store and IMAP APPEND make them ("<sec>.M<usec>P<pid>Q<n>.<host>,S=<n>"),
# and as other tools do: anything printable that cannot name a path or carry flags.
_KEY = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z.,=_\\-]{0,254}")
_ORDER = re.compile(r"(\d+)\.M(\d+)P\d+[A-Z](\d+)\.")


@dataclass(frozen=True)
class CapturedFile:
    key: str
    path: Path
    size: int
    mtime: float


def valid_key(key: str) -> bool:
    """Can ``key`` be a message id (it becomes a file name only after this check)?"""
    return bool(_KEY.fullmatch(key)) and ".." not in key


class CaptureMailbox:
    """The INBOX of the capture Maildir at ``root``, which may not exist yet (nothing captured)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def files(self) -> list[CapturedFile]:
        """Every captured message, in arrival order."""
        found: dict[str, CapturedFile] = {}
        for sub in ("new", "cur"):  # new first: a file moved to cur/ meanwhile is still seen
            try:
                entries = list(os.scandir(self.root / sub))
            except FileNotFoundError:
                continue
            for entry in entries:
                key = entry.name.partition(":")[0]
                if entry.name.startswith(".") or not valid_key(key):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue  # moved or deleted since the listing
                found[key] = CapturedFile(key, Path(entry.path), stat.st_size, stat.st_mtime)
        return sorted(found.values(), key=_arrival)

    def find(self, key: str) -> Path | None:
        """The file of message ``key`` now (in new/ or cur/), or None."""
        if not valid_key(key):
            return None
        candidate = self.root / "new" / key
        if candidate.is_file():
            return candidate
        try:
            names = os.listdir(self.root / "cur")
        except FileNotFoundError:
            return None
        for name in names:
            if name == key or name.startswith(key + ":"):
                return self.root / "cur" / name
        return None

    def read(self, key: str) -> bytes | None:
        """The whole message ``key`` as stored, or None if there is no such message."""
        for _ in range(3):  # a file renamed new/ -> cur/ between find() and open(): look again
            path = self.find(key)
            if path is None:
                return None
            try:
                return path.read_bytes()
            except FileNotFoundError:
                continue
        return None

    def header_block(self, key: str, path: Path | None = None) -> bytes | None:
        """The header block of message ``key`` (CRLF lines, bounded), or None if there is no
        such message; ``path``: where a listing just saw it."""
        for _ in range(3):
            path = path or self.find(key)
            if path is None:
                return None
            try:
                return read_header_block(path)[0]
            except FileNotFoundError:
                path = None  # renamed new/ -> cur/ meanwhile, or deleted: look again
        return None

    def delete(self, key: str) -> bool:
        """Remove message ``key``; False if there was none."""
        for _ in range(3):
            path = self.find(key)
            if path is None:
                return False
            try:
                path.unlink()
                return True
            except FileNotFoundError:
                continue
        return False

    def clear(self) -> int:
        """Remove every captured message (of the INBOX); returns how many."""
        removed = 0
        for captured in self.files():
            try:
                captured.path.unlink()
                removed += 1
            except FileNotFoundError:
                if self.delete(captured.key):  # renamed into cur/ since the listing
                    removed += 1
        return removed


def _arrival(captured: CapturedFile) -> tuple[int, int, int, float, str]:
    """Our keys begin with the delivery time and a per-process counter; others sort by mtime."""
    match = _ORDER.match(captured.key)
    if match is None:
        return (int(captured.mtime), 0, 0, captured.mtime, captured.key)
    seconds, micros, counter = (int(group) for group in match.groups())
    return (seconds, micros, counter, captured.mtime, captured.key)
