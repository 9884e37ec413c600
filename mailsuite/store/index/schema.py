"""The index file's schema: ordered migrations, tracked in ``PRAGMA user_version``.

Migration N (1-based) turns a version N-1 index into version N, inside the one transaction that
also records N; a new file runs them all. Append new steps; never edit a released one, since
indexes on users' disks have already run it.

Indexes written before this scheme (versions 1 to 3) all have ``user_version`` 0, like a new
file: ``legacy_version`` tells them apart once, by their tables and columns (the way every
earlier version looked), and the steps they lack run as for any other index. The ``version``
row of the ``meta`` table is kept for people reading a file with sqlite3; SQLite's header is
what counts.

An index of a newer version than this code knows is opened as it is, as earlier versions
always did: each step so far only added what older code ignores (a column, a table), and a step
that older code could not read would have to keep it from such a file itself.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

INDEX_FILE = "mailsuite-index.sqlite"


def _create_tables(db: sqlite3.Connection) -> None:
    """1: meta values, one row per message (with its parsed columns), expunged UIDs."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS messages (
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
    structure TEXT
)"""
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS expunged (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL)"
    )


def _add_envwire(db: sqlite3.Connection) -> None:
    """2: the ``envwire`` column (ENVELOPE as IMAP bytes). A version-1 index gains the column
    and fills it lazily from the ``envelope`` JSON; nothing is rebuilt."""
    db.execute("ALTER TABLE messages ADD COLUMN envwire BLOB")


def _add_cache_table(db: sqlite3.Connection) -> None:
    """3: the parsed columns live in their own table, ``cache``: a ``messages`` row is ~150 bytes
    instead of ~1.5 KB, so loading a folder, STORE on thousands of messages (one page rewritten
    per ~25 rows instead of per 2) and a scan of flags read a tenth of the pages. An older
    index moves its parsed columns there once, on open: a 10,000-message folder takes about a
    second.

    The messages table keeps its version-2 parsed columns (always NULL now): older versions
    reading a version-3 index see unparsed rows and parse them again, which is correct.
    """
    db.execute(
        """CREATE TABLE IF NOT EXISTS cache (
    uid INTEGER PRIMARY KEY,
    header BLOB,
    envelope TEXT,
    structure TEXT,
    envwire BLOB
)"""
    )
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
    # An index with meta values says which version it is; a new one writes them (version
    # included) only once its first rows are written (``FolderIndex.settle``).
    db.execute("UPDATE meta SET value = 3 WHERE key = 'version'")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_tables,
    _add_envwire,
    _add_cache_table,
)

SCHEMA_VERSION = len(MIGRATIONS)

# What ``FolderIndex`` writes for a message it indexes; the parsed columns go into ``cache``.
INSERT_NEW = (
    "INSERT INTO messages (uid, key, name, flags, modseq, internaldate, size, crlf)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
CACHE_COLUMNS = ("header", "envelope", "structure", "envwire")


def connect(path: Path) -> sqlite3.Connection:
    """Open the index file at ``path`` (created if missing) at SCHEMA_VERSION, in autocommit
    mode. sqlite3.DatabaseError if it is damaged (the caller sets it aside and starts anew)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        migrate(db)
        db.execute("SELECT count(*) FROM messages").fetchone()
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection) -> None:
    """Bring the index to SCHEMA_VERSION in one transaction (``db`` is in autocommit mode)."""
    if _version(db) >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        stamped = _version(db)  # another connection may have migrated while we waited
        if stamped < SCHEMA_VERSION:
            for number in range((stamped or legacy_version(db)) + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def legacy_version(db: sqlite3.Connection) -> int:
    """The version of an index from before ``user_version`` was set (0: a new, empty file).

    Version 1 had no ``envwire`` column and version 2 no ``cache`` table; opening a version-1
    index with version 2 added the column, with version 3 the table.
    """
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    if "messages" not in tables:
        return 0
    if "envwire" not in {row[1] for row in db.execute("PRAGMA table_info(messages)")}:
        return 1
    return 2 if "cache" not in tables else 3


def _version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]
