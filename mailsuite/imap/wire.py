"""Rendering IMAP response data: strings, address lists, ENVELOPE and BODYSTRUCTURE (RFC 3501 §7).

Everything here returns bytes; values that are not plain ASCII (or contain CR/LF, quotes get
escaped) go out as literals so 8-bit header text reaches the client unchanged.
"""

from __future__ import annotations

import time
from typing import Any

from mailsuite.store import mime, mutf7

NIL = b"NIL"


# Shared with the index, which caches ENVELOPEs in this form (mailsuite.store.mime).
astring = mime.imap_string
envelope = mime.envelope_imap


def mailbox_name(name: str) -> bytes:
    """A folder name in modified UTF-7, quoted."""
    return astring(mutf7.encode(name))


def uid_set(ranges) -> bytes:
    """Merged (low, high) ranges as an IMAP sequence set: ``1:3,7``."""
    return b",".join(b"%d" % lo if lo == hi else b"%d:%d" % (lo, hi) for lo, hi in ranges)


def flag_list(flags) -> bytes:
    """``(\\Seen foo)``; memoised per flag set (a folder has few distinct ones)."""
    if isinstance(flags, frozenset):
        known = _FLAG_LISTS.get(flags)
        if known is None:
            if len(_FLAG_LISTS) > 10_000:
                _FLAG_LISTS.clear()
            known = _FLAG_LISTS[flags] = _flag_list(flags)
        return known
    return _flag_list(flags)


def _flag_list(flags) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode("utf-8", "replace") + b")"


_FLAG_LISTS: dict[frozenset, bytes] = {}

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "$Forwarded")


def flag_responses(keywords, readonly: bool) -> bytes:
    """The untagged FLAGS and PERMANENTFLAGS of a folder with these ``keywords``: at SELECT,
    and again whenever the folder gains a keyword (RFC 3501 §7.2.6: clients keep their list
    of a folder's flags from these responses)."""
    names = list(SYSTEM_FLAGS) + sorted(k for k in keywords if k not in SYSTEM_FLAGS)
    flags = " ".join(names)
    permanent = "()" if readonly else f"({flags} \\*)"
    return (f"* FLAGS ({flags})\r\n* OK [PERMANENTFLAGS {permanent}] Flags permitted\r\n").encode(
        "utf-8", "replace"
    )


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def internal_date(timestamp: float) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` in the server's local zone."""
    tm = time.localtime(timestamp)
    offset = tm.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (
        f'"{tm.tm_mday:2d}-{_MONTHS[tm.tm_mon - 1]}-{tm.tm_year:04d} '
        f'{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"'
    ).encode("ascii")


def _params(params: list | None) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(astring(k) + b" " + astring(v) for k, v in params) + b")"


def _disposition(disp: list | None) -> bytes:
    if not disp:
        return NIL
    return b"(" + astring(disp[0]) + b" " + _params(disp[1]) + b")"


def body_structure(node: dict[str, Any], extended: bool = True) -> bytes:
    """BODYSTRUCTURE (``extended``) or BODY of a part tree from mailsuite.store.mime."""
    if "parts" in node:
        out = b"(" + b"".join(body_structure(p, extended) for p in node["parts"])
        out += b" " + astring(node["subtype"].upper())
        if extended:
            params = [p for p in node["params"]]
            out += b" " + _params(params) + b" " + _disposition(node.get("disp"))
            out += b" " + astring(node.get("lang")) + b" " + astring(node.get("loc"))
        return out + b")"
    fields = [
        astring(node["type"].upper()),
        astring(node["subtype"].upper()),
        _params(node["params"]),
        astring(node.get("id")),
        astring(node.get("desc")),
        astring(node["enc"].upper()),
        str(node["end"] - node["bs"]).encode(),
    ]
    message = node.get("message")
    if message is not None:
        fields.append(envelope(message["envelope"]))
        fields.append(body_structure(message["structure"], extended))
        fields.append(str(node.get("lines", 0)).encode())
    elif node["type"] == "text":
        fields.append(str(node.get("lines", 0)).encode())
    if extended:
        fields += [
            astring(node.get("md5")),
            _disposition(node.get("disp")),
            astring(node.get("lang")),
            astring(node.get("loc")),
        ]
    return b"(" + b" ".join(fields) + b")"


def compact_uids(numbers: list[int]) -> str:
    """UIDs as a uid-set in the given order: runs of consecutive numbers as a:b."""
    out: list[str] = []
    start = prev = None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(str(start) if start == prev else f"{start}:{prev}")
            start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


def join_runs(pieces: list) -> list:
    """Runs of bytes joined into one (one transport write per batch, not per message)."""
    out: list = []
    run: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            run.append(piece)
        else:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(piece)
    if run:
        out.append(b"".join(run))
    return out


def list_line(verb: str, attributes: list[str], separator: str, name: str) -> bytes:
    """``* LIST (\\HasNoChildren) "/" "Sent"`` (or LSUB)."""
    head = f'* {verb} ({" ".join(attributes)}) "{separator}" '.encode()
    return head + mailbox_name(name) + b"\r\n"


def status_line(name: str, items: list[tuple[str, int]]) -> bytes:
    """``* STATUS "INBOX" (MESSAGES 3 UNSEEN 1)``."""
    values = " ".join(f"{item} {value}" for item, value in items).encode()
    return b"* STATUS " + mailbox_name(name) + b" (" + values + b")\r\n"


def select_answer(
    keywords, readonly: bool, exists: int, recent: int, first_unseen: int | None, status
) -> bytes:
    """The untagged responses of SELECT/EXAMINE (RFC 3501 §6.3.1, RFC 7162's HIGHESTMODSEQ);
    ``status`` is the folder's ``Status``."""
    lines = [f"* {exists} EXISTS", f"* {recent} RECENT"]
    if first_unseen is not None:
        lines.append(f"* OK [UNSEEN {first_unseen}] First unseen")
    lines += [
        f"* OK [UIDVALIDITY {status.uidvalidity}] UIDs valid",
        f"* OK [UIDNEXT {status.uidnext}] Predicted next UID",
        f"* OK [HIGHESTMODSEQ {status.highestmodseq}] Highest",
    ]
    return flag_responses(keywords, readonly) + "".join(f"{line}\r\n" for line in lines).encode()


def flags_fetch(msn: int, uid: int | None, flags: bytes | None, modseq: int | None) -> bytes:
    """``* 3 FETCH (UID 7 FLAGS (\\Seen) MODSEQ (12))``, each part only if given (STORE)."""
    items = []
    if uid is not None:
        items.append(b"UID %d" % uid)
    if flags is not None:
        items.append(b"FLAGS " + flags)
    if modseq is not None:
        items.append(b"MODSEQ (%d)" % modseq)
    return b"* %d FETCH (%s)\r\n" % (msn, b" ".join(items))
