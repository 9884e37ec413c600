"""The sandbox API: what the capture mailbox holds, for an application's tests (sandbox mode).

Routed only when ``[sandbox] enabled`` is on (``twistd mailsuite --sandbox``); otherwise these
paths are the router's plain 404::

    GET    /api/v1/sandbox/messages           JSON list, in arrival order: id, envelope
                                              (sender, recipients: BCC too), from, to, cc,
                                              subject, date, message_id, size, captured_at
    GET    /api/v1/sandbox/messages/<id>      JSON: envelope, headers ([name, value] in order),
                                              text, html, parts (content type, charset,
                                              disposition, filename, size, decoded text);
                                              texts have \n line ends
    GET    /api/v1/sandbox/messages/<id>/raw  the message as stored (message/rfc822)
    DELETE /api/v1/sandbox/messages           remove every captured message: 204
    DELETE /api/v1/sandbox/messages/<id>      remove one: 204, or 404

No authentication: the API is meant for a developer's machine or a CI job, on the http role's
default loopback address (127.0.0.1:2080). Whoever reaches it reads and deletes all captured
mail, so a sandbox whose http role listens on a public address exposes everything it captured.

Every handler reads the disk in a thread (the reactor never blocks): capture.py does the files,
describe.py the parsing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.web.server import Request

from mailsuite.config import Config
from mailsuite.sandbox.capture import CaptureMailbox, valid_key
from mailsuite.sandbox.describe import detail, summary
from mailsuite.sandbox.settings import capture_root
from mailsuite.web.reply import NOT_FOUND, Reply
from mailsuite.web.router import Router

PATH = b"/api/v1/sandbox/messages"
JSON = b"application/json"
RFC822 = b"message/rfc822"
NO_CONTENT = Reply(204, b"")


def register(router: Router, config: Config) -> None:
    """Add the sandbox routes to ``router`` when sandbox mode is on (else nothing: 404)."""
    if not config.sandbox.enabled:
        return
    api = SandboxAPI(CaptureMailbox(capture_root(config)))
    router.route(PATH, {b"GET": api.list, b"DELETE": api.clear})
    router.route_prefix(PATH + b"/", {b"GET": api.get, b"DELETE": api.delete})


def _json(value: Any) -> Reply:
    # ASCII escapes: a header decoded with surrogates (undecodable bytes) is still valid JSON.
    return Reply(200, json.dumps(value, indent=1).encode("ascii") + b"\n", JSON)


class SandboxAPI:
    def __init__(self, mailbox: CaptureMailbox) -> None:
        self.mailbox = mailbox

    def list(self, request: Request) -> Deferred[Reply]:
        return threads.deferToThread(self._list)

    def clear(self, request: Request) -> Deferred[Reply]:
        return threads.deferToThread(self.mailbox.clear).addCallback(lambda _: NO_CONTENT)

    def get(self, request: Request) -> Reply | Deferred[Reply]:
        target = _target(request.path)
        if target is None:
            return NOT_FOUND
        key, view = target
        if view == b"":
            return threads.deferToThread(self._detail, key)
        if view == b"raw":
            return threads.deferToThread(self._raw, key)
        return NOT_FOUND

    def delete(self, request: Request) -> Reply | Deferred[Reply]:
        target = _target(request.path)
        if target is None or target[1] != b"":
            return NOT_FOUND
        d = threads.deferToThread(self.mailbox.delete, target[0])
        return d.addCallback(lambda removed: NO_CONTENT if removed else NOT_FOUND)

    # --- in a thread ----------------------------------------------------------------------------

    def _list(self) -> Reply:
        entries = []
        for captured in self.mailbox.files():
            head = self.mailbox.header_block(captured.key, captured.path)
            if head is None:
                continue  # deleted since the listing
            entries.append(summary(captured.key, head, captured.size, captured.mtime))
        return _json(entries)

    def _detail(self, key: str) -> Reply:
        data = self.mailbox.read(key)
        return NOT_FOUND if data is None else _json(detail(key, data))

    def _raw(self, key: str) -> Reply:
        data = self.mailbox.read(key)
        return NOT_FOUND if data is None else Reply(200, data, RFC822)


def _target(path: bytes) -> tuple[str, bytes] | None:
    """(message id, b"" or b"raw") of ``<PATH>/<id>[/raw]``; None if it cannot be one."""
    rest = path[len(PATH) + 1 :]
    encoded, _, view = rest.partition(b"/")
    try:
        key = unquote_to_bytes(encoded).decode("ascii")
    except UnicodeDecodeError:
        return None
    if not valid_key(key) or b"/" in view:
        return None
    return key, view
