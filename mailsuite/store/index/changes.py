"""Changing a folder and remembering what changed: STORE, EXPUNGE, and the MODSEQ history
CONDSTORE and QRESYNC clients (and the other sessions on the folder) are told from.

Every change takes the next MODSEQ (``highestmodseq`` + 1) for all it touches. Changed and
added messages are found by their ``Record.modseq``; expunged ones by the ``expunged`` table,
which keeps the last ``MAX_EXPUNGED_KEPT`` or so (see there).

These functions are ``FolderIndex`` methods (bound in folder.py); they take the folder's lock
as the methods always did.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailsuite.store.index.records import Record
from mailsuite.store.names import canonical_flag, cur_name, system_flags

if TYPE_CHECKING:
    from mailsuite.store.index.folder import FolderIndex

# Expunged UIDs kept (with their MODSEQ) to tell CONDSTORE/QRESYNC clients and other sessions
# what went. Older rows are pruned by whole MODSEQs once there are 10% more than this, and the
# highest pruned MODSEQ is kept as ``expunged_floor``: a caller asking about changes since an
# older MODSEQ gets the UIDs it knows that no longer exist instead (exact, just not cheap).
# 10,000 rows are about 200 KB per folder and cover far more expunges than a client misses
# between two connections.
MAX_EXPUNGED_KEPT = 10_000


def expunged_floor(index: FolderIndex) -> int:
    """Expunges up to this MODSEQ may have been pruned from the history (0: none were)."""
    return index._meta["expunged_floor"]


def changes_since(
    index: FolderIndex, modseq: int, known: Iterable[int] = ()
) -> tuple[list[Record], list[int], int]:
    """(records changed or added after ``modseq``, UIDs expunged after it, HIGHESTMODSEQ).

    If that history was pruned (``modseq`` below ``expunged_floor``), the expunged UIDs are
    those of ``known`` (the caller's UIDs; a live list is copied first) that are gone.
    """
    with index._lock:
        changed = sorted(
            (r for r in index._records.values() if r.modseq > modseq), key=lambda r: r.uid
        )
        if modseq < index._meta["expunged_floor"]:
            gone = sorted({uid for uid in list(known) if uid not in index._records})
            return changed, gone, index._meta["highestmodseq"]
        expunged = [
            uid
            for (uid,) in index._db.execute(
                "SELECT uid FROM expunged WHERE modseq > ? ORDER BY uid", (modseq,)
            )
        ]
        return changed, expunged, index._meta["highestmodseq"]


def vanished_since(
    index: FolderIndex, modseq: int, ranges: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """QRESYNC's VANISHED (EARLIER): UID ranges within ``ranges`` expunged after ``modseq``.

    If that history was pruned, every UID within ``ranges`` below UIDNEXT that does not
    exist now: RFC 7162 §3.2.10.1 lets the server name UIDs the client never had (it
    ignores them), so the answer stays exact for the client and compact on the wire.
    """
    wanted = merge_ranges(ranges)
    with index._lock:
        top = index._meta["uidnext"] - 1
        wanted = [(lo, min(hi, top)) for lo, hi in wanted if lo <= top]
        if modseq >= index._meta["expunged_floor"]:
            rows = index._db.execute(
                "SELECT uid FROM expunged WHERE modseq > ? ORDER BY uid", (modseq,)
            )
            starts = [lo for lo, _hi in wanted]
            uids = [uid for (uid,) in rows if _within(uid, starts, wanted)]
            return merge_ranges((uid, uid) for uid in uids)
        existing = sorted(index._records)
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


def expunge_rows(index: FolderIndex, uids: list[int], modseq: int) -> None:
    """Forget ``uids`` (memory, ``messages`` and ``cache`` rows) and record them as expunged at
    ``modseq``; in the caller's transaction. An expunge or a scan that found files gone."""
    index._uids = None
    for uid in uids:
        record = index._records.pop(uid)
        index._by_key.pop(record.key, None)
    gone = [(u,) for u in uids]
    index._db.executemany("DELETE FROM messages WHERE uid = ?", gone)
    index._db.executemany("DELETE FROM cache WHERE uid = ?", gone)
    index._db.executemany(
        "INSERT OR REPLACE INTO expunged VALUES (?, ?)", [(u, modseq) for u in uids]
    )
    index._expunged_rows += len(uids)
    if index._expunged_rows > index.expunged_kept + index.expunged_kept // 10:
        _prune_expunged(index)


def _prune_expunged(index: FolderIndex) -> None:
    """Forget the oldest expunges down to ``expunged_kept`` rows, by whole MODSEQs."""
    excess = index._expunged_rows - index.expunged_kept
    (floor,) = index._db.execute(
        "SELECT modseq FROM expunged ORDER BY modseq, uid LIMIT 1 OFFSET ?", (excess - 1,)
    ).fetchone()
    index._db.execute("DELETE FROM expunged WHERE modseq <= ?", (floor,))
    (index._expunged_rows,) = index._db.execute("SELECT count(*) FROM expunged").fetchone()
    index._set_meta(expunged_floor=max(floor, index._meta["expunged_floor"]))


def store_flags(
    index: FolderIndex,
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
    with index._lock:
        index.sync()
        updates: list[tuple[Record, str, frozenset[str]]] = []
        refused: list[int] = []
        records = index._records
        base = os.fspath(index.path) + os.sep
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
            name = _rename_for_flags(index, record, new_flags, base)
            if name is not None:
                updates.append((records[uid], name, frozenset(new_flags)))
        if not updates:
            return [], refused
        # Assigned after the renames: a rescan they triggered may have used the next value.
        modseq = index._meta["highestmodseq"] + 1
        changed = [
            Record(r.uid, r.key, name, flags, modseq, r.internaldate, r.size, r.crlf)
            for r, name, flags in updates
        ]
        flag_text: dict[frozenset[str], str] = {}
        rows = []
        for record in changed:
            records[record.uid] = record
            index._note_flags(record.flags)
            text = flag_text.get(record.flags)
            if text is None:
                text = flag_text[record.flags] = " ".join(sorted(record.flags))
            rows.append((record.name, text, modseq, record.uid))
        with index._transaction():
            index._db.executemany(
                "UPDATE messages SET name = ?, flags = ?, modseq = ? WHERE uid = ?", rows
            )
            index._set_meta(highestmodseq=modseq)
        index._dir_stamp = None  # our rename moved the mtime; rescan once to be sure
        return changed, refused


def _rename_for_flags(
    index: FolderIndex, record: Record, flags: frozenset[str], base: str
) -> str | None:
    """Rename the file so its name carries ``flags``; its new name (None: expunged)."""
    if system_flags(flags) == system_flags(record.flags) and record.name.startswith("cur/"):
        return record.name
    target = cur_name(record.key, flags)
    for _attempt in range(2):
        try:
            os.rename(base + record.name, base + target)
            return target
        except FileNotFoundError:
            index.sync(force=True)  # renamed (POP3 marked it seen) or deleted meanwhile
            record = index._records.get(record.uid)
            if record is None:
                return None
    return None


def expunge(
    index: FolderIndex, uids: Iterable[int] | None = None, only_deleted: bool = True
) -> list[int]:
    """Remove messages flagged \\Deleted (restricted to ``uids`` if given); returns UIDs."""
    return index.expunge_at(uids, only_deleted)[0]


def expunge_at(
    index: FolderIndex, uids: Iterable[int] | None = None, only_deleted: bool = True
) -> tuple[list[int], int]:
    """Like ``expunge``, with the MODSEQ of the expunge (QRESYNC reports it; 0 if none)."""
    with index._lock:
        index.sync()
        allowed = None if uids is None else set(uids)
        victims = [
            r
            for uid, r in sorted(index._records.items())
            if (allowed is None or uid in allowed) and (not only_deleted or "\\Deleted" in r.flags)
        ]
        if not victims:
            return [], 0
        for record in victims:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(index.path / record.name)
        index._fsync_cur()
        index._dir_stamp = None
        modseq = index._meta["highestmodseq"] + 1
        expunged = [r.uid for r in victims]
        with index._transaction():
            expunge_rows(index, expunged, modseq)
            index._set_meta(highestmodseq=modseq)
        return expunged, modseq


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
