"""The persistent index of one Maildir folder: UIDs, flags, MODSEQs and cached message facts.

One SQLite file per folder, ``mailsuite-index.sqlite`` inside the folder's directory (next to
tmp/new/cur, where Maildir tools do not look). Per folder rather than per user because the
index then travels with its folder: RENAME is one directory rename, DELETE one tree removal,
a damaged file costs one folder a new UIDVALIDITY, and sessions on different folders never
contend for one database lock.

A message's identity is its Maildir base name (the file name up to ``:2,``), so the MDA, POP3 and
external tools can add, rename (flags) and unlink files at any time: ``sync()`` scans new/ and
cur/ (only when a directory's mtime moved), gives unknown files fresh UIDs, turns renamed files
into flag changes and vanished ones into expunges. System flags are mirrored in the file name
(``:2,DFPRST``); keywords live only in the index.

All methods are blocking and thread-safe (one lock per folder): call them from worker threads.
The small per-message columns are mirrored in memory, so a 10,000-message SELECT or FETCH FLAGS
costs no SQL; header blocks, envelopes and part trees are cached in SQLite and parsed once.

First contact is cheap, as in Dovecot: a file found by ``sync()`` is indexed from its name and
one stat (size from ``,W=``/``,S=``, see ``file_facts``; flags from ``:2,``; INTERNALDATE from
the mtime), its header block and envelope are left NULL, and the first reader that needs them
(FETCH ENVELOPE / header sections, SEARCH) parses them for its whole batch and stores them in
the ``cache`` table, apart from the small per-message columns (schema version 3). A message is
"parsed" once its cache row has ``envwire`` or ``envelope`` (the JSON form, which older versions
always wrote and lazy parsing skips); ``header`` stays NULL for a parsed message only when its
header block is too big to cache.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import mmap
import os
import re
import sqlite3
import threading
import time
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from mailsuite.store import mime
from mailsuite.store.names import (  # noqa: F401  (LETTER_FLAGS, SYSTEM_FLAGS: re-exported)
    APPEND_TAG,
    FLAG_LETTERS,
    LETTER_FLAGS,
    SYSTEM_FLAGS,
    NameMaker,
    canonical_flag,
    crlf_size_from_name,
    cur_name,
    name_facts,
    name_sizes,
    system_flags,
)
from mailsuite.store.names import keyword_flags as _keywords
from mailsuite.store.names import split_flags as split_name
from mailsuite.store.safeio import fsync_dir

INDEX_FILE = "mailsuite-index.sqlite"
MAX_CACHED_HEADER = 64 * 1024
_FIRST_READ = 8192  # most header blocks end within it
# SQL over a ``cache`` row: the header was never parsed (no row at all says the same).
_UNPARSED = "(envelope IS NULL AND envwire IS NULL)"
# 2: the ``envwire`` column (ENVELOPE as IMAP bytes). A version-1 index gains the column on
# open and fills it lazily from the ``envelope`` JSON; nothing is rebuilt.
# 3: the parsed columns live in their own table, ``cache``: a ``messages`` row is ~150 bytes
# instead of ~1.5 KB, so loading a folder, STORE on thousands of messages (one page rewritten
# per ~25 rows instead of per 2) and a scan of flags read a tenth of the pages. An older index
# moves its parsed columns there once, on open.
SCHEMA_VERSION = 3
# Expunged UIDs kept (with their MODSEQ) to tell CONDSTORE/QRESYNC clients and other sessions
# what went. Older rows are pruned by whole MODSEQs once there are 10% more than this, and the
# highest pruned MODSEQ is kept as ``expunged_floor``: a caller asking about changes since an
# older MODSEQ gets the UIDs it knows that no longer exist instead (exact, just not cheap).
# 10,000 rows are about 200 KB per folder and cover far more expunges than a client misses
# between two connections.
MAX_EXPUNGED_KEPT = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    uid INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    flags TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    internaldate REAL NOT NULL,
    size INTEGER NOT NULL,
    crlf INTEGER NOT NULL,
    header BLOB,
    envelope TEXT,
    structure TEXT,
    envwire BLOB
);
CREATE TABLE IF NOT EXISTS expunged (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cache (
    uid INTEGER PRIMARY KEY,
    header BLOB,
    envelope TEXT,
    structure TEXT,
    envwire BLOB
);
"""
# The messages table keeps its version-2 parsed columns (always NULL now): older versions
# reading a version-3 index see unparsed rows and parse them again, which is correct.
_CACHE_COLUMNS = ("header", "envelope", "structure", "envwire")


