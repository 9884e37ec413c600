"""A session's view of its selected folder.

IMAP numbers messages by position (message sequence numbers), so each session keeps its own UID
list and changes it only when it may tell the client (RFC 3501 §5.2, §7.4.1): new messages are
announced with EXISTS, flag changes with FETCH, expunges with EXPUNGE, but never an EXPUNGE
while a FETCH, STORE or SEARCH is answered. The index's MODSEQ drives this: a view asks the index
what changed since the last MODSEQ it has seen. mailsuite/imap/hub.py tells views about each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailsuite.imap import wire
from mailsuite.store.index import FolderIndex, Record, merge_ranges


@dataclass
class Selection:
    name: str
    path: Path
    index: FolderIndex
    readonly: bool
    uids: list[int]
    modseq: int
    recent: set[int] = field(default_factory=set)
    condstore: bool = False
    qresync: bool = False  # expunges go out as VANISHED (RFC 7162 §3.2.10.2)
    announced: int = 0  # the EXISTS count the client knows
    pending_expunge: set[int] = field(default_factory=set)
    pending_flags: dict[int, Record] = field(default_factory=dict)
    reported: dict[int, int] = field(default_factory=dict)  # uid -> modseq already sent
    version: int = 0  # the hub version this view has caught up with
    # A MODSEQ below every expunge held back in pending_expunge: sent as HIGHESTMODSEQ after
    # MODSEQ data, so a client resyncing from it later still learns of them (RFC 7162 §3.2).
    expunge_horizon: int | None = None

    def msn(self, uid: int) -> int | None:
        """Message sequence number of ``uid`` (binary search: uids are ascending)."""
        lo, hi = 0, len(self.uids)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.uids[mid] < uid:
                lo = mid + 1
            else:
                hi = mid
        return lo + 1 if lo < len(self.uids) and self.uids[lo] == uid else None

    def absorb(self, changed: list[Record], expunged: list[int], highest: int) -> None:
        """Take in what the index reports since ``self.modseq`` (reactor thread)."""
        last = self.uids[-1] if self.uids else 0
        known = set(self.uids)
        for uid in expunged:
            if uid in known:
                if self.expunge_horizon is None:
                    self.expunge_horizon = self.modseq
                self.pending_expunge.add(uid)
                self.pending_flags.pop(uid, None)
        for record in changed:
            if record.uid in known:
                if record.uid in self.pending_expunge:
                    continue
                if self.reported.get(record.uid, 0) >= record.modseq:
                    continue
                self.pending_flags[record.uid] = record
            elif record.uid > last:
                self.uids.append(record.uid)
                last = record.uid
        self.modseq = max(self.modseq, highest)

    def flush(self, allow_expunge: bool, uid_fetch: bool = False) -> list[bytes]:
        """Untagged responses for everything pending that may be sent now."""
        out: list[bytes] = []
        if allow_expunge and self.pending_expunge:
            out += self.remove(self.pending_expunge)
            self.pending_expunge.clear()
            self.expunge_horizon = None
        if len(self.uids) != self.announced:
            self.announced = len(self.uids)
            out.append(b"* %d EXISTS\r\n" % self.announced)
        for uid, record in sorted(self.pending_flags.items()):
            msn = self.msn(uid)
            if msn is None or self.reported.get(uid, 0) >= record.modseq:
                continue
            items = b"UID %d FLAGS %s" % (uid, self.flags_of(record))
            if self.condstore:
                items += b" MODSEQ (%d)" % record.modseq
            out.append(b"* %d FETCH (%s)\r\n" % (msn, items))
            self.reported[uid] = record.modseq
        self.pending_flags.clear()
        return out

    def remove(self, uids) -> list[bytes]:
        """Take expunged ``uids`` out of the view: their EXPUNGE (or VANISHED) responses."""
        out: list[bytes] = []
        gone: list[int] = []
        for uid in sorted(uids, reverse=True):
            msn = self.msn(uid)
            if msn is not None:
                out.append(b"* %d EXPUNGE\r\n" % msn)
                del self.uids[msn - 1]
                self.announced -= 1
                self.pending_flags.pop(uid, None)
                gone.append(uid)
        if self.qresync:
            ranges = merge_ranges((uid, uid) for uid in gone)
            return [b"* VANISHED %s\r\n" % wire.uid_set(ranges)] if gone else []
        return out

    def held_back(self) -> bytes:
        """After MODSEQ data while expunges wait (FETCH, STORE, SEARCH): a lower HIGHESTMODSEQ."""
        if self.condstore and self.pending_expunge and self.expunge_horizon is not None:
            return b"* OK [HIGHESTMODSEQ %d] Expunges pending\r\n" % self.expunge_horizon
        return b""

    def flags_of(self, record: Record) -> bytes:
        flags = set(record.flags)
        if record.uid in self.recent:
            flags.add("\\Recent")
        return wire.flag_list(flags)
