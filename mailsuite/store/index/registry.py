"""One ``FolderIndex`` per folder directory in the process (``IndexRegistry``)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

from mailsuite.store.index.folder import FolderIndex


class IndexRegistry:
    """One FolderIndex per folder directory in the process, so every session shares its lock
    and no two instances ever hand out UIDs for one folder.

    An index stays open while anything uses it (a session with the folder selected holds it)
    and, beyond that, while it is among the ``keep`` most recently opened; older ones are
    settled and left to the garbage collector, which closes their SQLite connection. Without
    this, every folder any user ever opened kept its connection, file descriptors and message
    mirror (about 2 MB per 10,000 messages) for the life of the process.
    """

    def __init__(self, keep: int = 64) -> None:
        self._lock = threading.Lock()
        self._live: weakref.WeakValueDictionary[Path, FolderIndex] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[Path, FolderIndex] = OrderedDict()
        self._keep = keep

    def open(self, path: Path) -> FolderIndex:
        """Blocking (opens SQLite, may write an evicted index's first rows): a worker thread."""
        path = Path(path)
        with self._lock:
            index = self._live.get(path)
            if index is None:
                index = FolderIndex(path)
                self._live[path] = index
            self._recent[path] = index
            self._recent.move_to_end(path)
            evicted = []
            while len(self._recent) > self._keep:
                evicted.append(self._recent.popitem(last=False)[1])
        for old in evicted:  # outside the registry lock: settle waits for the folder's lock
            with contextlib.suppress(sqlite3.Error):
                old.settle()
        return index

    def open_count(self) -> int:
        """Indexes alive now (kept as recent or in use)."""
        with self._lock:
            return len(self._live)

    def forget(self, path: Path) -> None:
        """Drop the index of a folder that was deleted or renamed away, so the next ``open``
        of that path reads the directory now there.

        Not closed here: a session may still be using it in a worker thread (it ends with
        BYE); the SQLite connection closes when the last reference goes.
        """
        with self._lock:
            self._recent.pop(Path(path), None)
            self._live.pop(Path(path), None)

    def settle_all(self) -> None:
        """At shutdown: write every index that so far lives only in memory. Connections stay
        open: a session still connected may finish its command; they close with the process
        or when the last reference goes."""
        with self._lock:
            indexes = list(self._live.values())
        for index in indexes:
            with contextlib.suppress(sqlite3.Error):
                index.settle()
