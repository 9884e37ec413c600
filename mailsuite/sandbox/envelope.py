"""The envelope of a captured message, kept in the message itself as header fields.

``X-Sandbox-Envelope-From: <sender>`` and one ``X-Sandbox-Envelope-To: <recipient>`` per
recipient go in front of the message with the trace fields, before the client's own header
block, so they are durable with the message (no sidecar file to lose or to keep in step) and
visible over IMAP and POP3 too. Received/Return-Path would not do: BCC recipients appear in
neither. Reading takes the first From field and the To fields right after it only, so fields of
the same name a client put into its message cannot change the recorded envelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

FROM_FIELD = "X-Sandbox-Envelope-From"
TO_FIELD = "X-Sandbox-Envelope-To"


@dataclass(frozen=True)
class CapturedEnvelope:
    sender: str  # "" for the null reverse-path (a bounce)
    recipients: list[str] = field(default_factory=list)


def envelope_headers(sender: str, recipients: list[str] | tuple[str, ...]) -> bytes:
    """The header fields recording the envelope (recipients deduplicated, in RCPT order).

    Addresses come from the SMTP parser (no CR, LF or NUL can reach them); an SMTPUTF8 address
    is written as UTF-8, as the client's own header fields may be.
    """
    lines = [f"{FROM_FIELD}: <{sender}>\r\n"]
    lines += [f"{TO_FIELD}: <{address}>\r\n" for address in dict.fromkeys(recipients)]
    return "".join(lines).encode("utf-8")


def read_envelope(header_block: bytes) -> CapturedEnvelope | None:
    """The envelope recorded in ``header_block`` (CRLF or LF lines), or None if there is none."""
    sender: str | None = None
    recipients: list[str] = []
    for name, value in _fields(header_block):
        if sender is None:
            if name == FROM_FIELD.lower():
                sender = value
        elif name == TO_FIELD.lower():
            recipients.append(value)
        else:
            break
    if sender is None:
        return None
    return CapturedEnvelope(sender, recipients)


def _fields(header_block: bytes) -> Iterator[tuple[str, str]]:
    """(lower-cased name, address without <>) of each field, unfolded, decoded as UTF-8."""
    text = header_block.decode("utf-8", "replace").replace("\r\n", "\n")
    name, value = None, ""
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and name is not None:
            value += " " + line.strip()
            continue
        if name is not None:
            yield name, _address(value)
        if not line:
            return
        name, _, value = line.partition(":")
        name = name.strip().lower()
    if name is not None:
        yield name, _address(value)


def _address(value: str) -> str:
    value = value.strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value
