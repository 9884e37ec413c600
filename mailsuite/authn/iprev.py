"""iprev (RFC 8601 §3): forward-confirmed reverse DNS of the connecting address.

Anyone can publish any PTR name for addresses they hold; only the owner of a name can make it
point back. So a host name counts for the peer only when the PTR of its address names it *and*
that name's A (IPv4) or AAAA (IPv6) records hold the address again. The confirmed name is what
Authentication-Results reports and what policy may trust; an unconfirmed PTR name is worth
nothing. Blocks on DNS: call it from a worker thread.

Results as RFC 8601 §2.7.3 defines them: pass (a name confirmed), fail (PTR names, none
confirmed: no address back, or NXDOMAIN/no data), temperror (a DNS temporary error left the
answer open), permerror (no PTR data for the address, or not an IP address at all).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailsuite.resolver import DNSTemporaryError

# PTR names looked at, at most: a hostile reverse zone cannot make one connection cost more.
MAX_PTR_NAMES = 10


@dataclass(frozen=True)
class IprevResult:
    result: str  # "pass" | "fail" | "temperror" | "permerror"
    hostname: str  # the forward-confirmed name (lower case, no final dot), or ""


def check_iprev(resolver, ip: str) -> IprevResult:
    """Forward-confirm the reverse DNS of ``ip`` (IPv4 or IPv6, IPv4-mapped IPv6 as IPv4).

    The PTR names are taken in sorted order, so the result does not depend on the order a
    server rotates them into, and at most MAX_PTR_NAMES of them are tried. The first name
    whose A/AAAA holds the address passes; a temporary error on one name does not hide a
    pass by another, but with no pass it makes the result temperror, not fail.
    """
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return IprevResult("permerror", "")
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    try:
        ptr = resolver.query(address.reverse_pointer, "PTR")
    except DNSTemporaryError:
        return IprevResult("temperror", "")
    names = sorted(
        {
            name
            for record in ptr.records
            if (name := record.target.to_text(omit_final_dot=True).lower()) not in ("", ".")
        }
    )
    if not names:
        return IprevResult("permerror", "")
    rdtype = "A" if address.version == 4 else "AAAA"
    unsure = False
    for name in names[:MAX_PTR_NAMES]:
        try:
            forward = resolver.query(name, rdtype)
        except DNSTemporaryError:
            unsure = True
            continue
        if any(_same(address, text) for text in forward.addresses):
            return IprevResult("pass", name)
    return IprevResult("temperror" if unsure else "fail", "")


def _same(address: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == address
    except ValueError:
        return False
