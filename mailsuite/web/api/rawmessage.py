"""A message sent whole (``Content-Type: message/rfc822``): its envelope from the query or the
headers, its Bcc: removed.

``?from=`` is the envelope sender, else the one address of From:; ``?to=`` (repeated, or
comma-separated) are the recipients, else every address of To:, Cc: and Bcc:. A From: field is
required (it chooses the DKIM key and is what DMARC checks), and every From:/Sender: address must
be the user's as well as the envelope sender: a key may not sign mail in someone else's name.
Line endings become CRLF, as on the SMTP path (smtp/datastream.py).

Blocking (a regular expression over the whole message): call it in a worker thread.
"""

from __future__ import annotations

import email.utils
import re

from mailsuite.web.api.draft import Draft, unique
from mailsuite.web.api.errors import APIError
from mailsuite.web.api.mailboxes import Mailbox, parse_mailbox

QUERY_FIELDS = {"from", "to"}

_BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\r\n[ \t].*)*)\r\n", re.M)


def _header_block(message: bytes) -> tuple[bytes, bytes]:
    """(header block through its last CRLF, the rest from the empty line on)."""
    if message.startswith(b"\r\n"):
        return b"", message
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message, b""
    return message[: end + 2], message[end + 2 :]


def _fields(header_block: bytes) -> list[tuple[str, str, tuple[int, int]]]:
    """(lower-case name, unfolded value as text, (start, end) in the block) of each field."""
    out = []
    for match in _FIELD.finditer(header_block):
        value = match.group(2).replace(b"\r\n", b"").decode("utf-8", "replace")
        out.append((match.group(1).decode("ascii").lower(), value, match.span()))
    return out


def _header_mailboxes(fields: list[tuple[str, str, tuple[int, int]]], *names: str) -> list:
    values = [value for name, value, _ in fields if name in names]
    return [
        parse_mailbox(address, names[0].capitalize() + ":")
        for _, address in email.utils.getaddresses(values)
        if address
    ]


def _query_mailboxes(query: dict[bytes, list[bytes]], name: str) -> list[Mailbox]:
    out = []
    for raw in query.get(name.encode(), []):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, "invalid_value", f"?{name}=: not UTF-8") from None
        out += [parse_mailbox(item.strip(), f"?{name}=") for item in text.split(",") if item]
    return out


def _without(block: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``block`` with the byte ranges ``spans`` (in order, not overlapping) cut out."""
    parts, position = [], 0
    for start, end in spans:
        parts.append(block[position:start])
        position = end
    parts.append(block[position:])
    return b"".join(parts)


def draft_from_raw(body: bytes, query: dict[bytes, list[bytes]]) -> Draft:
    """The Draft of a raw message and its query parameters (APIError on any mistake)."""
    unknown = sorted(name for key in query if (name := key.decode("latin-1")) not in QUERY_FIELDS)
    if unknown:
        raise APIError(400, "unknown_field", f"unknown query parameter {unknown[0]!r}")
    if not body.strip():
        raise APIError(400, "empty_message", "the message is empty")
    message = _BARE_NEWLINE.sub(b"\r\n", body)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    head, rest = _header_block(message)
    fields = _fields(head)
    authors = _header_mailboxes(fields, "from")
    if not authors:
        raise APIError(422, "missing_from", "the message has no From: address")
    authors += _header_mailboxes(fields, "sender")
    senders = _query_mailboxes(query, "from")
    if len(senders) > 1:
        raise APIError(422, "invalid_address", "?from=: one envelope sender only")
    if not senders:
        named = unique(_header_mailboxes(fields, "from"))
        if len(named) > 1:
            raise APIError(422, "invalid_address", "several From: addresses: give ?from=")
        senders = list(named)
    recipients = _query_mailboxes(query, "to") or _header_mailboxes(fields, "to", "cc", "bcc")
    head = _without(head, [span for name, _, span in fields if name == "bcc"])
    return Draft(senders[0], unique(authors), unique(recipients), head + rest)
