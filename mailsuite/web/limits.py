"""Bounds on what one HTTP client may cost: the connection (channel) class of the listener.

twisted.web's defaults suit a trusted network, not a port open to the internet: a 12-hour idle
timeout, 500 headers, request bodies of any size spooled to a temporary file before any resource
sees them, and a too-long line answered by a silent close. Everything served here is small
(a policy file, an XML answer to a ~400-byte question), so the limits can be tight:

* every line of the request head <= MAX_LINE (414 for the request line, 431 for a header);
* <= MAX_HEADERS header lines and <= MAX_HEAD_BYTES for the whole head (431);
* a body <= MAX_BODY, refused from its Content-Length before it is read, or while a chunked body
  arrives (413, see request.py); bodies are kept in memory, never in a temporary file;
* IDLE_TIMEOUT without a byte closes the connection; a request must arrive completely within
  REQUEST_DEADLINE of its first byte (408), so a trickle of bytes cannot hold a connection open.

A path may be given a larger allowance (BodyAllowance, through the root resource's
``allowance(target)``): the send API takes whole messages, so its requests may carry
bodies up to the message size limit, with more time to send them, and are refused in JSON.

A refusal is a complete response (Content-Length, ``Connection: close``) after which the rest
of the request is read and thrown away for a moment (at most LINGER_SECONDS, LINGER_BYTES):
closing a socket with unread data makes the kernel send a reset, which can destroy the answer
before the client has read it. Only HTTP/1.x is spoken (no HTTP/2 upgrade), so these limits are
the only request parser's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from twisted.logger import Logger
from twisted.web import http
from twisted.web.http_headers import Headers

MAX_LINE = 8 * 1024  # one line of the request head
MAX_HEADERS = 100  # header lines (Thunderbird sends about ten)
MAX_HEAD_BYTES = 16 * 1024  # request line + headers
MAX_BODY = 64 * 1024  # request body (an autodiscover question is under 1 KiB)
IDLE_TIMEOUT = 60.0  # seconds without a byte from the client (between requests too)
REQUEST_DEADLINE = 30.0  # seconds from the first byte of a request to its last
LINGER_SECONDS = 2.0  # after a refusal: how long the rest of the request is read and dropped
LINGER_BYTES = 1024 * 1024  # ... and how much of it at most

_log = Logger()

Refusal = Callable[[int, bytes], tuple[bytes, bytes]]  # (code, reason) -> (content type, body)


@dataclass(frozen=True)
class BodyAllowance:
    """What requests to some paths may send beyond MAX_BODY and REQUEST_DEADLINE."""

    max_body: int
    deadline: float  # seconds from the end of the head to the last byte of the body
    refusal: Refusal | None = None  # how refusals of these requests are written (else text)
    # Which requests get the larger body (say, those that carry credentials); others get the
    # default limits, so nobody uploads megabytes just to be told 401.
    admits: Callable[[Headers], bool] | None = None


def _text_refusal(code: int, reason: bytes) -> tuple[bytes, bytes]:
    return b"text/plain; charset=utf-8", b"%d %s\n" % (code, reason)


class BoundedChannel(http.HTTPChannel):
    """HTTPChannel with the limits of this module and polite (lingering) refusals."""

    MAX_LENGTH = MAX_LINE  # LineReceiver's line limit
    # Twisted's own checks, kept as a backstop behind ours (which answer first, with 431).
    maxHeaders = MAX_HEADERS
    totalHeadersSize = MAX_HEAD_BYTES
    body_limit = MAX_BODY  # of the request being read (its path's allowance may raise it)

    def __init__(self) -> None:
        super().__init__()
        self._refused = False
        self._busy = False  # a complete request is being answered
        self._head_lines = 0  # of the request head being read
        self._head_bytes = 0
        self._deadline: Any = None
        self._linger: Any = None
        self._discarded = 0

    # --- reading ---------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            self._discard(data)
            return
        if self._deadline is None:
            self._deadline = self.callLater(REQUEST_DEADLINE, self._deadline_passed)
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            self._discard(data)
            return
        super().rawDataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        if not line and self._head_lines == 0:
            # Before a request line (a stray CRLF some clients send after a body): not counted.
            super().lineReceived(line)
            return
        self._head_lines += 1
        self._head_bytes += len(line) + 2
        if self._head_lines > MAX_HEADERS + 1 or self._head_bytes > MAX_HEAD_BYTES:
            self.refuse(431, b"Request Header Fields Too Large")
            return
        if not line:  # the end of the head
            self._head_lines = self._head_bytes = 0
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._head_lines == 0:
            self.refuse(414, b"URI Too Long")
        else:
            self.refuse(431, b"Request Header Fields Too Large")

    def _allowance(self) -> BodyAllowance | None:
        """The allowance of the request being read, by its path and headers (from the Site's
        root resource, which knows its paths: router.Router.allowance)."""
        path = getattr(self, "_path", None)
        find = getattr(getattr(getattr(self, "site", None), "resource", None), "allowance", None)
        if path is None or find is None or not self.requests:
            return None
        allowance: BodyAllowance | None = find(path)
        headers: Headers = self.requests[-1].requestHeaders
        if allowance is not None and allowance.admits is not None and not allowance.admits(headers):
            return replace(allowance, max_body=MAX_BODY, deadline=REQUEST_DEADLINE)
        return allowance

    def allHeadersReceived(self) -> None:
        allowance = self._allowance()
        self.body_limit = MAX_BODY if allowance is None else allowance.max_body
        if self.length is not None and self.length > self.body_limit:
            # Refused from the announced length alone: no "100 Continue", nothing read.
            self.refuse(413, b"Content Too Large")
            return
        extended = allowance is not None and allowance.deadline != REQUEST_DEADLINE
        if extended and self._deadline is not None and self._deadline.active():
            self._deadline.reset(allowance.deadline)
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        self._busy = True
        super().allContentReceived()

    def requestDone(self, request: http.Request) -> None:
        self._busy = False
        super().requestDone(request)

    # --- refusing --------------------------------------------------------------------------------

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802 - twisted's (private) name
        # Twisted's malformed-request path (bad request line, header, chunk framing): the same
        # lingering refusal, instead of a close that may reset the connection under the answer.
        self.refuse(400, b"Bad Request")

    def refuse(self, code: int, reason: bytes) -> None:
        """Answer ``code`` to the request being read, read no further, close soon."""
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._cancel_deadline()
        peer = str(self.transport.getPeer())
        _log.info("HTTP request from {peer} refused: {code}", peer=peer, code=code)
        allowance = self._allowance()
        write = allowance.refusal if allowance is not None and allowance.refusal else None
        content_type, body = (write or _text_refusal)(code, reason)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: %s\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n"
            b"\r\n%s" % (code, reason, content_type, len(body), body)
        )
        self.setTimeout(None)
        self._linger = self.callLater(LINGER_SECONDS, self._end_linger)

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self._end_linger()

    def _end_linger(self) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        if self.transport is not None:
            self.transport.loseConnection()

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._busy:
            # The head-of-line request is still being answered; the next one (buffered, not yet
            # parsed) gets its full time once that is done.
            self._deadline = self.callLater(REQUEST_DEADLINE, self._deadline_passed)
            return
        self.refuse(408, b"Request Timeout")

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Any) -> None:
        self._cancel_deadline()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(reason)
