"""What the doctor examines: the configuration, the domains, and how to reach DNS.

Built once per run and shared (read-only) by every check thread.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import idna

from mailsuite.config import Config
from mailsuite.resolver import Resolver

# Every network step of the doctor gives up after this long (seconds).
PROBE_TIMEOUT = 5.0
# The doctor's DNS lookups wait at most this long, whatever dns.timeout says: a checklist that
# hangs is worse than one that reports "DNS did not answer".
DNS_TIMEOUT = 5.0


@dataclass(frozen=True)
class Target:
    config: Config
    domains: tuple[str, ...]
    resolver: Resolver

    @classmethod
    def of(cls, config: Config, domains: list[str] | tuple[str, ...]) -> Target:
        dns = config.dns
        resolver = Resolver(dns.nameservers, dns.port, min(dns.timeout, DNS_TIMEOUT))
        return cls(config, tuple(domains), resolver)

    @property
    def hostname(self) -> str:
        """The public host name, as DNS holds it (A-labels): what MX, PTR and the
        certificate must name."""
        name = self.config.public_hostname.rstrip(".").lower()
        if name.isascii():
            return name
        try:
            return idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError:
            return name

    @property
    def addresses(self) -> tuple[str, ...]:
        """The configured public addresses (IPv4 first); empty when none is configured."""
        return self.config.public.ipv4 + self.config.public.ipv6

    def sni_name(self) -> str | None:
        """The name to send in TLS SNI: the public host name, unless it is an address."""
        try:
            ipaddress.ip_address(self.hostname)
        except ValueError:
            return self.hostname or None
        return None


def dns_unsure(exc: Exception) -> str:
    """A DNSTemporaryError as a short finding: "could not tell: DNS lookup of X MX failed
    (timed out)" rather than dnspython's paragraph."""
    head, sep, rest = str(exc).partition(" failed: ")
    if not sep:
        return f"could not tell: {str(exc)[:120]}"
    if "timed out" in rest or "lifetime expired" in rest:
        reason = "timed out"
    elif "SERVFAIL" in rest:
        reason = "SERVFAIL"
    else:
        reason = rest[:80]
    return f"could not tell: {head} failed ({reason})"


DNS_FIX = "check DNS (see 'dns resolver')"


def needs_addresses_fix() -> str:
    return "set public.ipv4 (and public.ipv6) to the addresses the world reaches this server at"
