"""The DKIM body hash of a message, computed while its body streams in (RFC 6376 §3.4.4, §3.7).

"relaxed" body canonicalization works on whole lines, so each chunk is cut at its last CRLF and
the rest waits for the next chunk; empty lines are held back (they count only if a non-empty
line follows: trailing empty lines are ignored). Most text needs no change at all (no tab, no
run of spaces, no space before a line end): that is found with bounded ``find`` calls and the
chunk is hashed in place, without a copy; only chunks that do need it go through a regular
expression. A 30 MB body costs a few C-level scans, never a Python loop per line.
"""

from __future__ import annotations

import base64
import hashlib
import re

_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r\n)")
# Runs that "reduce to a single SP" changes: two or more WSP, or a tab. (A lone space is already
# canonical; matching every one of them would cost a replacement per word.)
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")
_ANY_WSP_RUN = re.compile(rb"[ \t]+")


def _needs_rewrite(data: bytes, end: int) -> bool:
    return (
        data.find(b"\t", 0, end) >= 0
        or data.find(b"  ", 0, end) >= 0
        or data.find(b" \r\n", 0, end) >= 0
    )


class RelaxedBodyHash:
    """``feed()`` the body (after the header block's empty line) in chunks, then ``digest()``.

    Input lines end in CRLF (the SMTP server's DATA decoder guarantees it); the last line may
    lack it, as RFC 6376 allows.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._partial = b""  # an unfinished line, waiting for its CRLF
        self._empty_lines = 0  # empty lines seen but not yet known to be followed by text

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._partial:
            data = self._partial + data
        cut = data.rfind(b"\r\n")
        if cut < 0:
            self._partial = bytes(data)
            return
        end = cut + 2
        self._partial = data[end:]
        if _needs_rewrite(data, end):
            lines = _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(b"", data[:end]))
            self._lines(lines, len(lines))
        else:
            self._lines(data, end)

    def _lines(self, lines: bytes, end: int) -> None:
        """Hash the canonical complete lines ``lines[:end]``, holding back trailing empty ones."""
        text_end, crlfs = end, 0
        while text_end >= 2 and lines[text_end - 2] == 13 and lines[text_end - 1] == 10:
            text_end -= 2
            crlfs += 1
        if text_end == 0:
            self._empty_lines += crlfs
            return
        if self._empty_lines:
            self._hash.update(b"\r\n" * self._empty_lines)
        self._hash.update(memoryview(lines)[: text_end + 2])
        self._empty_lines = crlfs - 1

    def digest(self) -> bytes:
        """The SHA-256 body hash; call once, after the last ``feed()``."""
        last, self._partial = self._partial, b""
        if last:
            # RFC 6376 §3.4.4: a final CRLF is added if missing. SMTP bodies always end in CRLF;
            # for others this matches dkimpy (the line's trailing WSP is compressed, not dropped).
            line = _ANY_WSP_RUN.sub(b" ", last) + b"\r\n"
            self._lines(line, len(line))
        return self._hash.digest()

    def b64digest(self) -> bytes:
        return base64.b64encode(self.digest())
