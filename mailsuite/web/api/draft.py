"""What a send request asks for, whichever form it came in (JSON fields or a raw message).

Both parsers (compose.py, rawmessage.py) produce a Draft; everything after them (ownership,
routing, signing, the commit: submit.py) sees only this.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsuite.web.api.mailboxes import Mailbox


@dataclass(frozen=True)
class Draft:
    sender: Mailbox  # the envelope sender (MAIL FROM)
    authors: tuple[Mailbox, ...]  # From: (and Sender:) addresses: each must be the user's too
    recipients: tuple[Mailbox, ...]  # envelope recipients, in order, without duplicates
    content: bytes  # the message (CRLF lines), without Bcc:, before trace headers are added


def unique(mailboxes: list[Mailbox]) -> tuple[Mailbox, ...]:
    """``mailboxes`` without repeated addresses (first one kept), order kept."""
    seen: dict[str, Mailbox] = {}
    for mailbox in mailboxes:
        seen.setdefault(mailbox.address, mailbox)
    return tuple(seen.values())
