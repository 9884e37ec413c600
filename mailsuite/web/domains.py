"""Which mail domain an HTTP request is about, and whether this server hosts it.

The answer of every endpoint depends on the domain only, never on a user: autoconfig and
autodiscover are asked before anyone has logged in, so they must not tell whether an address
exists. The domain comes from the client (a Host header, a query parameter, a request body):
it is normalized like the user database's names (lower case, A-labels) or dropped, and looked
up through AccountService, which runs SQLite in a thread and caches answers until the database
changes (a flood of requests for one name costs one query).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.server import Request

from mailsuite.accounts.addresses import AddressError, normalize_domain
from mailsuite.accounts.service import AccountService

MAX_INPUT = 320  # longest address or host name worth looking at (RFC 5321: 64 + 1 + 255)


def normalized(name: str) -> str | None:
    """``name`` as the user database spells domains, or None when it is not a domain name
    (an IP address, a literal, garbage)."""
    if not name or len(name) > MAX_INPUT:
        return None
    try:
        domain = normalize_domain(name)
    except (AddressError, ValueError):
        return None
    if domain.rsplit(".", 1)[-1].isdigit():  # an IPv4 address, not a name
        return None
    return domain


def domain_of_address(address: str) -> str | None:
    """The domain of ``local@domain`` (the last ``@`` separates), normalized, else None."""
    address = address.strip()
    if len(address) > MAX_INPUT or any(ch <= " " or ch == "\x7f" for ch in address):
        return None
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return None
    return normalized(domain)


def request_host(request: Request) -> str | None:
    """The Host header's name without its port, normalized; None when absent or no name."""
    raw = request.getHeader(b"host")
    if raw is None:
        return None
    try:
        host = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if host.startswith("["):  # an IPv6 literal
        return None
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        host = name
    return normalized(host)


def host_below(request: Request, label: str) -> str | None:
    """D when the Host header is ``<label>.D`` (e.g. ``mta-sts``), else None."""
    host = request_host(request)
    prefix = label + "."
    if host is None or not host.startswith(prefix):
        return None
    return normalized(host[len(prefix) :])


class LocalDomains:
    """Asks the user database, off the reactor thread, which names are hosted here."""

    def __init__(self, database: object) -> None:
        self.accounts = AccountService(database)  # type: ignore[arg-type]

    def is_local(self, domain: str) -> Deferred[bool]:
        return self.accounts.is_local_domain(domain)

    @inlineCallbacks
    def first_local(
        self, candidates: Iterable[str | None]
    ) -> Generator[Deferred[Any], Any, str | None]:
        """The first of ``candidates`` (None entries skipped) that is a local domain."""
        seen: set[str] = set()
        for domain in candidates:
            if domain is None or domain in seen:
                continue
            seen.add(domain)
            if (yield self.is_local(domain)):
                return domain
        return None
