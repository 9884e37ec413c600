"""The parsed-columns cache: header blocks, envelopes and MIME structure, parsed once.

A file found by ``sync()`` is indexed from its name and one stat; its header block and envelope
are left NULL, and the first reader that needs them (FETCH ENVELOPE / header sections, SEARCH)
parses them for its whole batch (``_parse``) and stores them in the ``cache`` table, apart from
the small per-message columns (schema version 3). A message is "parsed" once its cache row has
``envwire`` or ``envelope`` (the JSON form, which older versions always wrote and lazy parsing
skips); ``header`` stays NULL for a parsed message only when its header block is too big to
cache. A ``cache`` row never outlives its message (``changes.expunge_rows`` deletes both).

Also here: the per-folder memo of values computed from a message's content (``memo``).

These functions are ``FolderIndex`` methods (bound in folder.py); they take the folder's lock
as the methods always did, and read files without it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailsuite.store import mime
from mailsuite.store.index.files import MAX_CACHED_HEADER, close_content, read_header_block
from mailsuite.store.index.records import Record
from mailsuite.store.index.schema import CACHE_COLUMNS

if TYPE_CHECKING:
    from mailsuite.store.index.folder import FolderIndex

# SQL over a ``cache`` row: the header was never parsed (no row at all says the same).
_UNPARSED = "(envelope IS NULL AND envwire IS NULL)"

# Kinds of memo (say, distinct HEADER.FIELDS lists) kept per folder; the oldest goes first.
MEMO_KINDS = 4


@dataclass(frozen=True)
class _Parsed:
    """What parsing a message's header block gives (see ``_parse``)."""

    header: bytes
    envwire: bytes
    cached: bool  # False: header block too big to keep in the index


def memo(index: FolderIndex, kind: tuple) -> dict[int, bytes]:
    """A per-folder memo, UID -> bytes, for values computed from a message's content (say,
    the header fields a client asks for at every sync). Content never changes under a UID,
    so entries stay true until UIDVALIDITY changes, which starts a fresh memo; expunged
    UIDs are simply never asked for again. At most MEMO_KINDS kinds are kept."""
    key = (index.uidvalidity, *kind)
    with index._lock:
        memo = index._memos.get(key)
        if memo is None:
            while len(index._memos) >= MEMO_KINDS:
                index._memos.pop(next(iter(index._memos)))
            memo = index._memos[key] = {}
        return memo


def header(index: FolderIndex, uid: int) -> bytes:
    """The message's header block (CRLF, with its blank line)."""
    with index._lock:
        record = index._need(uid)
        row = index._db.execute(
            f"SELECT header, {_UNPARSED} FROM cache WHERE uid = ?", (uid,)
        ).fetchone()
    if row and row[0] is not None:
        return bytes(row[0])
    if row is None or row[1]:
        parsed = _parse(index, [uid]).get(uid)
        if parsed is not None:
            return parsed.header
    data = index.content(record)
    try:
        return bytes(data[: mime.header_block_end(data, 0, len(data))])
    finally:
        close_content(data)


def envelope(index: FolderIndex, uid: int) -> dict[str, Any]:
    with index._lock:
        record = index._need(uid)
        row = index._db.execute("SELECT envelope FROM cache WHERE uid = ?", (uid,)).fetchone()
    if row and row[0]:
        return json.loads(row[0])
    # No JSON: parsed lazily (only the wire form is kept) or never (header() parses it).
    return mime.envelope(mime.parse_header_fields(index.header(record.uid)))


