"""Assembling one accepted message while DATA streams in.

Decoded content arrives in chunks. The header block is held back (bounded) until it is complete,
so that trace headers can go in front and submission fix-ups can be decided; after that every
chunk goes straight to the spool sink, whatever the message size.
"""

from __future__ import annotations

import re
from typing import Protocol

from mailsuite.authn.bodyhash import RelaxedBodyHash
from mailsuite.authn.results import strip_forged
from mailsuite.smtp.datastream import LineEndingNormalizer
from mailsuite.smtp.headers import count_hops, submission_fixups

_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)

# A header block larger than this is passed through without inspection.
MAX_HEADER_INSPECTION = 256 * 1024


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


class MessageTooBig(Exception):
    pass


class MessageAssembler:
    """Writes ``prefix`` + (fixed-up) header block + body to ``sink``, enforcing the size limit.

    ``prefix`` is the Return-Path and Received headers; ``fix_headers`` asks for the Message-ID
    and Date that submission adds when missing. ``hops`` is the count of Received: headers, known
    once the header block is complete.
    """

    def __init__(
        self,
        sink: Sink,
        prefix: bytes,
        max_size: int,
        fix_headers: bool,
        hostname: str,
        body_hash: RelaxedBodyHash | None = None,
    ) -> None:
        """``body_hash``: fed the body as it streams (for a DKIM signature); Authentication-Results
        fields claiming ``hostname`` are removed from every message (RFC 8601 §5)."""
        self._sink = sink
        self._prefix = prefix
        self._max_size = max_size
        self._fix_headers = fix_headers
        self._hostname = hostname
        self._normalizer = LineEndingNormalizer()
        self._head: bytearray | None = bytearray()
        self.content_size = 0
        self.hops = 0
        self.too_big = False
        self._body_hash = body_hash
        # The header block as stored (fix-ups included), once complete; None when it was too
        # large to inspect (such a message is neither signed nor DMARC-checked by its From:).
        self.header_block: bytes | None = None

    def message_id_header(self) -> str:
        """The Message-ID of the stored header block ("" if none or not inspected)."""
        match = _MESSAGE_ID.search(self.header_block or b"")
        return match.group(1).decode("utf-8", "replace").strip() if match else ""

    def feed(self, content: bytes) -> None:
        if self.too_big or not content:
            return
        self._write(self._normalizer.feed(content))

    def finish(self) -> None:
        """The end of DATA was seen: flush what is held back."""
        if self.too_big:
            return
        self._write(self._normalizer.flush())
        if self._head is not None:
            self._release_head(bytes(self._head), b"")

    def _write(self, data: bytes) -> None:
        self.content_size += len(data)
        if self.content_size > self._max_size:
            self.too_big = True
            self._head = None
            return
        if self._head is None:
            if data:
                self._sink.write(data)
                if self._body_hash is not None:
                    self._body_hash.feed(data)
            return
        self._head += data
        head = bytes(self._head)
        end = 0 if head.startswith(b"\r\n") else head.find(b"\r\n\r\n")
        if end >= 0:
            split = end + 2 if end else 0
            self._release_head(head[:split], head[split:])
        elif len(head) > MAX_HEADER_INSPECTION:
            self._release_head(head, b"", complete=False)

    def _release_head(self, head: bytes, rest: bytes, complete: bool = True) -> None:
        self._head = None
        head, _ = strip_forged(head, self._hostname)
        self.hops = count_hops(head)
        fixups = submission_fixups(head, self._hostname) if self._fix_headers else b""
        self._sink.write(self._prefix + fixups + head + rest)
        if not complete:
            self._body_hash = None
            return
        self.header_block = fixups + head
        if self._body_hash is not None:
            self._body_hash.feed(rest[2:] if rest.startswith(b"\r\n") else rest)
