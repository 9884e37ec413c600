"""The MTA-STS policy of this server (RFC 8461): one text for every local domain (they share one
MX), served by the web listener and announced by ``mailsuite-admin dns`` with an id derived from
it, so the two can never disagree."""

from __future__ import annotations

import hashlib

_ID_LENGTH = 16


def policy_text(mode: str, mx: str, max_age: int) -> str:
    """The policy file: key/value lines ending in CRLF (RFC 8461 §3.2)."""
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"


def policy_id(text: str) -> str:
    """A hash of the policy: it changes exactly when the policy does, which is what tells
    senders to fetch it again (RFC 8461 §3.1), with no state to keep."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:_ID_LENGTH]
