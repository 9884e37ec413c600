"""A message from JSON fields, built with the standard library's email package.

The request is checked strictly before anything is built: an unknown field, a value of the wrong
type or bad base64 is a 400 that names the field (a typo such as ``"atachments"`` must not send a
message without its attachment). The message is built with ``EmailMessage`` under the SMTP policy
(CRLF lines, RFC 2047 for non-ASCII headers) with 7-bit transfer encodings, so no relay on the
way has to convert it. Message-ID and Date are added later, by the same fix-ups the submission
port applies (smtp/headers.py), so there is one rule for both.

Blocking (base64, MIME encoding of possibly large attachments): call it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from mailsuite.web.api.draft import Draft, unique
from mailsuite.web.api.errors import APIError
from mailsuite.web.api.mailboxes import Mailbox, parse_mailbox

POLICY = SMTP.clone(cte_type="7bit")

FIELDS = {
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "attachments",
    "headers",
}
ATTACHMENT_FIELDS = {"filename", "content_type", "content"}
MAX_HEADERS = 100
MAX_HEADER_VALUE = 4000

# Header fields the API writes itself, or that only the server may write.
RESERVED_HEADERS = {
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "received",
    "return-path",
    "dkim-signature",
    "authentication-results",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
}

_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 ftext
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z")
_BAD_VALUE = re.compile(r"[\x00\r\n]")


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise APIError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise APIError(400, "invalid_type", "the body must be a JSON object")
    return data


def _string(data: dict[str, Any], field: str, default: str | None = None) -> str | None:
    value = data.get(field, default)
    if value is not None and not isinstance(value, str):
        raise APIError(400, "invalid_type", f"{field}: expected a string")
    return value


def _addresses(data: dict[str, Any], field: str) -> list[Mailbox]:
    """A field that takes one address or a list of them."""
    value = data.get(field)
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise APIError(400, "invalid_type", f"{field}: expected a string or a list of strings")
    return [parse_mailbox(item, field) for item in items]


def _header_text(field: str, value: str) -> str:
    if _BAD_VALUE.search(value):
        raise APIError(422, "invalid_header", f"{field}: line breaks are not allowed")
    return value


def _address_header(mailboxes: list[Mailbox]) -> list[Address]:
    return [Address(display_name=m.name, addr_spec=m.address) for m in mailboxes]


def _attachments(data: dict[str, Any]) -> list[tuple[str | None, str, bytes]]:
    value = data.get("attachments")
    if value is None:
        return []
    if not isinstance(value, list):
        raise APIError(400, "invalid_type", "attachments: expected a list of objects")
    out = []
    for n, item in enumerate(value):
        where = f"attachments[{n}]"
        if not isinstance(item, dict):
            raise APIError(400, "invalid_type", f"{where}: expected an object")
        unknown = sorted(set(item) - ATTACHMENT_FIELDS)
        if unknown:
            raise APIError(400, "unknown_field", f"{where}: unknown field {unknown[0]!r}")
        filename = _string(item, "filename")
        content_type = _string(item, "content_type", "application/octet-stream")
        content = _string(item, "content")
        if content is None:
            raise APIError(400, "missing_field", f"{where}.content: required (base64)")
        if not _MIME_TYPE.match(content_type or ""):
            raise APIError(422, "invalid_value", f"{where}.content_type: not a MIME type")
        if filename is not None:
            _header_text(f"{where}.filename", filename)
        try:
            raw = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise APIError(400, "invalid_base64", f"{where}.content: not valid base64") from None
        out.append((filename, content_type.lower(), raw))
    return out


def _extra_headers(data: dict[str, Any]) -> list[tuple[str, str]]:
    value = data.get("headers")
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise APIError(400, "invalid_type", "headers: expected an object of strings")
    if len(value) > MAX_HEADERS:
        raise APIError(422, "invalid_header", f"headers: at most {MAX_HEADERS}")
    out = []
    for name, text in value.items():
        if not _FIELD_NAME.match(name):
            raise APIError(422, "invalid_header", f"headers: not a header name: {name!r}")
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("arc-"):
            raise APIError(422, "header_not_allowed", f"headers: {name} is set by the server")
        if len(text) > MAX_HEADER_VALUE:
            raise APIError(422, "invalid_header", f"headers.{name}: longer than {MAX_HEADER_VALUE}")
        out.append((name, _header_text(f"headers.{name}", text)))
    return out


def draft_from_json(body: bytes) -> Draft:
    """The Draft a JSON request asks for (APIError on any mistake)."""
    data = parse_json(body)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise APIError(400, "unknown_field", f"unknown field {unknown[0]!r}")
    sender_text = _string(data, "from")
    if sender_text is None:
        raise APIError(400, "missing_field", "from: required")
    sender = parse_mailbox(sender_text, "from")
    to, cc, bcc = (_addresses(data, field) for field in ("to", "cc", "bcc"))
    reply_to = _addresses(data, "reply_to")
    subject = _string(data, "subject")
    text, html = _string(data, "text"), _string(data, "html")
    attachments = _attachments(data)
    headers = _extra_headers(data)

    try:
        content = _build(sender, to, cc, reply_to, subject, text, html, attachments, headers)
    except (ValueError, TypeError, HeaderParseError) as exc:  # what the email package refuses
        raise APIError(422, "invalid_message", f"the message cannot be built: {exc}") from None
    return Draft(sender, (sender,), unique(to + cc + bcc), content)


def _build(
    sender: Mailbox,
    to: list[Mailbox],
    cc: list[Mailbox],
    reply_to: list[Mailbox],
    subject: str | None,
    text: str | None,
    html: str | None,
    attachments: list[tuple[str | None, str, bytes]],
    headers: list[tuple[str, str]],
) -> bytes:
    message = EmailMessage(policy=POLICY)
    message["From"] = _address_header([sender])
    if to:
        message["To"] = _address_header(to)
    if cc:
        message["Cc"] = _address_header(cc)
    if reply_to:
        message["Reply-To"] = _address_header(reply_to)
    if subject is not None:
        message["Subject"] = _header_text("subject", subject)
    for name, value in headers:
        message[name] = value
    if html is not None and text is not None:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text or "")
    for filename, content_type, raw in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(raw, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=POLICY)
