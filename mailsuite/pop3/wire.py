"""Byte-stream transforms for POP3 multi-line responses, safe across chunk boundaries.

Both work on CRLF text (``mailsuite.store.maildrop.CRLFNormalizer`` output) fed in arbitrary
chunks. Twisted's stock POP3 server misses a "." that starts exactly at a chunk boundary; here
the state (are we at the start of a line?) is carried from one chunk to the next, and the tests
split messages at every byte offset.
"""

from __future__ import annotations

TERMINATOR = b".\r\n"


class DotStuffer:
    """RFC 1939 §3 byte-stuffing: a line beginning with "." gets one more "." in front."""

    def __init__(self) -> None:
        self._line_start = True

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        out = chunk.replace(b"\n.", b"\n..")
        if self._line_start and out[:1] == b".":
            out = b"." + out
        self._line_start = out[-1:] == b"\n"
        return out


class TopFilter:
    """Passes the header, the blank line after it, and ``body_lines`` lines of body (TOP).

    A message without a blank line is all header and passes whole. ``done`` turns true once
    the limit is reached; later input is dropped.
    """

    def __init__(self, body_lines: int) -> None:
        self._left = body_lines
        self._in_header = True
        self._line_len = 0  # bytes of the current, unfinished line seen so far
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if self.done or not chunk:
            return b""
        pos = 0
        while True:
            newline = chunk.find(b"\n", pos)
            if newline < 0:
                self._line_len += len(chunk) - pos
                return chunk
            length = self._line_len + newline + 1 - pos
            self._line_len = 0
            pos = newline + 1
            if self._in_header:
                if length <= 2:  # "\r\n": the blank line that ends the header
                    self._in_header = False
                    if self._left <= 0:
                        self.done = True
                        return chunk[:pos]
            else:
                self._left -= 1
                if self._left <= 0:
                    self.done = True
                    return chunk[:pos]
