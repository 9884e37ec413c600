"""The request class of the HTTP listener: bodies held in memory and capped, and request
targets in absolute form understood.

Bodies: twisted.web spools a body to a temporary file unless it announces a length under
100 kB; every body here is capped at limits.MAX_BODY (the channel refuses an announced larger
one from its headers; a path's BodyAllowance may raise the cap), so a BytesIO always does, and
a chunked body, which announces no length, is counted as it arrives and refused with 413 once
past the cap.

Absolute form (``GET http://autoconfig.example.com/mail/config-v1.1.xml HTTP/1.1``): what a
client sends through an HTTP proxy, and what RFC 9112 §3.2.2 says a server MUST accept, taking
the host from the target and ignoring the Host header. twisted.web keeps the whole URL as the
path, which would match no route; here the target is cut to its path (origin form) and the
authority becomes the Host header, so the endpoints see one shape of request.
"""

from __future__ import annotations

import re
from io import BytesIO

from twisted.web import server

from mailsuite.web.limits import MAX_BODY, BoundedChannel

_ABSOLUTE = re.compile(rb"(?is)https?://([^/?#]*)(.*)")


def origin_form(target: bytes) -> tuple[bytes | None, bytes]:
    """(authority or None, origin-form target) of a request target."""
    match = _ABSOLUTE.fullmatch(target)
    if match is None:
        return None, target
    authority, rest = match.groups()
    authority = authority.rpartition(b"@")[2]  # no user information in a Host
    return authority, rest if rest.startswith(b"/") else b"/" + rest


class WebRequest(server.Request):
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted's name
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        self._body_bytes += len(data)
        if self._body_bytes > getattr(self.channel, "body_limit", MAX_BODY):
            if isinstance(self.channel, BoundedChannel):
                self.channel.refuse(413, b"Content Too Large")
            return
        self.content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        authority, path = origin_form(path)
        if authority is not None:
            self.requestHeaders.setRawHeaders(b"host", [authority])
        super().requestReceived(command, path, version)
