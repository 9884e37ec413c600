"""The author domains of a message: what DMARC checks and what DKIM signing is chosen by."""

from __future__ import annotations

import email.utils
import re

_FROM_FIELD = re.compile(rb"^from[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)\r\n", re.I | re.M)


def from_domains(header_block: bytes) -> list[str]:
    """The domains of every address in every From: field, in order, each once.

    All of them, not just the first: an attacker may add a second From: (or a second address)
    hoping the checker looks at one and the mail client shows the other (RFC 7489 §6.6.1).
    """
    values = [
        m.group(1).replace(b"\r\n", b"").decode("utf-8", "replace")
        for m in _FROM_FIELD.finditer(header_block)
    ]
    domains: list[str] = []
    for _, address in email.utils.getaddresses(values):
        domain = address.rpartition("@")[2].strip().rstrip(".").lower()
        if "@" in address and domain and domain not in domains:
            domains.append(domain)
    return domains
