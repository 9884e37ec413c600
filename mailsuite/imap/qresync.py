"""QRESYNC (RFC 7162 §3.2): SELECT/EXAMINE parameters and the resync a reconnecting client gets.

A client that remembers a folder's UIDVALIDITY and the highest MODSEQ it saw selects with
``(QRESYNC (uidvalidity modseq [known-uids] [seq-match-data]))`` and is told, before the tagged
OK, which of its UIDs were expunged (``VANISHED (EARLIER)``) and which messages changed or
arrived (FETCH with UID, FLAGS, MODSEQ): the same answer as ``UID FETCH known-uids (FLAGS)
(CHANGEDSINCE modseq VANISHED)``. The optional seq-match-data only lets a server narrow
VANISHED when it lacks history; it is checked for syntax and otherwise not needed here, since the
index answers exactly even after pruning (see ``FolderIndex.vanished_since``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from mailsuite.imap import wire
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.store.index import FolderIndex, Record, merge_ranges

ALL_UIDS = [(1, 2**32 - 1)]


@dataclass(frozen=True)
class QResync:
    uidvalidity: int
    modseq: int
    known: list[tuple[int, int]] | None  # None: every UID


@dataclass
class SelectParams:
    condstore: bool = False
    qresync: QResync | None = None


def parse_select_params(reader: Reader) -> SelectParams:
    """``[SP "(" select-param *(SP select-param) ")"]``; unknown parameters are BAD (RFC 4466)."""
    params = SelectParams()
    if not reader.maybe_sp():
        return params

    def one(r: Reader) -> None:
        key = r.keyword()
        if key == "CONDSTORE":
            params.condstore = True
        elif key == "QRESYNC":
            r.sp()
            params.qresync = _qresync(r)
        else:
            raise ParseError(f"unknown SELECT parameter {key}")

    reader.parenthesized(one)
    return params


def _qresync(reader: Reader) -> QResync:
    reader.expect(b"(")
    uidvalidity = reader.number(nonzero=True)
    reader.sp()
    modseq = reader.number(nonzero=True)
    known = None
    if reader.maybe_sp() and reader.peek() != ord("("):
        known = known_set(reader)
        reader.maybe_sp()
    if reader.accept(b"("):  # seq-match-data: (known-sequence-set SP known-uid-set)
        known_set(reader)
        reader.sp()
        known_set(reader)
        reader.expect(b")")
    reader.expect(b")")
    return QResync(uidvalidity, modseq, known)


def known_set(reader: Reader) -> list[tuple[int, int]]:
    """A sequence set without ``*`` (RFC 7162 §7 known-uids)."""
    ranges = reader.sequence_set()
    if any(lo is None or hi is None for lo, hi in ranges):
        raise ParseError("'*' is not allowed here")
    return [(min(lo, hi), max(lo, hi)) for lo, hi in ranges]


def vanished_earlier(index: FolderIndex, modseq: int, ranges: list[tuple[int, int]]) -> bytes:
    """``* VANISHED (EARLIER) ...`` for UIDs in ``ranges`` expunged after ``modseq`` (or b"")."""
    gone = index.vanished_since(modseq, ranges)
    return b"* VANISHED (EARLIER) %s\r\n" % wire.uid_set(gone) if gone else b""


def resync(
    index: FolderIndex,
    records: list[Record],
    request: QResync,
    flags_of: Callable[[Record], bytes],
) -> bytes:
    """What a QRESYNC SELECT adds to the usual responses (blocking: a worker thread).

    Nothing if UIDVALIDITY changed: the client then has to start over anyway.
    """
    if request.uidvalidity != index.uidvalidity:
        return b""
    ranges = merge_ranges(request.known or ALL_UIDS)
    starts = [lo for lo, _hi in ranges]
    out = [vanished_earlier(index, request.modseq, ranges)]
    for msn, record in enumerate(records, 1):
        at = bisect.bisect_right(starts, record.uid) - 1
        if record.modseq > request.modseq and at >= 0 and record.uid <= ranges[at][1]:
            out.append(
                b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n"
                % (msn, record.uid, flags_of(record), record.modseq)
            )
    return b"".join(out)
