"""A user's folders as a Maildir++ tree: INBOX is the root, ``Sent`` is ``<root>/.Sent``,
``a/b`` is ``<root>/.a.b``.

Folder names are Unicode with ``/`` as the hierarchy separator. Each component becomes part of a
directory name: ``%`` and ``.`` are percent-escaped (``.`` is Maildir++'s own separator), then
the whole is modified UTF-7, as Courier and Dovecot write it. Every folder directory therefore
starts with ``.`` and lives directly in the root, so no name can reach ``tmp``/``new``/``cur``
of INBOX or leave the user's directory; names that look like an attempt to (``..``, ``tmp``,
empty components, control characters) are refused anyway, so the answer is a clear ``NO``.

Thread-safe: mutations of one user's tree are serialised by a per-root lock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from zope.interface import implementer

from mailsuite.safeio import fsync_dir, makedirs_durable, write_file_atomic
from mailsuite.store import mutf7
from mailsuite.store.interfaces import IFolders

SEPARATOR = "/"
INBOX = "INBOX"
SUBDIRS = ("tmp", "new", "cur")
SUBSCRIPTIONS_FILE = "subscriptions"
MAX_NAME_BYTES = 200  # a directory name must stay under NAME_MAX (255) with room to spare
MAX_DEPTH = 16

# RFC 6154 special-use folders created on first login (name -> attribute).
SPECIAL_USE: dict[str, str] = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}

_RESERVED_COMPONENTS = {"tmp", "new", "cur", ".", ".."}
_DELETED_PREFIX = "..deleted-"


class FolderError(Exception):
    """A folder operation that cannot be done; str() is a sentence for the client."""


class FolderNameError(FolderError):
    """The name is unsafe or malformed."""


class FolderExists(FolderError):
    pass


class FolderNotFound(FolderError):
    pass


@dataclass(frozen=True)
class FolderInfo:
    name: str
    path: Path
    selectable: bool  # False for a parent that exists only because it has children (\Noselect)
    has_children: bool
    special_use: str | None


def normalize_name(name: str) -> str:
    """Validate a Unicode folder name; INBOX (any case) as the first component becomes 'INBOX'."""
    if not name or len(name) > 1000:
        raise FolderNameError("Invalid folder name")
    parts = name.split(SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise FolderNameError("Folder hierarchy too deep")
    for part in parts:
        if not part:
            raise FolderNameError("Invalid folder name: empty hierarchy level")
        if part.lower() in _RESERVED_COMPONENTS:
            raise FolderNameError(f"Invalid folder name: {part!r} is reserved")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
            raise FolderNameError("Invalid folder name: control characters")
        if part.startswith("~"):
            raise FolderNameError("Invalid folder name: may not start with '~'")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    normalized = SEPARATOR.join(parts)
    if normalized != INBOX and len(dirname_for(normalized).encode()) > MAX_NAME_BYTES:
        raise FolderNameError("Folder name too long")
    return normalized


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace(".", "%2E")


def _unescape(part: str) -> str:
    return part.replace("%2E", ".").replace("%2e", ".").replace("%25", "%")


def dirname_for(name: str) -> str:
    """The directory name (relative to the root) of a normalized folder other than INBOX."""
    return "." + ".".join(mutf7.encode(_escape(part)) for part in name.split(SEPARATOR))


def name_for_dirname(dirname: str) -> str | None:
    """The folder name of a directory entry in the root, or None if it is not a folder."""
    if not dirname.startswith(".") or dirname.startswith(".."):
        return None
    try:
        parts = [_unescape(mutf7.decode(p)) for p in dirname[1:].split(".")]
        name = SEPARATOR.join(parts)
        return normalize_name(name) if dirname_for(name) == dirname else None
    except (mutf7.MUTF7Error, FolderNameError):
        return None


_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(root: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(root, threading.Lock())


@implementer(IFolders)
class UserFolders:
    """The folders of one user under the Maildir++ root ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = _lock_for(self.root)

    # --- names and paths ----------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """The Maildir directory of folder ``name`` (which need not exist); FolderNameError."""
        name = normalize_name(name)
        if name == INBOX:
            return self.root
        return self.root / dirname_for(name)

    def exists(self, name: str) -> bool:
        try:
            return (self.path(name) / "cur").is_dir()
        except FolderNameError:
            return False

    def list(self) -> list[FolderInfo]:
        """Every folder, with implied parents (\\Noselect) and child markers, sorted by name."""
        names = {INBOX}
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            name = name_for_dirname(entry.name)
            if name is not None and entry.is_dir(follow_symlinks=False):
                if os.path.isdir(os.path.join(entry.path, "cur")):
                    names.add(name)
        implied: set[str] = set()
        for name in names:
            parts = name.split(SEPARATOR)
            for depth in range(1, len(parts)):
                implied.add(SEPARATOR.join(parts[:depth]))
        result = []
        for name in sorted(names | implied, key=lambda n: (n != INBOX, n)):
            prefix = name + SEPARATOR
            has_children = any(other.startswith(prefix) for other in names)
            result.append(
                FolderInfo(
                    name=name,
                    path=self.root if name == INBOX else self.root / dirname_for(name),
                    selectable=name in names,
                    has_children=has_children,
                    special_use=SPECIAL_USE.get(name),
                )
            )
        return result

    # --- life cycle ---------------------------------------------------------------------------

    def ensure_defaults(self) -> list[str]:
        """Create INBOX and the special-use folders if missing (first login); returns created."""
        created = []
        with self._lock:
            for sub in SUBDIRS:
                makedirs_durable(self.root / sub)
            first = not (self.root / SUBSCRIPTIONS_FILE).exists()
            for name in SPECIAL_USE:
                path = self.root / dirname_for(name)
                if not (path / "cur").is_dir():
                    for sub in SUBDIRS:
                        makedirs_durable(path / sub)
                    created.append(name)
            if first:
                self._write_subscriptions([INBOX, *SPECIAL_USE])
        return created

    def create(self, name: str) -> None:
        """Create ``name`` and any missing parents (RFC 3501 §6.3.3 suggests so)."""
        name = normalize_name(name)
        if name == INBOX:
            raise FolderExists("INBOX always exists")
        with self._lock:
            if (self.path(name) / "cur").is_dir():
                raise FolderExists("Folder already exists")
            parts = name.split(SEPARATOR)
            for depth in range(1, len(parts) + 1):
                path = self.path(SEPARATOR.join(parts[:depth]))
                for sub in SUBDIRS:
                    makedirs_durable(path / sub)

    def delete(self, name: str) -> None:
        """Remove ``name`` and its messages; children survive (the parent becomes \\Noselect)."""
        name = normalize_name(name)
        if name == INBOX:
            raise FolderError("INBOX cannot be deleted")
        with self._lock:
            path = self.path(name)
            if not (path / "cur").is_dir():
                raise FolderNotFound("No such folder")
            # Rename first (atomic: the folder vanishes at once for everyone), then remove.
            trash = self.root / f"{_DELETED_PREFIX}{secrets.token_hex(6)}"
            os.rename(path, trash)
            fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)
        self.unsubscribe(name)

    def rename(self, old: str, new: str) -> list[tuple[str, str]]:
        """Rename ``old`` (and its children) to ``new``; returns the (old, new) pairs moved.

        Renaming INBOX moves its messages into a new folder and leaves INBOX empty (§6.3.5);
        that move is left to the caller (it involves the index), so INBOX is refused here.
        """
        old, new = normalize_name(old), normalize_name(new)
        if old == INBOX:
            raise FolderError("Renaming INBOX is not supported here")
        if new == INBOX:
            raise FolderExists("INBOX always exists")
        if new == old or new.startswith(old + SEPARATOR):
            raise FolderError("Cannot rename a folder into itself")
        with self._lock:
            if not (self.path(old) / "cur").is_dir():
                raise FolderNotFound("No such folder")
            if (self.path(new) / "cur").is_dir():
                raise FolderExists("Target folder already exists")
            moves = [(old, new)]
            for info in self.list():
                if info.selectable and info.name.startswith(old + SEPARATOR):
                    moves.append((info.name, new + info.name[len(old) :]))
            for _, target in moves:
                normalize_name(target)  # a child may become too long: refuse before moving
                if (self.path(target) / "cur").is_dir():
                    raise FolderExists(f"Target folder {target} already exists")
            for source, target in moves:
                os.rename(self.path(source), self.path(target))
            new_parts = new.split(SEPARATOR)
            for depth in range(1, len(new_parts)):
                parent = self.path(SEPARATOR.join(new_parts[:depth]))
                for sub in SUBDIRS:
                    makedirs_durable(parent / sub)
            fsync_dir(self.root)
            subscribed = self._read_subscriptions()
            renamed = {a: b for a, b in moves}
            if any(s in renamed for s in subscribed):
                self._write_subscriptions([renamed.get(s, s) for s in subscribed])
        return moves

    # --- subscriptions (RFC 3501 §6.3.6) -------------------------------------------------------

    def subscriptions(self) -> list[str]:
        with self._lock:
            return self._read_subscriptions()

    def subscribe(self, name: str) -> None:
        name = normalize_name(name)
        with self._lock:
            current = self._read_subscriptions()
            if name not in current:
                self._write_subscriptions([*current, name])

    def unsubscribe(self, name: str) -> None:
        name = normalize_name(name)
        with self._lock:
            current = self._read_subscriptions()
            if name in current:
                self._write_subscriptions([n for n in current if n != name])

    def _read_subscriptions(self) -> list[str]:
        try:
            text = (self.root / SUBSCRIPTIONS_FILE).read_text("utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line]

    def _write_subscriptions(self, names: list[str]) -> None:
        makedirs_durable(self.root)
        data = "".join(f"{n}\n" for n in dict.fromkeys(names)).encode("utf-8")
        write_file_atomic(self.root / SUBSCRIPTIONS_FILE, data)
