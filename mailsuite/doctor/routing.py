"""Can the world route mail to us: DNS answers, each domain's MX leads to this server, and the
public addresses have forward-confirmed reverse DNS naming the public host name.

Receivers check the last one on every connection (many refuse mail from an address whose PTR
is missing or generic), so it belongs to the sending side as much as to the receiving one.
"""

from __future__ import annotations

import ipaddress

from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.target import DNS_FIX, Target, dns_unsure, needs_addresses_fix
from mailsuite.resolver import Answer, DNSTemporaryError


def _rdtype(address: str) -> str:
    return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def host_addresses(target: Target, host: str) -> list[str]:
    """The A and AAAA addresses of ``host``; DNSTemporaryError when DNS cannot tell."""
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        found += target.resolver.query(host, rdtype).addresses
    return found


def mx_hosts(answer: Answer) -> list[tuple[int, str]]:
    """(preference, host) of an MX answer, best first; the null MX (RFC 7505) is host ''."""
    hosts = [
        (record.preference, record.exchange.to_text(omit_final_dot=True).rstrip(".").lower())
        for record in answer.records
    ]
    return sorted(hosts)


def check_resolver(target: Target) -> list[CheckResult]:
    """One lookup first: when DNS itself does not answer, that is the one thing to fix."""
    name = "dns resolver"
    servers = ", ".join(target.resolver.nameservers) or "/etc/resolv.conf"
    if target.resolver.port != 53:
        servers += f" (port {target.resolver.port})"
    try:
        target.resolver.query(target.hostname or "localhost", "A")
    except DNSTemporaryError as exc:
        return [
            failed(
                name,
                f"{servers} does not answer: " + dns_unsure(exc).removeprefix("could not tell: "),
                "fix dns.nameservers (or /etc/resolv.conf): every DNS check below is unsure",
            )
        ]
    return [passed(name, f"{servers} answers")]


def _mx_fix(domain: str, target: Target) -> str:
    return f'publish "{domain}. MX 10 {target.hostname}."'


def check_mx(target: Target, domain: str) -> list[CheckResult]:
    name = f"mx {domain}"
    try:
        answer = target.resolver.query(domain, "MX")
        if answer.nxdomain:
            return [failed(name, f"{domain} does not exist in DNS", _mx_fix(domain, target))]
        hosts = mx_hosts(answer)
        if not hosts:
            return [failed(name, "no MX record", _mx_fix(domain, target))]
        if hosts[0][1] == "":
            return [
                failed(name, "null MX: the domain says it takes no mail", _mx_fix(domain, target))
            ]
        listed = ", ".join(f"{pref} {host}" for pref, host in hosts)
        if not target.addresses:
            if any(host == target.hostname for _, host in hosts):
                return [
                    warned(
                        name,
                        f"MX {listed} names {target.hostname}; its address cannot be checked",
                        needs_addresses_fix(),
                    )
                ]
            return [failed(name, f"MX {listed}, not {target.hostname}", _mx_fix(domain, target))]
        ours = [
            (pref, host)
            for pref, host in hosts
            if any(
                _same(a, mine) for a in host_addresses(target, host) for mine in target.addresses
            )
        ]
    except DNSTemporaryError as exc:
        return [warned(name, dns_unsure(exc), DNS_FIX)]
    mine = ", ".join(target.addresses)
    if not ours:
        return [
            failed(
                name,
                f"MX {listed}: none resolves to this server ({mine})",
                _mx_fix(domain, target) + f' and "{target.hostname}. A/AAAA {mine}"',
            )
        ]
    if ours[0][0] != hosts[0][0]:
        return [
            warned(
                name,
                f"MX {listed}: this server ({ours[0][1]}) is only a backup, not the best MX",
                f"give {ours[0][1]} the lowest preference, unless the backup is intended",
            )
        ]
    return [passed(name, f"MX {listed}: {ours[0][1]} resolves to this server")]


def check_reverse_dns(target: Target, address: str) -> list[CheckResult]:
    """FCrDNS (RFC 8601 §3, iprev): PTR of the address names the host name, whose A/AAAA
    holds the address again."""
    name = f"reverse dns {address}"
    fix = f"ask whoever runs {address} (your provider) to set its PTR to {target.hostname}"
    try:
        ptr = target.resolver.query(ipaddress.ip_address(address).reverse_pointer, "PTR")
        names = sorted(
            {r.target.to_text(omit_final_dot=True).rstrip(".").lower() for r in ptr.records}
        )
        if not names:
            return [failed(name, "no PTR record", fix)]
        if target.hostname not in names:
            return [failed(name, f"PTR names {', '.join(names)}, not {target.hostname}", fix)]
        forward = target.resolver.query(target.hostname, _rdtype(address)).addresses
    except DNSTemporaryError as exc:
        return [warned(name, dns_unsure(exc), DNS_FIX)]
    if not any(_same(address, a) for a in forward):
        shown = ", ".join(forward) or "nothing"
        return [
            failed(
                name,
                f"PTR names {target.hostname}, but that resolves to {shown}",
                f'publish "{target.hostname}. {_rdtype(address)} {address}"',
            )
        ]
    return [passed(name, f"PTR {target.hostname}, which resolves back to {address}")]


def check_reverse_dns_configured(target: Target) -> list[CheckResult]:
    """The one item when no public address is configured: nothing to look up."""
    return [
        warned(
            "reverse dns",
            "public.ipv4/ipv6 are not set: reverse DNS cannot be checked",
            needs_addresses_fix(),
        )
    ]
