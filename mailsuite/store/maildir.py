"""Durable delivery into per-user Maildirs (``<mail_dir>/<domain>/<local>/{tmp,new,cur}``).

Delivery hard-links the already-fsync'ed spool file into ``new/`` and fsyncs ``new/``: one atomic
directory operation, no copy, and every local recipient of a message shares one inode. Only when a
link is impossible (another filesystem, a filesystem without hard links) does it fall back to the
classic Maildir path: copy into ``tmp/``, fsync, rename into ``new/``.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mailsuite.safeio import copy_file_synced, fsync_dir, makedirs_durable
from mailsuite.store.folders import SPECIAL_USE
from mailsuite.store.names import DELIVERY_NAME, MDA_TAG, NameMaker

SUBDIRS = ("tmp", "new", "cur")

# RFC 5321 dot-atom, lowercase (the accounts layer normalises): no leading, trailing or doubled
# dots, so "." and ".." are impossible, and no "/" or NUL can reach a path.
_LOCAL_RE = re.compile(r"[a-z0-9!#$%&'*+=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+=?^_`{|}~-]+)*")
# LDH labels (A-labels for IDN), one or more, no trailing dot.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

# Errors from link() that mean "hard links are not possible here", not "delivery failed".
_NO_LINK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}

LinkFunction = Callable[[Path, Path], None]
_T = TypeVar("_T")

_ROOT_CACHE_SIZE = 10_000


def split_address(address: str) -> tuple[str, str]:
    """Split and validate ``local@domain`` for use as path components; ValueError if unsafe."""
    local, sep, domain = address.rpartition("@")
    if not sep:
        raise ValueError(f"not an address: {address!r}")
    if len(local) > 64 or not _LOCAL_RE.fullmatch(local):
        raise ValueError(f"unsafe or unnormalised local part: {address!r}")
    if len(domain) > 253 or not _DOMAIN_RE.fullmatch(domain):
        raise ValueError(f"unsafe or unnormalised domain: {address!r}")
    return local, domain


class MaildirStore:
    """Delivers messages into Maildirs under ``mail_dir``; safe to share between threads."""

    def __init__(self, mail_dir: Path, hostname: str, *, link: LinkFunction = os.link) -> None:
        """``link`` exists so tests can force the copy fallback without patching ``os``."""
        self._mail_dir = Path(mail_dir).resolve()
        self._link = link
        self._names = NameMaker(MDA_TAG, hostname, pid=os.getpid())
        self._known: set[Path] = set()
        self._known_lock = threading.Lock()
        self._create_lock = threading.Lock()
        # address -> checked root: resolve() costs a syscall per path component, and every
        # delivery and IMAP/POP3 login asks again for the same few addresses.
        self._roots: dict[str, Path] = {}

    @property
    def mail_dir(self) -> Path:
        return self._mail_dir

    def maildir_path(self, address: str) -> Path:
        """The Maildir++ root (INBOX) of ``address``; ValueError if it is unsafe as a path."""
        root = self._roots.get(address)
        if root is not None:
            return root
        local, domain = split_address(address)
        root = self._mail_dir / domain / local
        # Defence in depth: the patterns above cannot produce "..", but a symlink could lead out.
        if not root.resolve().is_relative_to(self._mail_dir):
            raise ValueError(f"maildir of {address!r} resolves outside the mail directory")
        if len(self._roots) >= _ROOT_CACHE_SIZE:
            self._roots.clear()  # crude bound; refilling costs one resolve() per address
        self._roots[address] = root
        return root

    def ensure_maildir(self, address: str) -> Path:
        """Return the Maildir root of ``address``, creating tmp/new/cur durably if missing."""
        return self._ensure(self.maildir_path(address))

    def _ensure(self, maildir: Path) -> Path:
        """``maildir`` with its tmp/new/cur, created durably the first time it is asked for."""
        with self._known_lock:
            if maildir in self._known:
                return maildir
        # Creation is rare; one lock keeps a second thread from delivering into a directory
        # whose creation another thread has not yet fsync'ed.
        with self._create_lock:
            for sub in SUBDIRS:
                makedirs_durable(maildir / sub)
            with self._known_lock:
                self._known.add(maildir)
        return maildir

    def unique_name(self, size: int) -> str:
        """A new Maildir file name: ``<sec>.M<usec, 6 digits>P<pid>Q<counter>.<host>,S=<size>``
        (``mailsuite.store.names.NameMaker``)."""
        return self._names.make(size)

    def deliver_file(
        self, source: Path, address: str, sync: bool = True, folder: str | None = None
    ) -> str:
        """Put the fsync'ed file ``source`` into the INBOX of ``address`` (or its special-use
        ``folder``, e.g. "Junk"); return its Maildir key.

        Durable on return: the new directory entry is fsync'ed; with ``sync=False`` the caller
        syncs ``new_dir(address, folder)`` itself (once for a whole batch).
        """
        size = os.stat(source).st_size
        if folder is not None:
            root = self._ensure_special(address, folder)
            name = self._place(source, root, size)
        else:
            root, name = self._into_inbox(address, lambda root: self._place(source, root, size))
        if sync:
            fsync_dir(root / "new")
        return name

    def _ensure_special(self, address: str, folder: str) -> Path:
        """The Maildir++ directory of a special-use folder (``<root>/.Junk``), created if missing
        (the same layout store/folders.py gives it, so IMAP lists it with its \\Junk flag)."""
        if folder not in SPECIAL_USE:
            raise ValueError(f"not a special-use folder: {folder!r}")
        return self._ensure(self.ensure_maildir(address) / f".{folder}")

    def deliver_named(self, source: Path, address: str, name: str) -> Path:
        """Link ``source`` into the INBOX of ``address`` as ``name`` (from unique_name()).

        Not durable on return: the caller syncs the returned ``new/`` directory. Used with the
        delivery journal, which chose and recorded ``name`` before the message was acknowledged.
        """
        if not DELIVERY_NAME.fullmatch(name):
            raise ValueError(f"not a Maildir key of this store: {name!r}")
        root, _ = self._into_inbox(address, lambda root: self._put(source, root, name))
        return root / "new"

    def _into_inbox(self, address: str, place: Callable[[Path], _T]) -> tuple[Path, _T]:
        """``place(root)`` in the INBOX of ``address``, recreating a Maildir removed meanwhile."""
        root = self.ensure_maildir(address)
        try:
            return root, place(root)
        except FileNotFoundError:
            if (root / "new").is_dir():
                raise
            # The Maildir was removed behind our back (an admin deleted the user): recreate it.
            with self._known_lock:
                self._known.discard(root)
            root = self.ensure_maildir(address)
            return root, place(root)

    def redeliver(self, source: Path, address: str, name: str) -> Path:
        """deliver_named() unless the INBOX already holds ``name`` (in new/, or cur/ with flags).

        Crash recovery: the message may have been linked, and even read, before the crash.
        """
        if not DELIVERY_NAME.fullmatch(name):
            raise ValueError(f"not a Maildir key of this store: {name!r}")
        root = self.ensure_maildir(address)
        if (root / "new" / name).exists():
            return root / "new"
        prefix = name + ":"
        with os.scandir(root / "cur") as entries:
            if any(e.name == name or e.name.startswith(prefix) for e in entries):
                return root / "new"
        return self.deliver_named(source, address, name)

    def new_dir(self, address: str, folder: str | None = None) -> Path:
        """The ``new/`` directory of the INBOX of ``address`` (or of its special ``folder``)."""
        root = self.maildir_path(address)
        return (root / f".{folder}" if folder else root) / "new"

    def _place(self, source: Path, root: Path, size: int) -> str:
        while True:
            name = self.unique_name(size)
            try:
                self._link(source, root / "new" / name)
                return name
            except FileExistsError:
                continue  # practically impossible (same pid, µs and counter); pick another name
            except OSError as exc:
                if exc.errno not in _NO_LINK_ERRNOS:
                    raise
                self._copy_into(source, root, name)
                return name

    def _put(self, source: Path, root: Path, name: str) -> None:
        try:
            self._link(source, root / "new" / name)
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            self._copy_into(source, root, name)

    @staticmethod
    def _copy_into(source: Path, root: Path, name: str) -> None:
        """The Maildir-spec way: write into tmp/, fsync, rename into new/."""
        tmp_path = root / "tmp" / name
        copy_file_synced(source, tmp_path)
        try:
            os.rename(tmp_path, root / "new" / name)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
