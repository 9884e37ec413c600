"""The names one certificate covers: the public hostname (MX, IMAP, SMTP submission, POP3), and
for each local domain ``autoconfig.<domain>`` (Thunderbird's autoconfig) and
``mta-sts.<domain>`` (RFC 8461 serves the policy only over HTTPS with a valid certificate)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import idna


def certificate_names(public_hostname: str, domains: Iterable[str]) -> list[str]:
    """The hostname first, then two names per domain (sorted); each an A-label in lower case.
    Names no public CA can validate (IP addresses, single labels such as ``localhost``) are
    left out."""
    wanted = [public_hostname]
    for domain in sorted(domains):
        wanted += [f"autoconfig.{domain}", f"mta-sts.{domain}"]
    names: list[str] = []
    for name in wanted:
        usable = public_dns_name(name)
        if usable is not None and usable not in names:
            names.append(usable)
    return names


def public_dns_name(name: str) -> str | None:
    """``name`` as a CA validates it (lower-case A-labels), or None if no public CA could."""
    name = name.strip().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return None
    except ValueError:
        pass
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError:
        return None
    return ascii_name if "." in ascii_name else None
