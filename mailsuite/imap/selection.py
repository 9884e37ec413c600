"""A session's view of its selected folder.

IMAP numbers messages by position (message sequence numbers), so each session keeps its own UID
list and changes it only when it may tell the client (RFC 3501 §5.2, §7.4.1): new messages are
announced with EXISTS, flag changes with FETCH, expunges with EXPUNGE, but never an EXPUNGE
while a FETCH, STORE or SEARCH is answered. The index's MODSEQ drives this: a view asks the index
what changed since the last MODSEQ it has seen. mailsuite/imap/hub.py tells views about each other.
"""

from __future__ import annotations

import bisect
from array import array
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
    # Ascending UIDs of the view. Usually the index's own shared array (``FolderIndex.
    # uid_array``): copied only when this view starts to differ (``own``), shared again once
    # it has caught up (``adopt``), so idle sessions on a big folder cost no per-session list.
    uids: array
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
    shared: bool = True  # ``uids`` belongs to the index: copy before changing it
    keywords: frozenset[str] = frozenset()  # the folder's keywords the client was told of

    def own(self) -> None:
        """Make ``uids`` this view's private copy before changing it."""
        if self.shared:
            self.uids = array("I", self.uids)
            self.shared = False

    def adopt(self, snapshot: array) -> None:
        """Share the index's ``snapshot`` again if this view holds exactly the same UIDs."""
        if not self.shared and not self.pending_expunge and self.uids == snapshot:
            self.uids = snapshot
            self.shared = True

    def flags_update(self) -> bytes:
        """FLAGS and PERMANENTFLAGS again if the folder gained keywords since the client was
        last told: sent before any response that may show one of them."""
        keywords = self.index.keywords
        # The index's set only grows and ours is an earlier value of it: equal sizes, same set.
        if len(keywords) == len(self.keywords):
            return b""
        self.keywords = keywords
        return wire.flag_responses(keywords, self.readonly)

    def msn(self, uid: int) -> int | None:
        """Message sequence number of ``uid`` (binary search: uids are ascending)."""
        uids = self.uids
        lo = bisect.bisect_left(uids, uid)
        return lo + 1 if lo < len(uids) and uids[lo] == uid else None

    def absorb(self, changed: list[Record], expunged: list[int], highest: int) -> list[int]:
        """Take in what the index reports since ``self.modseq`` (reactor thread); returns the
        UIDs that joined the view."""
        last = self.uids[-1] if self.uids else 0
        known_last = last
        msn = self.msn
        appended: list[int] = []
        for uid in expunged:
            if uid <= known_last and msn(uid) is not None:
                if self.expunge_horizon is None:
                    self.expunge_horizon = self.modseq
                self.pending_expunge.add(uid)
                self.pending_flags.pop(uid, None)
        for record in changed:
            if record.uid <= known_last and msn(record.uid) is not None:
                if record.uid in self.pending_expunge:
                    continue
                if self.reported.get(record.uid, 0) >= record.modseq:
                    continue
                self.pending_flags[record.uid] = record
            elif record.uid > last:
                appended.append(record.uid)
                last = record.uid
        if appended:
            self.own()
            self.uids.extend(appended)
        self.modseq = max(self.modseq, highest)
        return appended

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
        if self.reported:
            # Entries at or below the view's MODSEQ can no longer hold anything back: every
            # change still to come is above it (and nothing is pending now).
            modseq = self.modseq
            self.reported = {u: m for u, m in self.reported.items() if m > modseq}
        return out

    def note_shown(self, uid: int, modseq: int) -> None:
        """The client was just sent the flags of ``uid`` at ``modseq``: no unsolicited FETCH
        for it later (remembered only where that could matter, to keep sessions small)."""
        if (modseq > self.modseq or uid in self.pending_flags) and self.reported.get(
            uid, 0
        ) < modseq:
            self.reported[uid] = modseq

    def remove(self, uids) -> list[bytes]:
        """Take expunged ``uids`` out of the view: their EXPUNGE (or VANISHED) responses."""
        out: list[bytes] = []
        gone: list[int] = []
        for uid in sorted(uids, reverse=True):
            msn = self.msn(uid)
            if msn is not None:
                out.append(b"* %d EXPUNGE\r\n" % msn)
                self.own()
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