_INSERT_NEW = (
    "INSERT INTO messages (uid, key, name, flags, modseq, internaldate, size, crlf)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# Kinds of memo (say, distinct HEADER.FIELDS lists) kept per folder; the oldest goes first.
MEMO_KINDS = 4


class Expunged(FileNotFoundError):
    """The message is no longer in the folder: expunged by another session or program while a
    reader held its UID. A FileNotFoundError, so whoever copes with a vanished file copes."""


class FolderGone(FileNotFoundError):
    """The folder itself is gone (deleted or renamed by another session) while in use."""


class Record(NamedTuple):
    """What a session needs of one message without touching the disk.

    A tuple rather than a frozen dataclass: a cold SELECT builds 10,000 of them, and a tuple
    is built four times faster and is 100 bytes smaller (no ``__dict__``).
    """

    uid: int
    key: str
    name: str  # relative path: "new/<key>" or "cur/<key>:2,<letters>"
    flags: frozenset[str]
    modseq: int
    internaldate: float | None  # None: not read yet, see ``FolderIndex.fill_internaldates``
    size: int
    crlf: bool


@dataclass(frozen=True)
class _Parsed:
    """What parsing a message's header block gives (see ``FolderIndex._parse``)."""

    header: bytes
    envwire: bytes
    cached: bool  # False: header block too big to keep in the index


@dataclass(frozen=True)
class Status:
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: int
    unseen: int
    recent: int


_names = NameMaker(APPEND_TAG, os.uname().nodename)


def read_header_block(path: Path | str, crlf: bool | None = None) -> tuple[bytes, bool]:
    """The header block (CRLF form, up to MAX_CACHED_HEADER) and whether the file uses CRLF
    line ends (``crlf`` when the caller knows; else the first line end decides, as the index
    always has). FileNotFoundError if the file is gone.

    A bare ``os.read`` of the first 8 KB, where most header blocks end: a folder's first FETCH
    ENVELOPE does this for every message, and Python file objects would double its cost.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.read(fd, _FIRST_READ)
        if len(head) == _FIRST_READ and b"\n\r\n" not in head and b"\n\n" not in head:
            while len(head) < MAX_CACHED_HEADER and (
                more := os.read(fd, MAX_CACHED_HEADER - len(head))
            ):
                head += more
    finally:
        os.close(fd)
    if crlf is None:
        first_nl = head.find(b"\n")
        crlf = first_nl < 0 or head[first_nl - 1 : first_nl] == b"\r"
    if not crlf:
        head = to_crlf(head)
    end = mime.header_block_end(head, 0, len(head))
    return head[:end], crlf


def file_facts(path: str, key: str) -> tuple[float, int, bool] | None:
    """(mtime, RFC822.SIZE, CRLF-only?) of a message file, from one stat and its name if it
    can: None if the file is gone.

    RFC822.SIZE counts CRLF line ends (RFC 3501 §2.3.4). ``,W=`` is that size by Dovecot's
    convention, and the file holds no bare LF exactly when its size on disk is the same; a
    file our MDA delivered (``names.crlf_size_from_name``) is CRLF-only. Only files the name
    says nothing useful about are read: the first line end decides, as it always has.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    size = stat.st_size
    _s, w = name_sizes(key)
    if w is not None and w >= size:  # smaller would be a name that lies: measure instead
        return stat.st_mtime, w, w == size
    if crlf_size_from_name(key) == size:
        return stat.st_mtime, size, True
    try:
        _header, crlf = read_header_block(path)
        return stat.st_mtime, size if crlf else canonical_size(Path(path)), crlf
    except FileNotFoundError:
        return None


_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", data)


def canonical_size(path: Path) -> int:
    """Size of a bare-LF file once every line end is CRLF (counted in chunks)."""
    size = 0
    previous = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk) + chunk.count(b"\n") - chunk.count(b"\r\n")
            if previous == b"\r" and chunk[:1] == b"\n":
                size -= 1
            previous = chunk[-1:]
    return size


