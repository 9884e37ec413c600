"""A captured message as the sandbox API shows it: pure functions over bytes (email package).

Header fields are decoded (RFC 2047 encoded-words, folding) with ``email.policy.default``; a
field the parser cannot make sense of is shown as it was written rather than failing the whole
answer, since the point of the sandbox is to show what an application really sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, Parser
from typing import Any

from mailsuite.sandbox.envelope import CapturedEnvelope, read_envelope

SUMMARY_FIELDS = ("from", "to", "cc", "subject", "date", "message-id")
MAX_DEPTH = 20  # MIME nesting followed when listing parts


def envelope_json(envelope: CapturedEnvelope | None) -> dict[str, Any]:
    if envelope is None:  # put into the Maildir by other means (IMAP APPEND, say)
        return {"sender": None, "recipients": []}
    return {"sender": envelope.sender, "recipients": list(envelope.recipients)}


def summary(key: str, header_block: bytes, size: int, mtime: float) -> dict[str, Any]:
    """One entry of the message list: id, envelope, the main header fields, size, arrival."""
    message = _parse_header_block(header_block)
    entry: dict[str, Any] = {"id": key, "envelope": envelope_json(read_envelope(header_block))}
    for name in SUMMARY_FIELDS:
        entry[name.replace("-", "_")] = _first(message, name)
    entry["size"] = size
    entry["captured_at"] = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")
    return entry


def detail(key: str, data: bytes) -> dict[str, Any]:
    """The whole message: envelope, every header field in order, and its MIME parts."""
    end = data.find(b"\r\n\r\n")
    header_block = data[: end + 2] if end >= 0 else data
    headers = _parse_header_block(header_block)
    message = BytesParser(policy=policy.default).parsebytes(data)
    return {
        "id": key,
        "size": len(data),
        "envelope": envelope_json(read_envelope(header_block)),
        "headers": [[name, _decoded(headers, name, raw)] for name, raw in headers.raw_items()],
        "text": _body(message, "plain"),
        "html": _body(message, "html"),
        "parts": [_part(part) for part in _leaves(message)],
    }


def _parse_header_block(header_block: bytes) -> EmailMessage:
    """Parsed from text, so UTF-8 field values (RFC 6532) come out as text, not as bytes."""
    text = header_block.decode("utf-8", "replace")
    return Parser(policy=policy.default).parsestr(text, headersonly=True)


def _decoded(message: Message, name: str, raw: str) -> str:
    try:
        return str(message.policy.header_fetch_parse(name, raw))
    except Exception:  # the email package's header parser has edge cases that raise
        return " ".join(raw.split())


def _first(message: EmailMessage, name: str) -> str | None:
    for field_name, raw in message.raw_items():
        if field_name.lower() == name:
            return _decoded(message, field_name, raw)
    return None


def _body(message: EmailMessage, subtype: str) -> str | None:
    """The text of the message's main ``text/<subtype>`` body, if it has one."""
    try:
        part = message.get_body(preferencelist=(subtype,))
    except Exception:
        return None
    return _text(part) if part is not None else None


def _leaves(part: Message, depth: int = 0) -> Iterator[Message]:
    """The parts worth listing, in order: every part but the multipart containers; an
    enclosed message/rfc822 itself, then its parts; a delivery-status report whole (its
    field blocks are no parts). Nesting past MAX_DEPTH is not followed."""
    if part.get_content_type() == "message/delivery-status" or not part.is_multipart():
        yield part
        return
    if part.get_content_maintype() != "multipart":
        yield part
    if depth < MAX_DEPTH:
        for inner in part.get_payload():
            yield from _leaves(inner, depth + 1)


def _part(part: Message) -> dict[str, Any]:
    """Content type, charset, disposition, file name, decoded size; text for inline text."""
    content_type = part.get_content_type()
    disposition = part.get_content_disposition()
    info: dict[str, Any] = {
        "content_type": content_type,
        "charset": part.get_content_charset(),
        "disposition": disposition,
        "filename": _filename(part),
        "size": _size(part),
        "text": None,
    }
    if content_type == "message/delivery-status":
        blocks = "\n".join(block.as_string() for block in part.get_payload())
        info["text"] = blocks.replace("\r\n", "\n")
    elif part.get_content_maintype() == "text" and disposition != "attachment":
        info["text"] = _text(part)
    return info


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:
        return None


def _size(part: Message) -> int:
    """Decoded bytes (base64 and quoted-printable undone); an enclosed message as written."""
    try:
        if part.is_multipart():
            return sum(len(inner.as_bytes()) for inner in part.get_payload())
        payload = part.get_payload(decode=True)
        return len(payload) if payload is not None else 0
    except Exception:
        return 0


def _text(part: Message) -> str | None:
    """The decoded text with ``\n`` line ends (stored messages have CRLF, as on the wire)."""
    try:
        text = part.get_content()
    except Exception:  # an unknown charset, say: show the bytes as UTF-8 as well as they go
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            return None
        if not isinstance(payload, bytes):
            return None
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n") if isinstance(text, str) else None
