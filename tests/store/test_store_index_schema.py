"""The index file's schema: new files, and the index files of every earlier version on users'
disks (all with ``PRAGMA user_version`` 0), built here with the statements those versions ran."""

from __future__ import annotations

import json
import sqlite3

import pytest

from mailsuite.store import mime
from mailsuite.store.index import INDEX_FILE, SCHEMA_VERSION, FolderIndex, schema

# The tables each earlier version created, as it created them.
VERSION_1 = """
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
    structure TEXT
);
CREATE TABLE IF NOT EXISTS expunged (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);
"""
VERSION_2 = VERSION_1.replace("    structure TEXT\n", "    structure TEXT,\n    envwire BLOB\n")
VERSION_3 = (
    VERSION_2
    + """CREATE TABLE IF NOT EXISTS cache (
    uid INTEGER PRIMARY KEY,
    header BLOB,
    envelope TEXT,
    structure TEXT,
    envwire BLOB
);
"""
)
COLUMNS = [
    "uid",
    "key",
    "name",
    "flags",
    "modseq",
    "internaldate",
    "size",
    "crlf",
    "header",
    "envelope",
    "structure",
    "envwire",
]

BODY = b"\r\nbody\r\n"
MESSAGES = [  # uid, base name, flags, modseq, subject
    (3, "100.M000001P1Q1.host,S=46", "", 4, "one"),
    (5, "200.M000001P1Q2.host,S=46", "$Label \\Seen", 6, "two"),
]
STRUCTURE = {"type": "text", "subtype": "plain", "hs": 0, "bs": 0, "end": 0}


def _header(subject: str) -> bytes:
    return f"From: a@b.c\r\nSubject: {subject}\r\nX-Pad: 12\r\n".encode()


def _envelope(subject: str) -> dict:
    return mime.envelope(mime.parse_header_fields(_header(subject) + b"\r\n"))


def _maildir(root):
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir()
    for _uid, key, flags, _modseq, subject in MESSAGES:
        name = f"cur/{key}:2,S" if "\\Seen" in flags else f"new/{key}"
        (root / name).write_bytes(_header(subject) + BODY)
    return root


def _old_index(root, version: int, upgraded: bool = False) -> None:
    """An index file as version ``version`` left it: every message parsed (those versions
    parsed on first contact), UIDs 3 and 5 (1, 2 and 4 expunged), meta as it wrote it.
    ``upgraded``: a version-1 file that version 2 opened (it added the column at the end)."""
    db = sqlite3.connect(root / INDEX_FILE)
    db.executescript({1: VERSION_1, 2: VERSION_2, 3: VERSION_3}[1 if upgraded else version])
    if upgraded:
        db.execute("ALTER TABLE messages ADD COLUMN envwire BLOB")
    meta = {"version": version, "uidvalidity": 1234, "uidnext": 6, "highestmodseq": 7}
    meta["recent_uid"] = 5
    if version > 1:
        meta["expunged_floor"] = 0
    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    db.executemany("INSERT INTO expunged VALUES (?, ?)", [(1, 2), (2, 3), (4, 7)])
    for uid, key, flags, modseq, subject in MESSAGES:
        name = f"cur/{key}:2,S" if "\\Seen" in flags else f"new/{key}"
        header = _header(subject) + b"\r\n"
        envelope = _envelope(subject)
        parsed = [header, json.dumps(envelope), json.dumps(STRUCTURE)]
        if version > 1:
            parsed.append(mime.envelope_imap(envelope))
        row = [uid, key, name, flags, modseq, 1_000_000.0, 46, 1]
        if version < 3:
            row += parsed
        else:
            row += [None] * 4
            db.execute("INSERT INTO cache VALUES (?, ?, ?, ?, ?)", [uid, *parsed])
        db.execute(f"INSERT INTO messages VALUES ({', '.join('?' * len(row))})", row)
    db.commit()
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    db.close()


