"""A queued message as the relay client sees it: what to check before sending, and DATA encoding.

The queue file may start with a ``Return-Path:`` line that only local Maildir delivery wants (the
same hard-linked file serves both); ``body_offset`` bytes are skipped when relaying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# More Received: headers than this means a forwarding loop (the SMTP server uses the same limit,
# Postfix's hopcount_limit).
MAX_HOPS = 50
# How much of the header block is kept for hop counting and for the bounce's original headers.
MAX_HEADER_BYTES = 256 * 1024

_CHUNK = 64 * 1024
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class MessageInfo:
    path: Path
    offset: int  # first byte to relay
    size: int  # bytes relayed (before dot-stuffing)
    eight_bit: bool  # any byte >= 0x80: needs 8BITMIME (or SMTPUTF8) at the peer
    hops: int  # Received: headers
    headers: bytes  # the header block (without the blank line), at most MAX_HEADER_BYTES


def inspect_message(path: Path, offset: int) -> MessageInfo:
    """Scan the message once (blocking: call in a worker thread)."""
    eight_bit = False
    head = bytearray()
    head_done = False
    size = 0
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            if not eight_bit and not chunk.isascii():
                eight_bit = True
            if not head_done:
                head += chunk
                end = _header_end(head)
                if end >= 0:
                    del head[end:]
                    head_done = True
                elif len(head) > MAX_HEADER_BYTES:
                    del head[MAX_HEADER_BYTES:]
                    head_done = True
    headers = bytes(head)
    return MessageInfo(
        path=Path(path),
        offset=offset,
        size=size,
        eight_bit=eight_bit,
        hops=len(_RECEIVED.findall(headers)),
        headers=headers,
    )


def _header_end(data: bytearray) -> int:
    """Index where the blank line after the header block starts, or -1."""
    if data.startswith(b"\r\n") or data.startswith(b"\n"):
        return 0
    ends = [i + 1 for i in (data.find(b"\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else -1


class DotStuffer:
    """Encodes a message for DATA: CRLF line endings, leading dots doubled (RFC 5321 §4.5.2),
    and the terminating ``.`` line. Works on chunks of any size, split anywhere.

    Bare CR and bare LF become CRLF, as the SMTP server does on the way in, so nothing this
    client sends can end DATA early or smuggle a second message.
    """

    def __init__(self) -> None:
        self._line_start = True
        self._pending_cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True  # maybe the first half of a CRLF split between chunks
        if not chunk:
            return b""
        data = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n.", b"\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\n")
        return data.replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        """The rest: a line ending if the message lacked a final one, then ``.CRLF``."""
        if self._pending_cr or not self._line_start:
            tail = b"\r\n"
        else:
            tail = b""
        self._pending_cr, self._line_start = False, True
        return tail + b".\r\n"
