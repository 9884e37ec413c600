"""The Authentication-Results header field (RFC 8601): written by us, and forgeries of it removed.

A receiving MTA must remove any Authentication-Results field that claims to come from its own
ADMD (RFC 8601 §5) before adding its own, or a sender could write ``dkim=pass`` for a mail
client to believe. Ours is identified by the server's hostname as authserv-id.
"""

from __future__ import annotations

import re

_FIELD = re.compile(
    rb"^authentication-results[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n", re.I | re.M
)
_COMMENT = re.compile(rb"\([^()]*\)")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~@]+")  # RFC 2045 token chars, plus "@"


def strip_forged(header_block: bytes, authserv_id: str) -> tuple[bytes, int]:
    """``header_block`` without Authentication-Results fields naming ``authserv_id``; and how many
    were removed. Fields of other authserv-ids stay (they may matter to the user)."""
    ours = authserv_id.lower().encode()
    removed = 0

    def keep_or_drop(match: re.Match) -> bytes:
        nonlocal removed
        value = match.group(0).split(b":", 1)[1]
        value = _COMMENT.sub(b" ", value.replace(b"\r\n", b" "))
        claimed = value.split(b";", 1)[0].strip().split()[:1]
        if claimed and claimed[0].lower() == ours:
            removed += 1
            return b""
        return match.group(0)

    if b"uthentication-" not in header_block and b"UTHENTICATION-" not in header_block:
        return header_block, 0  # the common case: no regular-expression pass at all
    return _FIELD.sub(keep_or_drop, header_block), removed


def pvalue(value: str) -> str:
    """A property value: a token as is, anything else as a quoted-string (RFC 8601 §2.2)."""
    if value and _TOKEN.fullmatch(value):
        return value
    escaped = "".join(c for c in value if c.isprintable()).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# Runs of anything but printable ASCII other than "(", ")" and "\\" (spaces included: collapsed).
_UNSAFE_IN_COMMENT = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e]+")


def comment(text: str) -> str:
    """A comment safe in a header: printable ASCII, no parentheses, bounded length."""
    cleaned = _UNSAFE_IN_COMMENT.sub(" ", text).strip()[:100]
    return f" ({cleaned})" if cleaned else ""


def header(authserv_id: str, results: list[str]) -> bytes:
    """``Authentication-Results: <authserv-id>;`` and one method result per folded line."""
    if not results:
        return f"Authentication-Results: {authserv_id}; none\r\n".encode()
    lines = ";\r\n\t".join(results)
    return f"Authentication-Results: {authserv_id};\r\n\t{lines}\r\n".encode()