def _on_disk(root):
    db = sqlite3.connect(root / INDEX_FILE)
    try:
        return {
            "user_version": db.execute("PRAGMA user_version").fetchone()[0],
            "tables": {
                n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            },
            "columns": [row[1] for row in db.execute("PRAGMA table_info(messages)")],
            "meta": dict(db.execute("SELECT key, value FROM meta")),
            "parsed_in_messages": db.execute(
                "SELECT count(*) FROM messages WHERE header IS NOT NULL OR envelope IS NOT NULL"
                " OR structure IS NOT NULL"
            ).fetchone()[0],
            "cache": db.execute("SELECT * FROM cache ORDER BY uid").fetchall()
            if "cache" in {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
            else None,
        }
    finally:
        db.close()


def test_a_new_index_is_made_at_the_current_version_and_written_at_settle(tmp_path):
    root = _maildir(tmp_path)
    index = FolderIndex(root)
    index.sync()
    disk = _on_disk(root)
    assert disk["user_version"] == SCHEMA_VERSION == 3
    assert disk["tables"] == {"meta", "messages", "expunged", "cache"}
    assert disk["columns"] == COLUMNS  # the same columns, in the same order, as before
    assert disk["meta"] == {}  # nothing on disk before settle (a cold SELECT waits for none)
    index.settle()
    assert _on_disk(root)["meta"]["version"] == SCHEMA_VERSION
    index.close()


@pytest.mark.parametrize(
    ("version", "upgraded"), [(1, False), (2, False), (2, True)], ids=["v1", "v2", "v1-then-v2"]
)
def test_an_older_index_keeps_its_uids_and_moves_its_parsed_columns_once(
    tmp_path, version, upgraded
):
    root = _maildir(tmp_path)
    _old_index(root, version, upgraded)
    index = FolderIndex(root)
    index.sync()
    assert index.uidvalidity == 1234 and not index.unwritten
    assert [(r.uid, r.key, " ".join(sorted(r.flags)), r.modseq) for r in index.records()] == [
        (uid, key, flags, modseq) for uid, key, flags, modseq, _subject in MESSAGES
    ]
    status = index.status()
    assert (status.uidnext, status.highestmodseq) == (6, 7)
    assert index.changes_since(2)[1] == [2, 4]  # the expunge history came along
    disk = _on_disk(root)
    assert disk["user_version"] == 3 and disk["meta"]["version"] == 3
    assert disk["columns"] == COLUMNS and disk["parsed_in_messages"] == 0
    assert [row[:4] for row in disk["cache"]] == [
        (uid, _header(s) + b"\r\n", json.dumps(_envelope(s)), json.dumps(STRUCTURE))
        for uid, _key, _flags, _modseq, s in MESSAGES
    ]
    # Served from the moved columns (the files are not read: STRUCTURE is not what they hold).
    assert index.structure(3) == STRUCTURE and index.envelope(5) == _envelope("two")
    wire = index.envelopes_wire([3, 5])  # version 1 had only JSON: made now, and kept
    assert wire == {uid: mime.envelope_imap(_envelope(s)) for uid, _k, _f, _m, s in MESSAGES}
    index.close()
    assert [row[4] for row in _on_disk(root)["cache"]] == [wire[3], wire[5]]


def test_a_version_3_index_from_before_user_version_is_only_stamped(tmp_path):
    root = _maildir(tmp_path)
    _old_index(root, 3)
    before = _on_disk(root)
    index = FolderIndex(root)
    index.sync()
    assert [r.uid for r in index.records()] == [3, 5] and index.uidvalidity == 1234
    after = _on_disk(root)
    assert after["user_version"] == 3
    assert {**after, "user_version": 0} == before
    index.close()


def test_migrations_run_once(tmp_path):
    root = _maildir(tmp_path)
    _old_index(root, 2)
    FolderIndex(root).close()
    # Were the move to run again, it would take this into the cache table.
    db = sqlite3.connect(root / INDEX_FILE)
    db.execute("UPDATE messages SET structure = 'again' WHERE uid = 3")
    db.commit()
    db.close()
    index = FolderIndex(root)
    assert index.structure(3) == STRUCTURE
    index.close()


def test_a_failing_step_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    root = _maildir(tmp_path)
    _old_index(root, 1)
    before = _on_disk(root)

    def broken(db):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS[:2], broken))
    db = sqlite3.connect(root / INDEX_FILE, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(db)
    db.close()
    assert _on_disk(root) == before  # no column added, nothing stamped


def test_an_index_of_a_newer_version_is_opened_as_it_is(tmp_path):
    root = _maildir(tmp_path)
    _old_index(root, 3)
    db = sqlite3.connect(root / INDEX_FILE)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("CREATE TABLE later (x)")
    db.commit()
    db.close()
    index = FolderIndex(root)
    index.sync()
    assert [r.uid for r in index.records()] == [3, 5] and index.uidvalidity == 1234
    index.close()
    disk = _on_disk(root)
    assert disk["user_version"] == SCHEMA_VERSION + 1 and "later" in disk["tables"]


@pytest.mark.parametrize(
    ("script", "upgraded", "expected"),
    [("", False, 0), (VERSION_1, False, 1), (VERSION_2, False, 2), (VERSION_1, True, 2)]
    + [(VERSION_3, False, 3)],
)
def test_legacy_version_reads_the_layout(tmp_path, script, upgraded, expected):
    db = sqlite3.connect(tmp_path / INDEX_FILE)
    db.executescript(script)
    if upgraded:
        db.execute("ALTER TABLE messages ADD COLUMN envwire BLOB")
    assert schema.legacy_version(db) == expected
    db.close()


def test_a_lost_first_index_of_an_older_version_starts_afresh(tmp_path):
    """Tables but no meta: a version-2 process died before writing its first index."""
    root = _maildir(tmp_path)
    db = sqlite3.connect(root / INDEX_FILE)
    db.executescript(VERSION_2)
    db.close()
    index = FolderIndex(root)
    index.sync()
    assert index.unwritten and [r.uid for r in index.records()] == [1, 2]
    index.settle()
    disk = _on_disk(root)
    assert disk["user_version"] == 3 and disk["meta"]["version"] == 3 and disk["cache"] == []
    index.close()


def test_a_migration_waiting_for_another_connection_leaves_what_it_did(tmp_path):
    """Two openers of one old file: the second waits for the first's transaction and finds
    the file stamped (here by a newer version), and neither runs a step again."""
    import threading
    import time

    root = _maildir(tmp_path)
    _old_index(root, 2)
    first = sqlite3.connect(root / INDEX_FILE, isolation_level=None)
    first.execute("BEGIN IMMEDIATE")
    first.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    second = sqlite3.connect(root / INDEX_FILE, isolation_level=None, check_same_thread=False)
    waiting = threading.Thread(target=schema.migrate, args=(second,))
    waiting.start()
    time.sleep(0.2)
    first.execute("COMMIT")
    waiting.join()
    first.close()
    second.close()
    disk = _on_disk(root)
    assert disk["user_version"] == SCHEMA_VERSION + 1 and disk["cache"] is None
