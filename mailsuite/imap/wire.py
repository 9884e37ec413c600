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
    return (
        f"* FLAGS ({flags})\r\n* OK [PERMANENTFLAGS {permanent}] Flags permitted\r\n"
    ).encode("utf-8", "replace")


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
