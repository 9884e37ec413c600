"""Keeping the index in step with the directory: files added, renamed or removed by anyone.

The MDA, POP3 and external tools add, rename (flags) and unlink files at any time. ``sync()``
scans new/ and cur/ (only when a directory's mtime moved), gives unknown files fresh UIDs (in
name order, so our names, which start with the delivery time, get UIDs in delivery order),
turns renamed files into flag changes and vanished ones into expunges.

First contact is cheap, as in Dovecot: a file found here is indexed from its name and at most
one stat (size from ``,W=``/``,S=``, see ``names.name_facts`` and ``files.file_facts``; flags
from ``:2,``; INTERNALDATE from the mtime, read on first need); parsing waits for a reader
(cache.py).

These functions are ``FolderIndex`` methods (bound in folder.py); they take the folder's lock
as the methods always did.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailsuite.store.index.changes import expunge_rows
from mailsuite.store.index.files import canonical_size, file_facts
from mailsuite.store.index.records import Record
from mailsuite.store.index.schema import INSERT_NEW
from mailsuite.store.names import FLAG_LETTERS, name_facts, split_flags

if TYPE_CHECKING:
    from mailsuite.store.index.folder import FolderIndex


def _stamp(index: FolderIndex) -> tuple[int, int]:
    return (
        os.stat(index.path / "new").st_mtime_ns,
        os.stat(index.path / "cur").st_mtime_ns,
    )


def needs_sync(index: FolderIndex) -> bool:
    """Cheap (two stat calls): has anything touched new/ or cur/ since the last scan?

    True as well if they are gone (the folder was removed): ``exists`` tells which.
    """
    try:
        return _stamp(index) != index._dir_stamp
    except FileNotFoundError:
        return True


def exists(index: FolderIndex) -> bool:
    return (index.path / "cur").is_dir()


def sync(index: FolderIndex, force: bool = False) -> bool:
    """Pick up files added, renamed or removed by anyone; True if the index changed."""
    with index._lock:
        try:
            stamp = _stamp(index)
        except FileNotFoundError:
            return False  # the folder was deleted under us
        if not force and stamp == index._dir_stamp:
            return False
        started = time.time_ns()
        found = _scan(index)
        missing = [key for key in index._by_key if key not in found]
        if missing:
            # A rename by another program between two readdir()s can hide a file: look again.
            found.update(_scan(index))
        changed = _apply_scan(index, found)
        # A directory touched within the last second may change again in the same mtime tick.
        recent = max(stamp) > started - 1_000_000_000
        index._dir_stamp = None if recent else stamp
        return changed


def _scan(index: FolderIndex) -> dict[str, str]:
    found: dict[str, str] = {}
    base = os.fspath(index.path) + os.sep
    for sub in ("new/", "cur/"):  # new first: a concurrent new -> cur move is never missed
        try:
            names = os.listdir(base + sub)
        except FileNotFoundError:
            continue
        for name in names:
            if name[0] != ".":
                found[name.partition(":")[0]] = sub + name
    return found


def _apply_scan(index: FolderIndex, found: dict[str, str]) -> bool:
    gone = [uid for key, uid in index._by_key.items() if key not in found]
    renamed: list[Record] = []
    for key, name in found.items():
        uid = index._by_key.get(key)
        if uid is None:
            continue
        record = index._records[uid]
        if record.name != name:
            renamed.append(record._replace(name=name))
    new_keys = sorted(key for key in found if key not in index._by_key)
    if not gone and not renamed and not new_keys:
        return False
    modseq = index._meta["highestmodseq"] + 1
    if index._unwritten and not gone and not renamed:
        _index_new(index, new_keys, found, modseq, write=False)
        index._meta["highestmodseq"] = modseq
        return True
    with index._transaction():
        if gone:
            expunge_rows(index, gone, modseq)
        for record in renamed:
            _, letters = split_flags(record.name)
            flags = (record.flags - set(FLAG_LETTERS)) | letters
            if flags != record.flags:
                record = record._replace(flags=frozenset(flags), modseq=modseq)
            index._put(record)
            index._db.execute(
                "UPDATE messages SET name = ?, flags = ?, modseq = ? WHERE uid = ?",
                (record.name, " ".join(sorted(record.flags)), record.modseq, record.uid),
            )
        if new_keys:
            _index_new(index, new_keys, found, modseq)
        index._set_meta(highestmodseq=modseq)
    return True


def _index_new(
    index: FolderIndex, keys: list[str], found: dict[str, str], modseq: int, write: bool = True
) -> None:
    """Give files found by a scan their UIDs, from their names if those say enough
    (``name_facts``), else from one stat: the parsed columns stay NULL until a reader needs
    them (``cache._parse``), and so does INTERNALDATE of a file not stat'ed (stored as 0,
    ``fill_internaldates``). A Maildir name's leading timestamp is not its INTERNALDATE: an
    APPEND with a date (imapsync moving mail into Dovecot) sets the mtime, not the name.
    """
    uid = index._meta["uidnext"]
    base = os.fspath(index.path) + os.sep
    rows = []
    records = index._records
    by_key = index._by_key
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
            _, flags = split_flags(name)
            cached = flag_sets[info] = (flags, " ".join(sorted(flags)))
        flags, text = cached
        records[uid] = Record(uid, key, name, flags, modseq, mtime, size, crlf)
        by_key[key] = uid
        if write:
            rows.append((uid, key, name, text, modseq, mtime or 0.0, _stored(size), int(crlf)))
        uid += 1
    index._uids = None
    if write:
        index._db.executemany(INSERT_NEW, rows)
        index._set_meta(uidnext=uid)
    else:
        index._meta["uidnext"] = uid


def _stored(size: int | None) -> int:
    """The ``size`` column: -1 for a size not measured yet (the column is NOT NULL)."""
    return -1 if size is None else size


def loaded(size: int) -> int | None:
    return None if size < 0 else size


def fill_sizes(index: FolderIndex, uids: Iterable[int]) -> None:
    """Count the RFC822.SIZE of those of ``uids`` a scan left unmeasured (bare-LF files whose
    names do not say it, see ``files.file_facts``) and store it: FETCH RFC822.SIZE and SEARCH
    LARGER/SMALLER call this before they look. Reads each such file once, ever."""
    _fill(index, uids, "size", canonical_size)


def fill_internaldates(index: FolderIndex, uids: Iterable[int]) -> None:
    """Read the INTERNALDATE (mtime) of those of ``uids`` a scan indexed without a stat,
    and store it: FETCH INTERNALDATE, SEARCH by date and COPY call this before they look."""
    _fill(index, uids, "internaldate", lambda path: os.stat(path).st_mtime)


def _fill(
    index: FolderIndex, uids: Iterable[int], field: str, measure: Callable[[Path | str], Any]
) -> None:
    """Set the record field ``field`` (also its column) where it is still None, from
    ``measure(path of the message file)``; a message another program renamed is found again,
    one it expunged is skipped (the next update says so)."""
    assert field in ("size", "internaldate")
    with index._lock:
        records = index._records
        todo = [uid for uid in uids if (r := records.get(uid)) and getattr(r, field) is None]
        if not todo:
            return
        rows = []
        for uid in todo:
            record = records.get(uid)
            if record is None:
                continue
            try:
                value = measure(index._base + record.name)  # a str: no Path per message
            except FileNotFoundError:
                try:
                    value = measure(index._relocate(record))
                except FileNotFoundError:
                    continue
                record = records.get(uid)
                if record is None:
                    continue
            records[uid] = record._replace(**{field: value})
            rows.append((value, uid))
        if rows:
            with contextlib.suppress(sqlite3.Error), index._transaction():
                index._db.executemany(f"UPDATE messages SET {field} = ? WHERE uid = ?", rows)
