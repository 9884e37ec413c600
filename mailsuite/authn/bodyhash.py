"""The DKIM body hash of a message, computed while its body streams in (RFC 6376 §3.4.4, §3.7).

"relaxed" body canonicalization works on whole lines, so each chunk is cut at its last CRLF and
the rest waits for the next chunk; empty lines are held back (they count only if a non-empty
line follows: trailing empty lines are ignored). Whole chunks go through two regular
expressions, so a 30 MB body costs two C-level passes, never a Python loop per line, and never a
second copy of the message.
"""

from __future__ import annotations

import base64
import hashlib
import re

_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r\n)")
# Runs that "reduce to a single SP" changes: two or more WSP, or a tab. (A lone space is already
# canonical; matching every one of them would cost a replacement per word.)
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")


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
            self._partial = data
            return
        self._partial = data[cut + 2 :]
        self._lines(data[: cut + 2] if cut + 2 < len(data) else data)

    def _lines(self, lines: bytes, strip: bool = True) -> None:
        """Canonicalize complete lines (ending in CRLF) and hash them, holding back empty ones."""
        if strip:
            # Most text has neither: a substring test is far cheaper than a substitution pass.
            if b" \r\n" in lines or b"\t\r\n" in lines:
                lines = _TRAILING_WSP.sub(b"", lines)
            if b"  " in lines or b"\t" in lines:
                lines = _WSP_RUN.sub(b" ", lines)
        # A run of CRLFs at the end: the first ends the last text line, the rest are empty lines.
        end, crlfs = len(lines), 0
        while end >= 2 and lines[end - 2] == 13 and lines[end - 1] == 10:
            end -= 2
            crlfs += 1
        if end == 0:
            self._empty_lines += crlfs
            return
        if self._empty_lines:
            self._hash.update(b"\r\n" * self._empty_lines)
        self._hash.update(memoryview(lines)[: end + 2])
        self._empty_lines = crlfs - 1

    def digest(self) -> bytes:
        """The SHA-256 body hash; call once, after the last ``feed()``."""
        last, self._partial = self._partial, b""
        if last:
            # RFC 6376 §3.4.4: a final CRLF is added if missing. SMTP bodies always end in CRLF;
            # for others this matches dkimpy (the line's trailing WSP is compressed, not dropped).
            self._lines(re.sub(rb"[ \t]+", b" ", last) + b"\r\n", strip=False)
        return self._hash.digest()

    def b64digest(self) -> bytes:
        return base64.b64encode(self.digest())
