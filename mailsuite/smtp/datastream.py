"""Decoding of the SMTP DATA stream with bytes operations, not one Python call per line.

Only ``<CRLF>.<CRLF>`` ends the data (RFC 5321 §4.1.1.4): the 2023 "SMTP smuggling" variants
(``<LF>.<LF>``, ``<LF>.<CR><LF>``, ``<CR>.<CR><LF>``) are plain content here. Bare CR and bare LF
in the content are then rewritten to CRLF, so the stored message has one line-ending convention
and no later hop can read a smuggled end-of-data marker out of it.
"""

from __future__ import annotations

import re

_END = b"\r\n.\r\n"
_BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class DataDecoder:
    """Turns raw DATA bytes into message content: finds the end marker and removes dot-stuffing.

    ``feed(chunk)`` returns ``(content, rest)``: ``content`` is the decoded bytes that are safe to
    hand on, ``rest`` is None while the message goes on, or the bytes that followed the end marker
    once it has been seen (the next pipelined commands).
    """

    def __init__(self) -> None:
        # The data starts right after the CRLF of the DATA command line: seed the buffer with it
        # so that a first line of "." or ".." is handled like any other line.
        self._pending = b"\r\n"
        self._seeded = True

    def feed(self, chunk: bytes) -> tuple[bytes, bytes | None]:
        buf = self._pending + chunk
        out: list[bytes] = []
        start = 0
        while True:
            i = buf.find(b"\r\n.", start)
            if i < 0:
                # Keep a possible partial "\r\n." marker (at most two bytes) for the next chunk.
                keep = 2 if buf.endswith(b"\r\n") else 1 if buf.endswith(b"\r") else 0
                cut = max(start, len(buf) - keep)
                out.append(buf[start:cut])
                self._pending = buf[cut:]
                break
            if len(buf) < i + 5:
                # Not enough bytes to tell end-of-data from a stuffed dot: wait for more.
                out.append(buf[start:i])
                self._pending = buf[i:]
                break
            if buf[i + 3 : i + 5] == b"\r\n":
                out.append(buf[start : i + 2])
                self._pending = b""
                return self._strip_seed(out), buf[i + 5 :]
            # A line that starts with "." and is not the end marker: drop the stuffed dot.
            out.append(buf[start : i + 2])
            start = i + 3
        return self._strip_seed(out), None

    def _strip_seed(self, out: list[bytes]) -> bytes:
        content = b"".join(out)
        if self._seeded and content:
            # The seeded CRLF is always the first two bytes handed out.
            self._seeded = False
            content = content[2:]
        return content


class LineEndingNormalizer:
    """Rewrites bare CR and bare LF to CRLF, also when a CR and its LF arrive in two chunks."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        data = self._carry + data
        self._carry = b""
        if data.endswith(b"\r"):
            data, self._carry = data[:-1], b"\r"
        crlf = data.count(b"\r\n")
        if data.count(b"\r") == crlf and data.count(b"\n") == crlf:
            return data
        return _BARE_NEWLINE.sub(b"\r\n", data)

    def flush(self) -> bytes:
        carry, self._carry = self._carry, b""
        return b"\r\n" if carry else b""
