"""What an endpoint answers (a Reply) and how it is written, now or when a Deferred fires.

Endpoints return a whole Reply instead of writing to the request themselves, so every answer
has a Content-Type and a Content-Length, a failure is one short logged 500 instead of a
traceback page, and an answer that arrives after the client went away is dropped quietly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import NO_BODY_CODES
from twisted.web.server import NOT_DONE_YET, Request

TEXT = b"text/plain; charset=utf-8"
XML = b"text/xml; charset=utf-8"  # Thunderbird wants text/xml or application/xml

_log = Logger()


@dataclass(frozen=True)
class Reply:
    code: int
    body: bytes
    content_type: bytes = TEXT
    headers: tuple[tuple[bytes, bytes], ...] = ()


def text(code: int, message: str) -> Reply:
    return Reply(code, message.encode("utf-8") + b"\n")


NOT_FOUND = text(404, "not found")
INTERNAL_ERROR = text(500, "internal error")


def xml_document(root: ET.Element) -> bytes:
    """``root`` as an indented UTF-8 document with the usual double-quoted declaration."""
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8") + b"\n"


def apply(request: Request, reply: Reply) -> bytes:
    """Set the status and headers of ``reply`` on ``request``; return the body to write."""
    request.setResponseCode(reply.code)
    request.setHeader(b"server", b"mailsuite")
    if reply.code not in NO_BODY_CODES:  # RFC 9110 §8.6: no Content-Length on a 204
        request.setHeader(b"content-type", reply.content_type)
        request.setHeader(b"content-length", b"%d" % len(reply.body))
    for name, value in reply.headers:
        request.setHeader(name, value)
    return reply.body


def send_later(request: Request, answer: Deferred[Reply]) -> int:
    """Finish ``request`` with the Reply ``answer`` fires with; NOT_DONE_YET for render()."""
    gone: list[Failure] = []
    request.notifyFinish().addErrback(gone.append)

    def failed(failure: Failure) -> Reply:
        _log.failure(
            "HTTP {method} {path} failed", failure, method=request.method, path=request.path
        )
        return INTERNAL_ERROR

    def write(reply: Reply) -> None:
        if gone or request.finished:
            return  # the client went away meanwhile
        body = apply(request, reply)
        request.write(body)
        request.finish()

    answer.addErrback(failed)
    answer.addCallback(write)
    answer.addErrback(lambda failure: _log.failure("writing an HTTP answer failed", failure))
    return NOT_DONE_YET
