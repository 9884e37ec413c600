"""The signature of a webhook call: HMAC-SHA256 of ``"<timestamp>.<body>"`` with the secret.

Sent as ``X-Mailsuite-Timestamp: <unix seconds>`` and ``X-Mailsuite-Signature: sha256=<hex>``.
The timestamp is signed with the body, so a receiver that refuses old timestamps (say, more
than five minutes) also refuses a captured call replayed later. ``verify`` is what a receiver
written in Python does (the README shows it standalone).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Mailsuite-Timestamp"
SIGNATURE_HEADER = "X-Mailsuite-Signature"
SCHEME = "sha256="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Mailsuite-Signature value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return SCHEME + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """Whether a call is authentic and recent (within ``tolerance`` seconds)."""
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
