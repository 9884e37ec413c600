"""What every IMAP command handler stands on: the session surface it may use, the NO answer,
worker-thread hops, and the helpers several command groups share.

A handler is ``async def cmd_NAME(session, tag, reader[, uid_mode]) -> str | None``: it reads its
arguments from ``reader`` (ParseError -> BAD), raises ``No`` for a NO, and returns the text of
the tagged reply (``"OK ..."``), or None when it has answered itself. Blocking work (index,
files, password checks) is awaited from worker threads; the session runs one command at a
time. Handlers see the session only through ``Session`` below: the protocol's buffers, its
kernel and its private state stay out of their reach.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsuite.accounts.login import LoginAttempts
from mailsuite.imap.parser import ParseError, resolve_set
from mailsuite.imap.selection import Selection
from mailsuite.store.folders import FolderNameError
from mailsuite.store.index import FolderIndex, merge_ranges
from mailsuite.store.interfaces import IFolders, IMailAccount

log = Logger(namespace="mailsuite.imap")

ANY, NONAUTH, AUTH, SELECTED = "any", "nonauth", "auth", "selected"


class Session(Protocol):
    """The part of an IMAP session (mailsuite.imap.server.IMAPServer) handlers use."""

    ctx: Any  # IMAPContext: what every session of the process shares
    limits: Any  # IMAPLimits
    state: str  # ANY/NONAUTH/AUTH/SELECTED, or "logout"
    user: str | None
    account: IMailAccount | None  # the avatar the realm handed over at login
    folders: IFolders | None
    selected: Selection | None
    condstore: bool
    qresync: bool
    tls: bool
    peer: str
    attempts: LoginAttempts
    farewell: str | None  # set: after the tagged reply, say BYE with this and close

    @property
    def closing(self) -> bool: ...

    def send(self, data: str | bytes) -> None: ...

    def capabilities(self) -> list[str]: ...

    def close_session(self) -> None: ...

    def start_tls(self, options: Any) -> None: ...

    def next_line(self) -> Deferred: ...

    def release_slot(self) -> None: ...

    def announce(self, allow_expunge: bool, force: bool = False, sync: bool = True) -> Deferred: ...

    def deselect(self) -> None: ...

    async def idle(self, tag: str) -> str: ...

    def start_output(self) -> None: ...

    def end_output(self) -> None: ...

    def writable(self) -> Deferred: ...


class No(Exception):
    """A tagged NO; str() is the rest of the line (may start with a response code)."""


def to_thread(fn: Callable, *args: Any) -> Deferred:
    return threads.deferToThread(fn, *args)


def settle_later(index: FolderIndex) -> None:
    """Write a folder's first index once the SELECT answer is out (``FolderIndex.settle``)."""
    from twisted.internet import reactor

    if not index.unwritten:  # the usual case: no thread hop
        return

    def settle() -> None:
        to_thread(index.settle).addErrback(
            lambda failure: log.failure("writing the index of {path}", failure, path=index.path)
        )

    reactor.callLater(0, settle)


def folder_path(session: Session, name: str) -> Path:
    """The directory of folder ``name`` (NO [CANNOT] for a name the store refuses)."""
    try:
        return session.folders.path(name)
    except FolderNameError as exc:
        raise No(f"[CANNOT] {exc}") from None


def forget_folders(session: Session, paths: list[Path]) -> None:
    """Folders deleted or renamed away: end the sessions that had them selected (BYE), and
    drop their indexes (their children stay unless listed: DELETE keeps them)."""
    session.ctx.hub.gone(paths)
    for path in paths:
        session.account.forget(path)


def report_expunged(session: Session, selection: Selection, uids: list[int], modseq: int) -> str:
    """Report our own expunge (EXPUNGE or VANISHED) and tell the other sessions; returns
    the response code QRESYNC wants on the tagged OK (RFC 7162 §3.2.7)."""
    for uid in uids:
        selection.pending_expunge.discard(uid)
    if not selection.pending_expunge:
        selection.expunge_horizon = None
    session.send(b"".join(selection.remove(uids)))
    if not uids:
        return ""
    session.ctx.hub.changed(selection.path, origin=session)
    return f"[HIGHESTMODSEQ {modseq}] " if selection.qresync else ""


def writable(session: Session) -> Selection:
    """The selection, if the client may change it (SELECT, not EXAMINE)."""
    if session.selected.readonly:
        raise No("[READ-ONLY] Folder is read-only")
    return session.selected


def select_uids(session: Session, ranges, uid_mode: bool) -> list[int]:
    """UIDs of the current view addressed by a sequence set (msn or UID)."""
    view = session.selected.uids
    if uid_mode:
        largest = view[-1] if view else 0
        out: list[int] = []
        for low, high in merge_ranges(resolve_set(ranges, largest)):
            out += view[bisect.bisect_left(view, low) : bisect.bisect_right(view, high)]
        return out
    resolved = resolve_set(ranges, len(view))
    if any(high > len(view) for _low, high in resolved):
        raise ParseError("Invalid message sequence number")
    out = []
    for low, high in merge_ranges(resolved):
        out += view[low - 1 : high]
    return out
