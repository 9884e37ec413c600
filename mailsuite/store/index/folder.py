"""``FolderIndex``: the index of one folder, its lock, and the records mirrored in memory.

Opening (schema.py migrates the file), loading, writing a folder's first index after SELECT
(``settle``), the records and status every session reads, and the small in-memory bookkeeping
the other modules share (``_put``, ``_set_meta``, ``_transaction``). What the index does is
spread by job over the package, each module a set of functions bound here as methods, so every
caller keeps calling ``index.sync()``, ``index.store_flags(...)`` and so on:

- scan.py: keeping in step with the directory (``sync``);
- cache.py: header blocks, envelopes and structure, parsed once (``envelopes_wire``...);
- changes.py: STORE, EXPUNGE and the MODSEQ history (``changes_since``, ``vanished_since``);
- adding.py: APPEND, COPY, moving every message (``add_file``, ``copy_to``...).

One RLock per folder (``lock``) guards all of it, as before the split: every function takes it
where the method did.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import threading
from array import array
from pathlib import Path
from typing import Any

from zope.interface import implementer

from mailsuite.safeio import fsync_dir
from mailsuite.store.index import adding, cache, changes, scan
from mailsuite.store.index.files import to_crlf
from mailsuite.store.index.records import Expunged, FolderGone, Record, Status
from mailsuite.store.index.schema import INDEX_FILE, INSERT_NEW, SCHEMA_VERSION, connect
from mailsuite.store.index.uidvalidity import UIDVALIDITY_HINT, next_uidvalidity, uidvalidity_mark
from mailsuite.store.interfaces import IFolderIndex
from mailsuite.store.names import keyword_flags


@implementer(IFolderIndex)
class FolderIndex:
    """The index of the Maildir folder at ``path`` (which holds tmp/new/cur)."""

    expunged_kept = changes.MAX_EXPUNGED_KEPT

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():  # SQLite would report "unable to open database file"
            raise FolderGone(f"no folder at {self.path}")
        self._lock = threading.RLock()
        self._db_path = self.path / INDEX_FILE
        self._base = os.fspath(self.path) + os.sep  # + Record.name: a file's path as a str
        self._conn = self._open()
        # True while the index exists only in memory: a folder met for the first time is
        # written after SELECT has been answered (``settle``), or before any SQL touches it.
        self._unwritten = False
        self._records: dict[int, Record] = {}
        self._by_key: dict[str, int] = {}
        self._meta: dict[str, int] = {}
        self._dir_stamp: tuple[int, int] | None = None
        self._uids: array | None = None  # sorted UIDs, rebuilt after the set of UIDs changed
        # Every keyword a message of the folder has had (only grows, as Dovecot's list does):
        # IMAP sessions announce it in FLAGS before a client meets it (RFC 3501 §7.2.6).
        self._keywords: frozenset[str] = frozenset()
        self._flag_sets: set[frozenset[str]] = set()
        # Values derived from message content (immutable per UID), shared by every session.
        self._memos: dict[tuple, dict[int, bytes]] = {}
        self._load()

    # --- opening ------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            return connect(self._db_path)
        except sqlite3.DatabaseError:
            if not self.path.is_dir():  # deleted by another session while being opened
                raise FolderGone(f"no folder at {self.path}") from None
            # A damaged index is rebuilt from the Maildir (with a new UIDVALIDITY).
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self._db_path}{suffix}", f"{self._db_path}{suffix}.broken")
            return connect(self._db_path)

    def _load(self) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if "uidvalidity" not in meta:
            # Nothing valid on disk: start in memory. Should the process die before
            # ``settle``, the next start finds no UIDVALIDITY again and makes a larger one,
            # so no client ever sees two messages under one UID.
            self._meta = {
                "version": SCHEMA_VERSION,
                "uidvalidity": self._new_uidvalidity(),
                "uidnext": 1,
                "highestmodseq": 1,
                "recent_uid": 0,
                "expunged_floor": 0,
            }
            self._expunged_rows = 0
            self._unwritten = True
            return
        meta.setdefault("expunged_floor", 0)
        self._meta = meta
        (self._expunged_rows,) = self._db.execute("SELECT count(*) FROM expunged").fetchone()
        rows = self._db.execute(
            "SELECT uid, key, name, flags, modseq, internaldate, size, crlf FROM messages"
        )
        for uid, key, name, flags, modseq, idate, size, crlf in rows:
            record = Record(
                uid,
                key,
                name,
                frozenset(flags.split()),
                modseq,
                idate or None,
                scan.loaded(size),
                bool(crlf),
            )
            self._records[uid] = record
            self._by_key[key] = uid
            self._note_flags(record.flags)

    def _new_uidvalidity(self) -> int:
        """Strictly above any value this folder, or any folder of the same user, ever had.

        Time-based, raised past a high-water mark kept in the user's Maildir root
        (``uidvalidity_mark``), outside the folder: a folder deleted and created again within
        the same second, or one whose index was lost, never gets a UIDVALIDITY it had before,
        so no (UIDVALIDITY, UID) pair names two messages (RFC 3501 §2.3.1.1).
        """
        return next_uidvalidity(uidvalidity_mark(self.path), self.path / UIDVALIDITY_HINT)

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, once the index is on disk: SQL never sees a half-written index."""
        if self._unwritten:
            with self._lock:
                if self._unwritten:
                    self._write_unwritten()
        return self._conn

    @property
    def unwritten(self) -> bool:
        """Does this index so far live only in memory (``settle`` has work to do)?"""
        return self._unwritten

    def settle(self) -> None:
        """Write an index that so far lives only in memory (see ``_load``); cheap otherwise.
        SELECT calls it in the background once it has answered."""
        with self._lock:
            if self._unwritten:
                self._write_unwritten()

    def _write_unwritten(self) -> None:
        """Meta and every row in one transaction: the first index of a folder, 10,000 rows in
        about 30 ms of SQLite, which a cold SELECT no longer waits for."""
        flag_text: dict[frozenset[str], str] = {}
        rows = []
        for r in self._records.values():
            text = flag_text.get(r.flags)
            if text is None:
                text = flag_text[r.flags] = " ".join(sorted(r.flags))
            size = -1 if r.size is None else r.size  # see scan.fill_sizes
            rows.append(
                (r.uid, r.key, r.name, text, r.modseq, r.internaldate or 0.0, size, int(r.crlf))
            )
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM messages")
            db.execute("DELETE FROM cache")
            db.execute("DELETE FROM expunged")
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(self._meta.items()))
            db.executemany(INSERT_NEW, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._unwritten = False

    @contextlib.contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self.settle()
            self._conn.close()

    @property
    def lock(self) -> threading.RLock:
        """Hold it to read several things as one consistent snapshot (SELECT)."""
        return self._lock

    # --- reading ------------------------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        return self._meta["uidvalidity"]

    @property
    def keywords(self) -> frozenset[str]:
        """Every keyword a message here has had. Only grows: read after rendering some flags,
        it holds every keyword those flags can contain."""
        return self._keywords

    def _note_flags(self, flags: frozenset[str]) -> None:
        if flags not in self._flag_sets:  # a folder has few distinct flag sets
            self._flag_sets.add(flags)
            new = keyword_flags(flags) - self._keywords
            if new:
                self._keywords = self._keywords | new

    def status(self) -> Status:
        with self._lock:
            records = self._records.values()
            recent_uid = self._meta["recent_uid"]
            return Status(
                uidvalidity=self._meta["uidvalidity"],
                uidnext=self._meta["uidnext"],
                highestmodseq=self._meta["highestmodseq"],
                messages=len(self._records),
                unseen=sum(1 for r in records if "\\Seen" not in r.flags),
                recent=sum(1 for uid in self._records if uid > recent_uid),
            )

    def records(self) -> list[Record]:
        """Every message, by ascending UID."""
        with self._lock:
            records = self._records
            return [records[uid] for uid in self.uid_array()]

    def uid_array(self) -> array:
        """Every UID, ascending, as an ``array('I')`` shared by all callers until the set of
        UIDs changes: never modify it (copy it first). 500 sessions with a 10,000-message
        folder selected hold one 40 KB array between them instead of 500 lists."""
        with self._lock:
            uids = self._uids
            if uids is None:
                uids = self._uids = array("I", sorted(self._records))
            return uids

    def get(self, uid: int) -> Record | None:
        with self._lock:
            return self._records.get(uid)

    def claim_recent(self, claim: bool = True) -> range:
        """The UIDs that are \\Recent for the caller (RFC 3501 §2.3.2): those above the last
        claim, up to the latest message.

        A read-write session ``claim``s them: later sessions no longer see them as recent. A
        read-only session (EXAMINE) sees them without claiming them. Call it under ``lock``
        with whatever reads the UIDs it applies to (SELECT's records, a session's changes);
        a message added after the claim is outside the returned range whatever happens, so it
        is never recent in two sessions.
        """
        with self._lock:
            previous = self._meta["recent_uid"]
            latest = self._meta["uidnext"] - 1
            if claim and latest > previous:
                self._set_meta(recent_uid=latest)
            return range(previous + 1, max(previous, latest) + 1)

    def file_path(self, record: Record) -> Path:
        return self.path / record.name

    def content(self, record: Record) -> Any:
        """The message in CRLF form: an mmap of the file (close it), or bytes for bare-LF files.

        FileNotFoundError if it was expunged by another program meanwhile.
        """
        path = self.file_path(record)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            path = self._relocate(record)
            fh = open(path, "rb")
        with fh:
            if not record.crlf:
                return to_crlf(fh.read())
            if os.fstat(fh.fileno()).st_size == 0:
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def open_message(self, record: Record):
        """An open binary file of the message (CRLF files only; see ``content`` otherwise)."""
        try:
            return open(self.file_path(record), "rb")
        except FileNotFoundError:
            return open(self._relocate(record), "rb")

    def _relocate(self, record: Record) -> Path:
        """The file was renamed by someone else (flags): rescan and return its new path."""
        self.sync(force=True)
        current = self.get(record.uid)
        if current is None:
            raise Expunged(f"message {record.uid} was expunged")
        return self.file_path(current)

    def _need(self, uid: int) -> Record:
        record = self._records.get(uid)
        if record is None:
            raise Expunged(f"message {uid} was expunged")
        return record

    # --- bookkeeping shared by the modules -----------------------------------------------------

    def _put(self, record: Record) -> None:
        if record.uid not in self._records:
            self._uids = None
        self._records[record.uid] = record
        self._by_key[record.key] = record.uid
        self._note_flags(record.flags)

    def _set_meta(self, **values: int) -> None:
        self._meta.update(values)
        if not self._unwritten:  # else ``_write_unwritten`` writes all of it
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [*values.items()])

    def _fsync_cur(self) -> None:
        try:
            fsync_dir(self.path / "cur")
        except FileNotFoundError:
            raise FolderGone(f"no folder at {self.path}") from None

    # --- the rest, by job (see the module docstring) ------------------------------------------

    # scan.py: keeping in step with the directory
    needs_sync = scan.needs_sync
    exists = scan.exists
    sync = scan.sync
    fill_internaldates = scan.fill_internaldates
    fill_sizes = scan.fill_sizes

    # cache.py: parsed columns, parsed once; the per-folder memo
    memo = cache.memo
    header = cache.header
    headers = cache.headers
    envelope = cache.envelope
    envelopes = cache.envelopes
    envelopes_wire = cache.envelopes_wire
    structure = cache.structure
    cached_facts = cache.cached_facts

    # changes.py: STORE, EXPUNGE and the MODSEQ history
    expunged_floor = property(changes.expunged_floor)
    changes_since = changes.changes_since
    vanished_since = changes.vanished_since
    store_flags = changes.store_flags
    expunge = changes.expunge
    expunge_at = changes.expunge_at

    # adding.py: APPEND, COPY, moving every message
    add_file = adding.add_file
    copy_to = adding.copy_to
    move_all_to = adding.move_all_to
