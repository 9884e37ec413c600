"""How the send API answers: JSON bodies, and errors as ``{"error": {"code", "message"}}``.

Every refusal is an APIError raised where the problem is found and turned into one Reply at the
edge (endpoints.py), so no handler writes a status line of its own and nothing else (a
traceback, an HTML page) ever reaches an API client.
"""

from __future__ import annotations

import json
from typing import Any

from mailsuite.web.reply import Reply

JSON = b"application/json"

# Channel refusals (limits.py) by HTTP status, in the API's words.
_REFUSAL_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "too_large",
    414: "uri_too_long",
    431: "headers_too_large",
}


class APIError(Exception):
    """A refusal: HTTP ``status``, a stable machine-readable ``code``, a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_reply(status: int, payload: Any, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    return Reply(status, body, JSON, headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_reply(error: APIError) -> Reply:
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if error.status == 401:
        headers = ((b"www-authenticate", b'Bearer realm="mailsuite"'),)
    return json_reply(error.status, error_body(error.code, error.message), headers)


def refusal(status: int, reason: bytes) -> tuple[bytes, bytes]:
    """A refusal of the HTTP channel (body too large, too slow...) as an API error body."""
    code = _REFUSAL_CODES.get(status, "refused")
    message = reason.decode("ascii", "replace").lower()
    if status == 413:
        message = "the request body is larger than this server takes for a message"
    body = json.dumps(error_body(code, message)).encode() + b"\n"
    return JSON, body
