"""Trace and fix-up headers written in front of accepted messages.

The header block is inspected once, as bytes, when DATA has delivered it; nothing parses the body.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.utils import formatdate

# More Received: headers than this means a forwarding loop (Postfix's hopcount_limit is 50).
MAX_HOPS = 50

_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:", re.IGNORECASE | re.MULTILINE)
_DATE = re.compile(rb"^date[ \t]*:", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class TraceInfo:
    """What the Received: header says about how a message reached us."""

    helo: str
    client_ip: str
    hostname: str
    message_id: str
    esmtp: bool
    tls: str | None  # e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
    auth_user: str | None
    recipients: tuple[str, ...]


def protocol_keyword(esmtp: bool, tls: bool, authenticated: bool) -> str:
    """The "with" keyword of RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA."""
    if not esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(info: TraceInfo) -> bytes:
    """A Postfix-style Received: header (RFC 5321 §4.4), folded with tabs."""
    lines = [f"Received: from {_clean(info.helo)} (unknown [{info.client_ip}])"]
    if info.tls:
        lines.append(f"\t(using {info.tls})")
    if info.auth_user:
        lines.append(f"\t(Authenticated sender: {info.auth_user})")
    keyword = protocol_keyword(info.esmtp, info.tls is not None, info.auth_user is not None)
    lines.append(f"\tby {info.hostname} (mailsuite) with {keyword} id {info.message_id}")
    stamp = formatdate(usegmt=False)
    if len(info.recipients) == 1:
        lines.append(f"\tfor <{info.recipients[0]}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def return_path_header(sender: str) -> bytes:
    return f"Return-Path: <{sender}>\r\n".encode()


def count_hops(header_block: bytes) -> int:
    return len(_RECEIVED.findall(header_block))


def submission_fixups(header_block: bytes, hostname: str) -> bytes:
    """Message-ID: and Date: that a submission server adds when the client left them out."""
    extra = b""
    if not _MESSAGE_ID.search(header_block):
        extra += f"Message-ID: <{uuid.uuid4().hex}@{hostname}>\r\n".encode()
    if not _DATE.search(header_block):
        extra += f"Date: {formatdate(localtime=True)}\r\n".encode()
    return extra


def _clean(text: str) -> str:
    """HELO names are client input: keep them printable and on one line."""
    return "".join(ch if 0x20 < ord(ch) < 0x7F else "?" for ch in text)[:255] or "unknown"