class FolderIndex:
    """The index of the Maildir folder at ``path`` (which holds tmp/new/cur)."""

    expunged_kept = MAX_EXPUNGED_KEPT

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
            return self._connect()
        except sqlite3.DatabaseError:
            if not self.path.is_dir():  # deleted by another session while being opened
                raise FolderGone(f"no folder at {self.path}") from None
            # A damaged index is rebuilt from the Maildir (with a new UIDVALIDITY).
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self._db_path}{suffix}", f"{self._db_path}{suffix}.broken")
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db_path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM messages").fetchone()
            columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
            if "envwire" not in columns:  # a version-1 index
                db.execute("ALTER TABLE messages ADD COLUMN envwire BLOB")
            if "messages" in tables and "cache" not in tables:  # version 1 or 2
                _move_parsed_columns(db)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

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
                uid, key, name, frozenset(flags.split()), modseq, idate or None, size, bool(crlf)
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
            rows.append(
                (r.uid, r.key, r.name, text, r.modseq, r.internaldate or 0.0, r.size, int(r.crlf))
            )
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM messages")
            db.execute("DELETE FROM cache")
            db.execute("DELETE FROM expunged")
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(self._meta.items()))
            db.executemany(_INSERT_NEW, rows)
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
            new = _keywords(flags) - self._keywords
            if new:
                self._keywords = self._keywords | new

    def memo(self, kind: tuple) -> dict[int, bytes]:
        """A per-folder memo, UID -> bytes, for values computed from a message's content (say,
        the header fields a client asks for at every sync). Content never changes under a UID,
        so entries stay true until UIDVALIDITY changes, which starts a fresh memo; expunged
        UIDs are simply never asked for again. At most MEMO_KINDS kinds are kept."""
        key = (self.uidvalidity, *kind)
        with self._lock:
            memo = self._memos.get(key)
            if memo is None:
                while len(self._memos) >= MEMO_KINDS:
                    self._memos.pop(next(iter(self._memos)))
                memo = self._memos[key] = {}
            return memo

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

    @property
    def expunged_floor(self) -> int:
        """Expunges up to this MODSEQ may have been pruned from the history (0: none were)."""
        return self._meta["expunged_floor"]

    def changes_since(
        self, modseq: int, known: Iterable[int] = ()
    ) -> tuple[list[Record], list[int], int]:
        """(records changed or added after ``modseq``, UIDs expunged after it, HIGHESTMODSEQ).

        If that history was pruned (``modseq`` below ``expunged_floor``), the expunged UIDs are
        those of ``known`` (the caller's UIDs; a live list is copied first) that are gone.
        """
        with self._lock:
            changed = sorted(
                (r for r in self._records.values() if r.modseq > modseq), key=lambda r: r.uid
            )
            if modseq < self._meta["expunged_floor"]:
                gone = sorted({uid for uid in list(known) if uid not in self._records})
                return changed, gone, self._meta["highestmodseq"]
            expunged = [
                uid
                for (uid,) in self._db.execute(
                    "SELECT uid FROM expunged WHERE modseq > ? ORDER BY uid", (modseq,)
                )
            ]
            return changed, expunged, self._meta["highestmodseq"]

    def vanished_since(
        self, modseq: int, ranges: Iterable[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """QRESYNC's VANISHED (EARLIER): UID ranges within ``ranges`` expunged after ``modseq``.

        If that history was pruned, every UID within ``ranges`` below UIDNEXT that does not
        exist now: RFC 7162 §3.2.10.1 lets the server name UIDs the client never had (it
        ignores them), so the answer stays exact for the client and compact on the wire.
        """
        wanted = merge_ranges(ranges)
        with self._lock:
            top = self._meta["uidnext"] - 1
            wanted = [(lo, min(hi, top)) for lo, hi in wanted if lo <= top]
            if modseq >= self._meta["expunged_floor"]:
                rows = self._db.execute(
                    "SELECT uid FROM expunged WHERE modseq > ? ORDER BY uid", (modseq,)
                )
                starts = [lo for lo, _hi in wanted]
                uids = [uid for (uid,) in rows if _within(uid, starts, wanted)]
                return merge_ranges((uid, uid) for uid in uids)
            existing = sorted(self._records)
        gaps: list[tuple[int, int]] = []
        for lo, hi in wanted:
            at = bisect.bisect_left(existing, lo)
            while lo <= hi:
                if at < len(existing) and existing[at] <= hi:
                    if existing[at] > lo:
                        gaps.append((lo, existing[at] - 1))
                    lo = existing[at] + 1
                    at += 1
                else:
                    gaps.append((lo, hi))
                    break
        return gaps

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

    def header(self, uid: int) -> bytes:
        """The message's header block (CRLF, with its blank line)."""
        with self._lock:
            record = self._need(uid)
            row = self._db.execute(
                f"SELECT header, {_UNPARSED} FROM cache WHERE uid = ?", (uid,)
            ).fetchone()
        if row and row[0] is not None:
            return bytes(row[0])
        if row is None or row[1]:
            parsed = self._parse([uid]).get(uid)
            if parsed is not None:
                return parsed.header
        data = self.content(record)
        try:
            return bytes(data[: mime.header_block_end(data, 0, len(data))])
        finally:
            _close(data)

    def envelope(self, uid: int) -> dict[str, Any]:
        with self._lock:
            record = self._need(uid)
            row = self._db.execute("SELECT envelope FROM cache WHERE uid = ?", (uid,)).fetchone()
        if row and row[0]:
            return json.loads(row[0])
        # No JSON: parsed lazily (only the wire form is kept) or never (header() parses it).
        return mime.envelope(mime.parse_header_fields(self.header(record.uid)))

    def envelopes_wire(self, uids: list[int]) -> dict[int, bytes]:
        """ENVELOPEs as IMAP bytes (``mime.envelope_imap``) of many messages: one range query
        per chunk of ascending ``uids``; entries missing from the cache are made and stored."""
        found: dict[int, bytes] = {}
        legacy: dict[int, str] = {}  # version-1 rows: the JSON form only
        with self._lock:
            for lo, hi in _chunks(uids):
                rows = self._db.execute(
                    "SELECT uid, envwire, CASE WHEN envwire IS NULL THEN envelope END"
                    " FROM cache WHERE uid BETWEEN ? AND ?",
                    (lo, hi),
                )
                for uid, wire, env in rows:
                    if wire is not None:
                        found[uid] = wire
                    elif env:
                        legacy[uid] = env
        # Rows come by UID range: found may hold UIDs between the asked ones, so count by name.
        missing = [(uid, legacy.get(uid)) for uid in uids if uid not in found]
        if not missing:
            return found
        made: list[tuple[bytes, int]] = []
        unparsed: list[int] = []
        for uid, env in missing:
            if uid not in self._records:
                continue
            if not env:
                unparsed.append(uid)
                continue
            found[uid] = wire = mime.envelope_imap(json.loads(env))  # a version-1 row
            made.append((wire, uid))
        if made:
            with self._lock, contextlib.suppress(sqlite3.Error), self._transaction():
                self._db.executemany("UPDATE cache SET envwire = ? WHERE uid = ?", made)
        for uid, parsed in self._parse(unparsed).items():
            found[uid] = parsed.envwire
        return found

    def headers(self, uids: list[int]) -> dict[int, bytes]:
        """Cached header blocks of many messages (ascending ``uids``), one query per chunk.

        Messages whose header was too big to cache are left out: ask ``header()`` for them.
        """
        found: dict[int, bytes] = {}
        parsed_uncached: set[int] = set()  # parsed, header too big to keep
        with self._lock:
            for lo, hi in _chunks(uids):
                rows = self._db.execute(
                    f"SELECT uid, header, {_UNPARSED} FROM cache WHERE uid BETWEEN ? AND ?",
                    (lo, hi),
                )
                for uid, header, unparsed in rows:
                    if header is not None:
                        found[uid] = header
                    elif not unparsed:
                        parsed_uncached.add(uid)
        # Rows come by UID range (found may hold UIDs between the asked ones): check each.
        todo = [u for u in uids if u not in found and u not in parsed_uncached]
        if todo:
            for uid, parsed in self._parse(todo).items():
                if parsed.cached:
                    found[uid] = parsed.header
        return found

    def _parse(self, uids: list[int]) -> dict[int, _Parsed]:
        """Parse the header blocks of never-parsed messages and store what readers need (the
        header block and the ENVELOPE as IMAP bytes), in one transaction.

        The files are read and parsed without the folder lock (other sessions go on); a message
        expunged meanwhile is left out. Two sessions parsing the same message both get the
        same answer, and only the first one's row update writes anything.
        """
        parsed: dict[int, _Parsed] = {}
        rows: list[tuple[Any, ...]] = []
        for uid in uids:
            record = self._records.get(uid)
            if record is None:
                continue
            try:
                header = self._read_header(record)
            except FileNotFoundError:
                continue
            wire = mime.envelope_imap(mime.envelope_of(header))
            cached = len(header) < MAX_CACHED_HEADER
            parsed[uid] = _Parsed(header, wire, cached)
            rows.append((header if cached else None, wire, uid))
        if rows:
            with self._lock, contextlib.suppress(sqlite3.Error), self._transaction():
                self._db.executemany(
                    "INSERT INTO cache (header, envwire, uid) VALUES (?, ?, ?) ON CONFLICT (uid)"
                    " DO UPDATE SET header = excluded.header, envwire = excluded.envwire"
                    f" WHERE {_UNPARSED}",
                    # Expunged while the files were read: no row may outlive its message.
                    [row for row in rows if row[2] in self._records],
                )
        return parsed

    def _read_header(self, record: Record) -> bytes:
        try:
            return read_header_block(self._base + record.name, record.crlf)[0]
        except FileNotFoundError:
            return read_header_block(self._relocate(record), record.crlf)[0]

    def structure(self, uid: int) -> dict[str, Any]:
        """The MIME part tree with byte offsets into the CRLF form of the message."""
        with self._lock:
            record = self._need(uid)
            row = self._db.execute("SELECT structure FROM cache WHERE uid = ?", (uid,)).fetchone()
        if row and row[0]:
            return json.loads(row[0])
        data = self.content(record)
        try:
            tree = mime.parse_structure(data)
        finally:
            _close(data)
        self._cache(uid, "structure", json.dumps(tree))
        return tree

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

    def _cache(self, uid: int, column: str, value: str) -> None:
        assert column in _CACHE_COLUMNS
        with self._lock, contextlib.suppress(sqlite3.Error):
            if uid in self._records:
                self._db.execute(
                    f"INSERT INTO cache (uid, {column}) VALUES (?, ?)"
                    f" ON CONFLICT (uid) DO UPDATE SET {column} = excluded.{column}",
                    (uid, value),
                )

    def _need(self, uid: int) -> Record:
        record = self._records.get(uid)
        if record is None:
            raise Expunged(f"message {uid} was expunged")
        return record

    # --- synchronising with the directory -----------------------------------------------------

    def _stamp(self) -> tuple[int, int]:
        return (
            os.stat(self.path / "new").st_mtime_ns,
            os.stat(self.path / "cur").st_mtime_ns,
        )

    def needs_sync(self) -> bool:
        """Cheap (two stat calls): has anything touched new/ or cur/ since the last scan?

        True as well if they are gone (the folder was removed): ``exists`` tells which.
        """
        try:
            return self._stamp() != self._dir_stamp
        except FileNotFoundError:
            return True

    def exists(self) -> bool:
        return (self.path / "cur").is_dir()

    def _fsync_cur(self) -> None:
        try:
            fsync_dir(self.path / "cur")
        except FileNotFoundError:
            raise FolderGone(f"no folder at {self.path}") from None

    def sync(self, force: bool = False) -> bool:
        """Pick up files added, renamed or removed by anyone; True if the index changed."""
        with self._lock:
            try:
                stamp = self._stamp()
            except FileNotFoundError:
                return False  # the folder was deleted under us
            if not force and stamp == self._dir_stamp:
                return False
            started = time.time_ns()
            found = self._scan()
            missing = [key for key in self._by_key if key not in found]
            if missing:
                # A rename by another program between two readdir()s can hide a file: look again.
                found.update(self._scan())
            changed = self._apply_scan(found)
            # A directory touched within the last second may change again in the same mtime tick.
            recent = max(stamp) > started - 1_000_000_000
            self._dir_stamp = None if recent else stamp
            return changed

    def _scan(self) -> dict[str, str]:
        found: dict[str, str] = {}
        base = os.fspath(self.path) + os.sep
        for sub in ("new/", "cur/"):  # new first: a concurrent new -> cur move is never missed
            try:
                names = os.listdir(base + sub)
            except FileNotFoundError:
                continue
            for name in names:
                if name[0] != ".":
                    found[name.partition(":")[0]] = sub + name
        return found

    def _apply_scan(self, found: dict[str, str]) -> bool:
        gone = [uid for key, uid in self._by_key.items() if key not in found]
        renamed: list[Record] = []
        for key, name in found.items():
            uid = self._by_key.get(key)
            if uid is None:
                continue
            record = self._records[uid]
            if record.name != name:
                renamed.append(record._replace(name=name))
        new_keys = sorted(key for key in found if key not in self._by_key)
        if not gone and not renamed and not new_keys:
            return False
        modseq = self._meta["highestmodseq"] + 1
        if self._unwritten and not gone and not renamed:
            self._index_new(new_keys, found, modseq, write=False)
            self._meta["highestmodseq"] = modseq
            return True
        with self._transaction():
            if gone:
                self._expunge_rows(gone, modseq)
            for record in renamed:
                _, letters = split_name(record.name)
                flags = (record.flags - set(FLAG_LETTERS)) | letters
                if flags != record.flags:
                    record = record._replace(flags=frozenset(flags), modseq=modseq)
                self._put(record)
                self._db.execute(
                    "UPDATE messages SET name = ?, flags = ?, modseq = ? WHERE uid = ?",
                    (record.name, " ".join(sorted(record.flags)), record.modseq, record.uid),
                )
            if new_keys:
                self._index_new(new_keys, found, modseq)
            self._set_meta(highestmodseq=modseq)
        return True

    def _index_new(
        self, keys: list[str], found: dict[str, str], modseq: int, write: bool = True
    ) -> None:
        """Give files found by a scan their UIDs, from their names if those say enough
        (``name_facts``), else from one stat: the parsed columns stay NULL until a reader needs
        them (``_parse``), and so does INTERNALDATE of a file not stat'ed (stored as 0,
        ``fill_internaldates``). A Maildir name's leading timestamp is not its INTERNALDATE: an
        APPEND with a date (imapsync moving mail into Dovecot) sets the mtime, not the name.
        """
        uid = self._meta["uidnext"]
        base = os.fspath(self.path) + os.sep
        rows = []
        records = self._records
        by_key = self._by_key
        flag_sets: dict[str, tuple[frozenset[str], str]] = {}
        for key in keys:
            name = found[key]
            facts = name_facts(key)
            if facts is None:
                stat_facts = file_facts(base + name, key)
                if stat_facts is None:
                    continue  # gone already (expunged by another program)
                mtime, size, crlf = stat_facts
            else:
                mtime = None
                size, crlf = facts
            info = name[4 + len(key) :]  # after "new/" or "cur/" and the key: ":2,<letters>"
            cached = flag_sets.get(info)
            if cached is None:
                _, flags = split_name(name)
                cached = flag_sets[info] = (flags, " ".join(sorted(flags)))
            flags, text = cached
            records[uid] = Record(uid, key, name, flags, modseq, mtime, size, crlf)
            by_key[key] = uid
            if write:
                rows.append((uid, key, name, text, modseq, mtime or 0.0, size, int(crlf)))
            uid += 1
        self._uids = None
        if write:
            self._db.executemany(_INSERT_NEW, rows)
            self._set_meta(uidnext=uid)
        else:
            self._meta["uidnext"] = uid

    def fill_internaldates(self, uids: Iterable[int]) -> None:
        """Read the INTERNALDATE (mtime) of those of ``uids`` a scan indexed without a stat,
        and store it: FETCH INTERNALDATE, SEARCH by date and COPY call this before they look."""
        with self._lock:
            records = self._records
            todo = [uid for uid in uids if (r := records.get(uid)) and r.internaldate is None]
            if not todo:
                return
            base = os.fspath(self.path) + os.sep
            rows = []
            for uid in todo:
                record = records.get(uid)
                if record is None:
                    continue
                try:
                    mtime = os.stat(base + record.name).st_mtime
                except FileNotFoundError:
                    try:
                        mtime = os.stat(self._relocate(record)).st_mtime
                    except FileNotFoundError:
                        continue  # expunged by another program: the next update says so
                    record = records.get(uid)
                    if record is None:
                        continue
                records[uid] = record._replace(internaldate=mtime)
                rows.append((mtime, uid))
            if rows:
                with contextlib.suppress(sqlite3.Error), self._transaction():
                    self._db.executemany("UPDATE messages SET internaldate = ? WHERE uid = ?", rows)

    def _index_file(
        self,
        key: str,
        name: str,
        modseq: int,
        extra_flags: Iterable[str] = (),
        cached: tuple[Any, ...] | None = None,
    ) -> Record | None:
        path = self.path / name
        try:
            stat = os.stat(path)
            header, crlf = read_header_block(path)
            size = stat.st_size if crlf else canonical_size(path)
        except FileNotFoundError:
            return None
        _, letters = split_name(name)
        uid = self._meta["uidnext"]
        record = Record(
            uid=uid,
            key=key,
            name=name,
            flags=frozenset(letters | set(extra_flags)),
            modseq=modseq,
            internaldate=stat.st_mtime,
            size=size,
            crlf=crlf,
        )
        if cached is not None:
            header_blob, envelope_json, structure_json, *rest = cached
            envwire = rest[0] if rest else None
        else:
            header_blob = header if len(header) < MAX_CACHED_HEADER else None
            env = mime.envelope(mime.parse_header_fields(header))
            envelope_json = json.dumps(env)
            envwire = mime.envelope_imap(env)
            structure_json = None
        self._db.execute(
            _INSERT_NEW,
            (
                uid,
                key,
                name,
                " ".join(sorted(record.flags)),
                modseq,
                record.internaldate,
                size,
                int(crlf),
            ),
        )
        if any(v is not None for v in (header_blob, envelope_json, structure_json, envwire)):
            self._db.execute(
                "INSERT OR REPLACE INTO cache (uid, header, envelope, structure, envwire)"
                " VALUES (?, ?, ?, ?, ?)",
                (uid, header_blob, envelope_json, structure_json, envwire),
            )
        self._put(record)
        self._set_meta(uidnext=uid + 1)
        return record

    def _put(self, record: Record) -> None:
        if record.uid not in self._records:
            self._uids = None
        self._records[record.uid] = record
        self._by_key[record.key] = record.uid
        self._note_flags(record.flags)

    def _expunge_rows(self, uids: list[int], modseq: int) -> None:
        self._uids = None
        for uid in uids:
            record = self._records.pop(uid)
            self._by_key.pop(record.key, None)
        gone = [(u,) for u in uids]
        self._db.executemany("DELETE FROM messages WHERE uid = ?", gone)
        self._db.executemany("DELETE FROM cache WHERE uid = ?", gone)
        self._db.executemany(
            "INSERT OR REPLACE INTO expunged VALUES (?, ?)", [(u, modseq) for u in uids]
        )
        self._expunged_rows += len(uids)
        if self._expunged_rows > self.expunged_kept + self.expunged_kept // 10:
            self._prune_expunged()

    def _prune_expunged(self) -> None:
        """Forget the oldest expunges down to ``expunged_kept`` rows, by whole MODSEQs."""
        excess = self._expunged_rows - self.expunged_kept
        (floor,) = self._db.execute(
            "SELECT modseq FROM expunged ORDER BY modseq, uid LIMIT 1 OFFSET ?", (excess - 1,)
        ).fetchone()
        self._db.execute("DELETE FROM expunged WHERE modseq <= ?", (floor,))
        (self._expunged_rows,) = self._db.execute("SELECT count(*) FROM expunged").fetchone()
        self._set_meta(expunged_floor=max(floor, self._meta["expunged_floor"]))

    def _set_meta(self, **values: int) -> None:
        self._meta.update(values)
        if not self._unwritten:  # else ``_write_unwritten`` writes all of it
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [*values.items()])

    # --- changing ---------------------------------------------------------------------------

    def store_flags(
        self,
        uids: Iterable[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> tuple[list[Record], list[int]]:
        """Apply ``+``/``-``/``=`` ``flags`` to ``uids``.

        Returns (records whose flags changed, UIDs refused by UNCHANGEDSINCE). System flags are
        renamed into the file name first, so the index never claims what the Maildir does not.
        """
        wanted = frozenset(canonical_flag(f) for f in flags) - {"\\Recent"}
        with self._lock:
            self.sync()
            updates: list[tuple[Record, str, frozenset[str]]] = []
            refused: list[int] = []
            records = self._records
            base = os.fspath(self.path) + os.sep
            for uid in uids:
                record = records.get(uid)
                if record is None:
                    continue
                if unchanged_since is not None and record.modseq > unchanged_since:
                    refused.append(uid)
                    continue
                if mode == "+":
                    new_flags = record.flags | wanted
                elif mode == "-":
                    new_flags = record.flags - wanted
                else:
                    new_flags = wanted
                if new_flags == record.flags:
                    continue
                name = self._rename_for_flags(record, new_flags, base)
                if name is not None:
                    updates.append((records[uid], name, frozenset(new_flags)))
            if not updates:
                return [], refused
            # Assigned after the renames: a rescan they triggered may have used the next value.
            modseq = self._meta["highestmodseq"] + 1
            changed = [
                Record(r.uid, r.key, name, flags, modseq, r.internaldate, r.size, r.crlf)
                for r, name, flags in updates
            ]
            flag_text: dict[frozenset[str], str] = {}
            rows = []
            for record in changed:
                records[record.uid] = record
                self._note_flags(record.flags)
                text = flag_text.get(record.flags)
                if text is None:
                    text = flag_text[record.flags] = " ".join(sorted(record.flags))
                rows.append((record.name, text, modseq, record.uid))
            with self._transaction():
                self._db.executemany(
                    "UPDATE messages SET name = ?, flags = ?, modseq = ? WHERE uid = ?", rows
                )
                self._set_meta(highestmodseq=modseq)
            self._dir_stamp = None  # our rename moved the mtime; rescan once to be sure
            return changed, refused

    def _rename_for_flags(self, record: Record, flags: frozenset[str], base: str) -> str | None:
        """Rename the file so its name carries ``flags``; its new name (None: expunged)."""
        if system_flags(flags) == system_flags(record.flags) and record.name.startswith("cur/"):
            return record.name
        target = cur_name(record.key, flags)
        for _attempt in range(2):
            try:
                os.rename(base + record.name, base + target)
                return target
            except FileNotFoundError:
                self.sync(force=True)  # renamed (POP3 marked it seen) or deleted meanwhile
                record = self._records.get(record.uid)
                if record is None:
                    return None
        return None

    def expunge(self, uids: Iterable[int] | None = None, only_deleted: bool = True) -> list[int]:
        """Remove messages flagged \\Deleted (restricted to ``uids`` if given); returns UIDs."""
        return self.expunge_at(uids, only_deleted)[0]

    def expunge_at(
        self, uids: Iterable[int] | None = None, only_deleted: bool = True
    ) -> tuple[list[int], int]:
        """Like ``expunge``, with the MODSEQ of the expunge (QRESYNC reports it; 0 if none)."""
        with self._lock:
            self.sync()
            allowed = None if uids is None else set(uids)
            victims = [
                r
                for uid, r in sorted(self._records.items())
                if (allowed is None or uid in allowed)
                and (not only_deleted or "\\Deleted" in r.flags)
            ]
            if not victims:
                return [], 0
            for record in victims:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / record.name)
            self._fsync_cur()
            self._dir_stamp = None
            modseq = self._meta["highestmodseq"] + 1
            expunged = [r.uid for r in victims]
            with self._transaction():
                self._expunge_rows(expunged, modseq)
                self._set_meta(highestmodseq=modseq)
            return expunged, modseq

    def add_file(
        self,
        source: Path,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        cached: tuple[Any, ...] | None = None,
    ) -> Record:
        """Hard-link (or copy) the fsync'ed file ``source`` into cur/ and index it (APPEND, COPY).

        Durable on return.
        """
        flags = frozenset(canonical_flag(f) for f in flags) - {"\\Recent"}
        size = os.stat(source).st_size
        with self._lock:
            self.sync()
            key = _names.make(size)
            name = cur_name(key, flags)
            target = self.path / name
            try:
                os.link(source, target)
            except FileNotFoundError:
                if not self.exists():
                    raise FolderGone(f"no folder at {self.path}") from None
                raise
            except OSError:  # another filesystem, or no hard links there
                _copy_synced(source, target)
            if internaldate is not None:
                os.utime(target, (internaldate, internaldate))
            self._fsync_cur()
            modseq = self._meta["highestmodseq"] + 1
            with self._transaction():
                record = self._index_file(key, name, modseq, _keywords(flags), cached)
                self._set_meta(highestmodseq=modseq)
            self._dir_stamp = None
            if record is None:
                raise FileNotFoundError(f"{target} vanished while being added")
            return record

    def envelopes(self, uids: list[int]) -> dict[int, dict[str, Any]]:
        """Cached envelopes of many messages in one query (FETCH ENVELOPE of a whole folder)."""
        found: dict[int, dict[str, Any]] = {}
        missing: list[int] = []
        with self._lock:
            for start in range(0, len(uids), 500):
                chunk = uids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT uid, envelope FROM cache WHERE uid IN ({marks})", chunk
                )
                for uid, text in rows:
                    if text:
                        found[uid] = json.loads(text)
                missing += [uid for uid in chunk if uid not in found]
        self.headers(sorted(missing))  # parses those never parsed, in bulk
        for uid in missing:
            with contextlib.suppress(FileNotFoundError):
                found[uid] = self.envelope(uid)
        return found

    def cached_facts(self, uid: int) -> tuple[Any, Any, Any, Any]:
        """(header, envelope, structure, envwire) cache columns, to carry over on COPY."""
        with self._lock:
            row = self._db.execute(
                "SELECT header, envelope, structure, envwire FROM cache WHERE uid = ?", (uid,)
            ).fetchone()
            return tuple(row) if row else (None, None, None, None)

    def copy_to(self, target: FolderIndex, uids: Iterable[int]) -> list[tuple[int, int]]:
        """Copy messages (flags, keywords, internal date kept) into ``target``: (src, dst) UIDs."""
        pairs: list[tuple[int, int]] = []
        uids = list(uids)
        self.fill_internaldates(uids)  # kept on the copy even where it cannot be hard-linked
        for uid in uids:
            record = self.get(uid)
            if record is None:
                continue
            facts = self.cached_facts(uid)
            for _attempt in range(2):
                try:
                    new = target.add_file(
                        self.file_path(record), record.flags, record.internaldate, facts
                    )
                    pairs.append((uid, new.uid))
                    break
                except FolderGone:
                    raise  # the target went: nothing more can be copied
                except FileNotFoundError:  # the source was renamed or expunged meanwhile
                    self.sync(force=True)
                    record = self.get(uid)
                    if record is None:
                        break
        return pairs

    def move_all_to(self, target: FolderIndex) -> list[tuple[int, int]]:
        """Move every message into ``target`` (RENAME INBOX, RFC 3501 §6.3.5): (src, dst) UIDs.

        Copy then expunge, like MOVE: a message delivered meanwhile simply stays here, and a
        crash in between leaves a duplicate rather than a loss.
        """
        self.sync()
        pairs = self.copy_to(target, [record.uid for record in self.records()])
        self.expunge([src for src, _dst in pairs], only_deleted=False)
        return pairs


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-adjacent ranges covering the same numbers."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted((min(a, b), max(a, b)) for a, b in ranges):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _within(number: int, starts: list[int], ranges: list[tuple[int, int]]) -> bool:
    """Is ``number`` in one of the merged ``ranges`` (``starts`` are their low ends)?"""
    at = bisect.bisect_right(starts, number) - 1
    return at >= 0 and number <= ranges[at][1]


def _chunks(uids: list[int], size: int = 500) -> Iterable[tuple[int, int]]:
    """(lowest, highest) of each run of ``size`` ascending UIDs: BETWEEN queries read a few
    rows too many at most (those the caller did not ask for are ignored by it)."""
    uids = sorted(uids)
    for start in range(0, len(uids), size):
        chunk = uids[start : start + size]
        yield chunk[0], chunk[-1]


UIDVALIDITY_HINT = "mailsuite-uidvalidity"
_uidvalidity_lock = threading.Lock()


def uidvalidity_mark(folder: Path) -> Path:
    """The file holding the highest UIDVALIDITY given to any folder of a Maildir++ root: in
    the root itself (INBOX's directory; other folders are its ``.Name`` children)."""
    folder = Path(folder)
    root = folder.parent if folder.name.startswith(".") else folder
    return root / UIDVALIDITY_HINT


def next_uidvalidity(mark: Path, *older: Path) -> int:
    """A UIDVALIDITY above the clock's seconds and above every value ``mark`` (and the
    per-folder ``older`` hints of earlier versions) recorded; recorded in ``mark`` before it is
    returned (written to a temporary file and renamed over, so a crash leaves the old or the
    new value, never a torn one)."""
    with _uidvalidity_lock:
        previous = 0
        for path in (mark, *older):
            with contextlib.suppress(OSError, ValueError):
                previous = max(previous, int(path.read_text().strip()))
        value = max(int(time.time()), previous + 1) & 0xFFFFFFFF or 1
        with contextlib.suppress(OSError):
            temporary = mark.with_name(f"{mark.name}.{os.getpid()}.{threading.get_ident()}")
            temporary.write_text(f"{value}\n")
            os.replace(temporary, mark)
        return value


def _copy_synced(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def _move_parsed_columns(db: sqlite3.Connection) -> None:
    """Version 1/2 -> 3: parsed columns from ``messages`` into ``cache``, in one transaction.
    A 10,000-message folder takes about a second, once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT OR REPLACE INTO cache (uid, header, envelope, structure, envwire)"
            " SELECT uid, header, envelope, structure, envwire FROM messages WHERE"
            " header IS NOT NULL OR envelope IS NOT NULL OR structure IS NOT NULL"
            " OR envwire IS NOT NULL"
        )
        db.execute(
            "UPDATE messages SET header = NULL, envelope = NULL, structure = NULL, envwire = NULL"
            " WHERE header IS NOT NULL OR envelope IS NOT NULL OR structure IS NOT NULL"
            " OR envwire IS NOT NULL"
        )
        db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (SCHEMA_VERSION,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _close(data: Any) -> None:
    if isinstance(data, mmap.mmap):
        data.close()


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
