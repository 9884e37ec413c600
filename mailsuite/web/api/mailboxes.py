"""Addresses as API clients write them: ``alice@example.com`` or ``Alice <alice@example.com>``.

The address itself must pass the same RFC 5321 check as an SMTP ``MAIL FROM``/``RCPT TO``
(smtp/envelope.py), since it becomes the envelope; the display name is free text on one line,
quoted and encoded later by the email package. Non-ASCII addresses are refused for now: the
queue would need SMTPUTF8 all the way to the recipient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsuite.smtp.envelope import EnvelopeSyntaxError, NeedsSMTPUTF8, parse_path
from mailsuite.web.api.errors import APIError

MAX_TEXT = 998  # longest address or display name worth reading (RFC 5322's line limit)

_NAMED = re.compile(r"\s*(?P<name>[^<>]*?)\s*<(?P<address>[^<>]*)>\s*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Mailbox:
    address: str  # local@domain, domain normalized (lower case, A-labels)
    name: str = ""
    domain: str = ""


def parse_mailbox(text: str, field: str) -> Mailbox:
    """``text`` as a Mailbox; APIError 422 naming ``field`` when it is not one."""
    if len(text) > MAX_TEXT or _CONTROL.search(text):
        raise APIError(422, "invalid_address", f"{field}: not an address: {text[:80]!r}")
    match = _NAMED.match(text)
    name, address = (match["name"], match["address"]) if match else ("", text.strip())
    if name.startswith('"') and name.endswith('"') and len(name) >= 2:
        name = name[1:-1]
    try:
        path = parse_path(address, allow_null=False, smtputf8=False)
    except NeedsSMTPUTF8:
        raise APIError(
            422, "invalid_address", f"{field}: non-ASCII addresses are not supported: {address!r}"
        ) from None
    except EnvelopeSyntaxError as exc:
        raise APIError(422, "invalid_address", f"{field}: {address!r}: {exc}") from None
    if path.domain.startswith("["):
        raise APIError(422, "invalid_address", f"{field}: address literals are not accepted")
    return Mailbox(path.address, name, path.domain)
