"""Modified UTF-7 (RFC 3501 §5.1.3): IMAP's encoding of folder names on the wire.

Also used for Maildir++ directory names, as Courier and Dovecot do, so folders created here look
the same to those tools.
"""

from __future__ import annotations

import base64
import re


class MUTF7Error(ValueError):
    """A string that is not valid modified UTF-7."""


def _b64_encode(text: str) -> str:
    raw = text.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """Unicode -> modified UTF-7 (printable ASCII except '&' kept as is)."""
    out: list[str] = []
    pending: list[str] = []
    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            if pending:
                out.append("&" + _b64_encode("".join(pending)) + "-")
                pending = []
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    if pending:
        out.append("&" + _b64_encode("".join(pending)) + "-")
    return "".join(out)


_SHIFT = re.compile(r"&([^-]*)-")


def decode(text: str) -> str:
    """Modified UTF-7 -> unicode; MUTF7Error for anything malformed or non-canonical."""
    if any(not 0x20 <= ord(c) <= 0x7E for c in text):
        raise MUTF7Error("8-bit or control characters in a modified UTF-7 name")
    out: list[str] = []
    pos = 0
    while True:
        amp = text.find("&", pos)
        if amp < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:amp])
        match = _SHIFT.match(text, amp)
        if match is None:
            raise MUTF7Error("unterminated '&' shift in a modified UTF-7 name")
        chunk = match.group(1)
        if not chunk:
            out.append("&")
        else:
            if "/" in chunk or "=" in chunk:
                raise MUTF7Error("bad base64 in a modified UTF-7 name")
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                raw = base64.b64decode(padded, validate=True)
                decoded = raw.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError):
                raise MUTF7Error("bad base64 in a modified UTF-7 name") from None
            if any(0x20 <= ord(c) <= 0x7E for c in decoded):
                raise MUTF7Error("printable ASCII encoded in a modified UTF-7 name")
            out.append(decoded)
        pos = match.end()
    return "".join(out)