def envelopes_wire(index: FolderIndex, uids: list[int]) -> dict[int, bytes]:
    """ENVELOPEs as IMAP bytes (``mime.envelope_imap``) of many messages: one range query
    per chunk of ascending ``uids``; entries missing from the cache are made and stored."""
    found: dict[int, bytes] = {}
    legacy: dict[int, str] = {}  # version-1 rows: the JSON form only
    with index._lock:
        for lo, hi in _chunks(uids):
            rows = index._db.execute(
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
        if uid not in index._records:
            continue
        if not env:
            unparsed.append(uid)
            continue
        found[uid] = wire = mime.envelope_imap(json.loads(env))  # a version-1 row
        made.append((wire, uid))
    if made:
        with index._lock, contextlib.suppress(sqlite3.Error), index._transaction():
            index._db.executemany("UPDATE cache SET envwire = ? WHERE uid = ?", made)
    for uid, parsed in _parse(index, unparsed).items():
        found[uid] = parsed.envwire
    return found


def headers(index: FolderIndex, uids: list[int]) -> dict[int, bytes]:
    """Cached header blocks of many messages (ascending ``uids``), one query per chunk.

    Messages whose header was too big to cache are left out: ask ``header()`` for them.
    """
    found: dict[int, bytes] = {}
    parsed_uncached: set[int] = set()  # parsed, header too big to keep
    with index._lock:
        for lo, hi in _chunks(uids):
            rows = index._db.execute(
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
        for uid, parsed in _parse(index, todo).items():
            if parsed.cached:
                found[uid] = parsed.header
    return found


def _parse(index: FolderIndex, uids: list[int]) -> dict[int, _Parsed]:
    """Parse the header blocks of never-parsed messages and store what readers need (the
    header block and the ENVELOPE as IMAP bytes), in one transaction.

    The files are read and parsed without the folder lock (other sessions go on); a message
    expunged meanwhile is left out. Two sessions parsing the same message both get the
    same answer, and only the first one's row update writes anything.
    """
    parsed: dict[int, _Parsed] = {}
    rows: list[tuple[Any, ...]] = []
    for uid in uids:
        record = index._records.get(uid)
        if record is None:
            continue
        try:
            header = _read_header(index, record)
        except FileNotFoundError:
            continue
        wire = mime.envelope_imap(mime.envelope_of(header))
        cached = len(header) < MAX_CACHED_HEADER
        parsed[uid] = _Parsed(header, wire, cached)
        rows.append((header if cached else None, wire, uid))
    if rows:
        with index._lock, contextlib.suppress(sqlite3.Error), index._transaction():
            index._db.executemany(
                "INSERT INTO cache (header, envwire, uid) VALUES (?, ?, ?) ON CONFLICT (uid)"
                " DO UPDATE SET header = excluded.header, envwire = excluded.envwire"
                f" WHERE {_UNPARSED}",
                # Expunged while the files were read: no row may outlive its message.
                [row for row in rows if row[2] in index._records],
            )
    return parsed


def _read_header(index: FolderIndex, record: Record) -> bytes:
    try:
        return read_header_block(index._base + record.name, record.crlf)[0]
    except FileNotFoundError:
        return read_header_block(index._relocate(record), record.crlf)[0]


def structure(index: FolderIndex, uid: int) -> dict[str, Any]:
    """The MIME part tree with byte offsets into the CRLF form of the message."""
    with index._lock:
        record = index._need(uid)
        row = index._db.execute("SELECT structure FROM cache WHERE uid = ?", (uid,)).fetchone()
    if row and row[0]:
        return json.loads(row[0])
    data = index.content(record)
    try:
        tree = mime.parse_structure(data)
    finally:
        close_content(data)
    _cache(index, uid, "structure", json.dumps(tree))
    return tree


def _cache(index: FolderIndex, uid: int, column: str, value: str) -> None:
    assert column in CACHE_COLUMNS
    with index._lock, contextlib.suppress(sqlite3.Error):
        if uid in index._records:
            index._db.execute(
                f"INSERT INTO cache (uid, {column}) VALUES (?, ?)"
                f" ON CONFLICT (uid) DO UPDATE SET {column} = excluded.{column}",
                (uid, value),
            )


def envelopes(index: FolderIndex, uids: list[int]) -> dict[int, dict[str, Any]]:
    """Cached envelopes of many messages in one query (FETCH ENVELOPE of a whole folder)."""
    found: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    with index._lock:
        for start in range(0, len(uids), 500):
            chunk = uids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = index._db.execute(
                f"SELECT uid, envelope FROM cache WHERE uid IN ({marks})", chunk
            )
            for uid, text in rows:
                if text:
                    found[uid] = json.loads(text)
            missing += [uid for uid in chunk if uid not in found]
    index.headers(sorted(missing))  # parses those never parsed, in bulk
    for uid in missing:
        with contextlib.suppress(FileNotFoundError):
            found[uid] = index.envelope(uid)
    return found


def cached_facts(index: FolderIndex, uid: int) -> tuple[Any, Any, Any, Any]:
    """(header, envelope, structure, envwire) cache columns, to carry over on COPY."""
    with index._lock:
        row = index._db.execute(
            "SELECT header, envelope, structure, envwire FROM cache WHERE uid = ?", (uid,)
        ).fetchone()
        return tuple(row) if row else (None, None, None, None)


def _chunks(uids: list[int], size: int = 500) -> Iterable[tuple[int, int]]:
    """(lowest, highest) of each run of ``size`` ascending UIDs: BETWEEN queries read a few
    rows too many at most (those the caller did not ask for are ignored by it)."""
    uids = sorted(uids)
    for start in range(0, len(uids), size):
        chunk = uids[start : start + size]
        yield chunk[0], chunk[-1]
