"""Which sessions have which folder selected, and one change poller per folder that IDLE needs.

Changes made through this process (APPEND, STORE, EXPUNGE, COPY by any session) reach the other
sessions at once through ``changed``; a delivery by the MDA through ``poke``. Changes made by
other programs (a POP3 client's deletions, a Maildir tool) show only in the directories'
mtimes, so folders with IDLE sessions are polled: one ``FolderPoller`` per folder, shared by
every session idling on it, started by the first and stopped by the last. A change costs one
directory scan in a worker thread however many sessions wait, and 500 idle sessions on one
INBOX cost one timer (two stat calls every ``interval``), not 500.

Reactor thread only. ``version(path)`` moves on every known change, so a session can tell
cheaply, at the end of any command, whether it must look at the index again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from twisted.internet import task, threads
from twisted.logger import Logger

from mailsuite.store.index import FolderIndex

log = Logger(namespace="mailsuite.imap")


class Watcher(Protocol):
    """A session with a folder selected."""

    def folder_changed(self) -> None:
        """The folder changed: push updates now if idling (otherwise at the next command)."""

    def folder_gone(self) -> None:
        """The folder was deleted or renamed under the session."""


class FolderPoller:
    """Syncs one folder's index when its directories change; wakes the hub if the index did."""

    def __init__(self, hub: FolderHub, path: Path, index: FolderIndex, interval: float) -> None:
        self.hub = hub
        self.path = path
        self.index = index
        self._syncing = False
        self._again = False
        self._loop = task.LoopingCall(self.check)
        self._loop.start(interval, now=False)

    def check(self, force: bool = False) -> None:
        """Sync now if the directories moved (or ``force``); one sync at a time."""
        if self._syncing:
            self._again = True
            return
        if not force and not self.index.needs_sync():  # two stat calls
            return
        self._syncing = True
        d = threads.deferToThread(self.index.sync)
        d.addCallback(self._synced)
        d.addErrback(lambda failure: log.failure("IMAP folder poll failed", failure))
        d.addBoth(self._done)

    def _synced(self, changed: bool) -> None:
        if not self._loop.running:
            return
        if changed:
            self.hub.changed(self.path)
        elif not self.index.exists():  # removed by another program
            self.hub.gone([self.path])

    def _done(self, _: object) -> None:
        self._syncing = False
        if self._again and self._loop.running:
            self._again = False
            self.check(force=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


class FolderHub:
    """Selected folders, their sessions, and the pollers of folders with IDLE sessions."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._sessions: dict[Path, dict[Watcher, None]] = {}
        self._idlers: dict[Path, dict[Watcher, None]] = {}
        self._pollers: dict[Path, FolderPoller] = {}
        self._versions: dict[Path, int] = {}

    # --- selection ----------------------------------------------------------------------------

    def join(self, path: Path, session: Watcher) -> None:
        self._sessions.setdefault(path, {})[session] = None

    def leave(self, path: Path, session: Watcher) -> None:
        self.unwatch(path, session)
        _discard(self._sessions, path, session)

    # --- IDLE ---------------------------------------------------------------------------------

    def watch(self, path: Path, session: Watcher, index: FolderIndex) -> None:
        """``session`` idles on ``path``: poll the folder while anyone does."""
        self._idlers.setdefault(path, {})[session] = None
        if path not in self._pollers:
            self._pollers[path] = FolderPoller(self, path, index, self.interval)

    def unwatch(self, path: Path, session: Watcher) -> None:
        if _discard(self._idlers, path, session) and path not in self._idlers:
            self._pollers.pop(path).stop()

    def polled(self) -> dict[Path, int]:
        """Polled folders and how many sessions idle on each."""
        return {path: len(self._idlers.get(path, ())) for path in self._pollers}

    # --- news ---------------------------------------------------------------------------------

    def version(self, path: Path) -> int:
        return self._versions.get(path, 0)

    def changed(self, path: Path, origin: Watcher | None = None) -> None:
        """The index of ``path`` changed (already synced): tell every session but ``origin``."""
        self._versions[path] = self._versions.get(path, 0) + 1
        for session in list(self._sessions.get(path, ())):
            if session is not origin:
                session.folder_changed()

    def poke(self, path: Path) -> None:
        """Files were added to ``path`` behind the index (MDA delivery): look at once."""
        poller = self._pollers.get(path)
        if poller is not None:
            poller.check(force=True)
        else:  # nobody idles: selected sessions sync at their next command
            self.changed(path)

    def gone(self, paths: Iterable[Path]) -> None:
        """The folders were deleted or renamed: their sessions must end (they get BYE)."""
        for path in paths:
            self._versions[path] = self._versions.get(path, 0) + 1
            self._idlers.pop(path, None)
            poller = self._pollers.pop(path, None)
            if poller is not None:
                poller.stop()
            for session in list(self._sessions.pop(path, ())):
                session.folder_gone()


def _discard(table: dict[Path, dict[Watcher, None]], path: Path, session: Watcher) -> bool:
    members = table.get(path)
    if members is None or session not in members:
        return False
    del members[session]
    if not members:
        del table[path]
    return True
