"""Are our public addresses on the DNS blocklists receivers consult (``check.blocklists``)?

A DNSBL is asked ``<reversed address>.<list>`` A (RFC 5782 §2.1: octets reversed for IPv4,
nibbles for IPv6): an answer in 127.0.0.0/8 means listed, NXDOMAIN means not listed. Spamhaus
answers 127.255.255.x to say it refuses the query (a public resolver, a missing key): that is
no verdict, so a warning.
"""

from __future__ import annotations

import ipaddress

from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.target import Target, dns_unsure, needs_addresses_fix
from mailsuite.resolver import DNSTemporaryError

_LISTED = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = ipaddress.ip_network("127.255.255.0/24")


def query_name(address: str, blocklist: str) -> str:
    """``4.3.2.1.zen.example`` for 1.2.3.4; the nibble form for an IPv6 address."""
    reverse = ipaddress.ip_address(address).reverse_pointer  # ...in-addr.arpa / ...ip6.arpa
    labels = reverse.split(".")[:-2]
    return ".".join([*labels, blocklist.rstrip(".")])


def check_blocklists(target: Target) -> list[CheckResult]:
    """The one item when there is nothing to look up; else see ``check_listing``."""
    if not target.config.check.blocklists:
        return [passed("blocklists", "none configured (check.blocklists = [])")]
    return [
        warned(
            "blocklists",
            "public.ipv4/ipv6 are not set: no address to look up",
            needs_addresses_fix(),
        )
    ]


def check_listing(target: Target, address: str, blocklist: str) -> list[CheckResult]:
    name = f"blocklist {blocklist} {address}"
    query = query_name(address, blocklist)
    try:
        answer = target.resolver.query(query, "A")
    except DNSTemporaryError as exc:
        return [warned(name, dns_unsure(exc), "check DNS, or drop the list")]
    if answer.void:
        return [passed(name, "not listed")]
    codes = [ipaddress.ip_address(a) for a in answer.addresses]
    listed = [c for c in codes if c in _LISTED and c not in _REFUSED]
    shown = ", ".join(map(str, codes))
    if listed:
        return [
            failed(
                name,
                f"listed ({shown})",
                f"find out why (an open relay? a compromised account?), fix that, then ask "
                f"{blocklist} to delist {address} on its web site",
            )
        ]
    if any(c in _REFUSED for c in codes):
        return [
            warned(
                name,
                f"the list refused the query ({shown}): it does not answer this resolver",
                "ask through a resolver of your own (dns.nameservers), not a public one",
            )
        ]
    return [
        warned(
            name,
            f"an answer outside 127.0.0.0/8 ({shown}): no verdict",
            "the resolver rewrites NXDOMAIN? use another one (dns.nameservers)",
        )
    ]
