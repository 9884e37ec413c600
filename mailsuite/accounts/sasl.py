"""Decoding SASL responses (RFC 4422) for the PLAIN (RFC 4616) and LOGIN mechanisms.

SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH carry the same base64 client responses; decoding
them in one place means one set of rules for "=" (an empty response), "*" (the client cancels)
and what a PLAIN message must look like. Each protocol turns a ``SASLError`` into its reply.
"""

from __future__ import annotations

import base64
import binascii

MECHANISMS = ("PLAIN", "LOGIN")


class SASLError(Exception):
    """A response that cannot be used; ``str()`` says why, in words for the client."""


class SASLCancelled(SASLError):
    """The client answered "*": the exchange ends (RFC 4422 §3.5)."""


def decode_response(raw: bytes) -> bytes:
    """One base64 client response ("=" is an empty one)."""
    raw = raw.strip(b" \r")
    if raw == b"*":
        raise SASLCancelled("Authentication cancelled")
    if raw == b"=":
        return b""
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise SASLError("Cannot decode the response") from None


def decode_plain(raw: bytes) -> tuple[bytes, bytes]:
    """(user name, password) from a PLAIN response: ``authzid NUL authcid NUL passwd``. An
    authorization identity other than the user's own is refused: nobody logs in as another."""
    parts = decode_response(raw).split(b"\0")
    if len(parts) != 3 or (parts[0] and parts[0] != parts[1]):
        raise SASLError("Malformed PLAIN response")
    return parts[1], parts[2]
