"""mailsuite-admin dns DOMAIN: every DNS record a local domain needs, ready to publish.

Running a mail domain takes a dozen records (MX, addresses, SPF, DKIM, DMARC, MTA-STS, TLSRPT,
the client SRV records, autoconfig, CAA) plus a PTR only the owner of the address can set. They
are all derived here from the configuration (public hostname, addresses and ports) and the DKIM
key store, so they follow the setup: run the command again after changing either.

Two outputs: a zone-file fragment to paste into a zone (``--format zone``, the default: it
parses with any RFC 1035 zone reader; records that belong elsewhere are comments) and a JSON list
of ``{name, type, ttl, value, comment?}`` for DNS provider APIs (names absolute without the final
dot; ``value`` is the RDATA in zone-file form, except TXT, whose value is the text itself).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailsuite.accounts.addresses import AddressError, normalize_domain
from mailsuite.admin.context import CommandError, Context, global_options
from mailsuite.authn.keys import DKIMKey, DKIMKeyStore
from mailsuite.config import Config
from mailsuite.mta_sts import policy_id, policy_text

TTL = 3600
MX_PREFERENCE = 10
CAA_ISSUER = "letsencrypt.org"
_TXT_STRING_MAX = 255  # RFC 1035 3.3: a character-string is at most 255 octets

# (service label = role, priority): RFC 6186 3.4 lets clients compare priorities across IMAP and
# POP3, RFC 8314 5.1 across implicit TLS and STARTTLS: implicit TLS first, IMAP before POP3.
# The order is the one the records are printed in.
SRV_SERVICES = (
    ("submissions", 0),
    ("imaps", 0),
    ("pop3s", 20),
    ("submission", 10),
    ("imap", 10),
    ("pop3", 30),
)

FORMATS = ("zone", "json")


@dataclass(frozen=True)
class Record:
    """One resource record. ``in_zone`` False: shown for the operator, published elsewhere."""

    name: str  # absolute owner name, without the final dot
    type: str
    value: str  # RDATA in zone-file form; TXT: the text itself, unquoted
    comment: str = ""
    in_zone: bool = True

    def txt_strings(self) -> list[str]:
        """A TXT value cut into character-strings; a reader joins them without separator."""
        data = self.value.encode("utf-8")
        pieces = [data[i : i + _TXT_STRING_MAX] for i in range(0, len(data), _TXT_STRING_MAX)]
        return [piece.decode("utf-8") for piece in pieces] or [""]


@dataclass(frozen=True)
class Group:
    """Records that serve one purpose, printed under one explaining comment."""

    title: str
    records: tuple[Record, ...]
    warnings: tuple[str, ...] = ()


def register(groups: Any) -> None:
    help_text = "print the DNS records to publish for a local domain"
    parser = groups.add_parser(
        "dns",
        help=help_text,
        description=f"{help_text}: a zone-file fragment, or JSON for DNS provider APIs "
        "(name, type, ttl, value: RDATA as in a zone file, TXT unquoted, comment). Computed from "
        "public.* in the configuration and "
        "the domain's DKIM keys: run again after changing them.",
    )
    global_options(parser, top_level=False)
    parser.add_argument("domain", metavar="DOMAIN")
    parser.add_argument("--format", choices=FORMATS, default="zone", help="default: zone")
    parser.set_defaults(handler=_dns)


def _dns(ctx: Context, args: argparse.Namespace) -> None:
    print_records(ctx, local_domain(ctx, args.domain), args.format)


def local_domain(ctx: Context, text: str) -> str:
    """The domain's normalized name; an error naming it if this server does not receive its mail
    (records for it would point the world at a server that refuses the mail)."""
    domain = normalize_domain(text)
    if not ctx.db.has_domain(domain):
        raise CommandError(
            f"{domain} is not a local domain; add it first: mailsuite-admin domain add {domain}"
        )
    return domain


def print_records(ctx: Context, domain: str, fmt: str = "zone") -> None:
    """Print the records of ``domain`` (local, checked by the caller) in ``fmt``."""
    keys = DKIMKeyStore(ctx.config.dkim_dir).keys(domain)
    groups = domain_records(ctx.config, domain, keys)
    if fmt == "json":
        for warning in _warnings(groups):  # stderr: keeps stdout valid JSON
            print(f"warning: {warning}", file=sys.stderr)
        ctx.print_json(json_records(groups))
    else:
        ctx.say(zone_text(domain, groups, hostname_of(ctx.config)))


# --- the records --------------------------------------------------------------------------------


def hostname_of(config: Config) -> str:
    """The public hostname as a DNS name; a clear error when it cannot be one."""
    try:
        return normalize_domain(config.public_hostname)
    except AddressError as exc:
        raise CommandError(
            f"the public hostname {config.public_hostname!r} is not a DNS name ({exc}); "
            "set public.hostname (or server.hostname) in the configuration"
        ) from None


def domain_records(config: Config, domain: str, keys: Iterable[DKIMKey]) -> list[Group]:
    """Every record ``domain`` needs, grouped by purpose, in the order they are printed."""
    hostname = hostname_of(config)
    return [
        _mx(domain, hostname),
        _addresses(config, domain, hostname),
        _spf(config, domain),
        _dkim(domain, keys),
        _dmarc(domain),
        _mta_sts(config, domain, hostname),
        _tlsrpt(domain),
        _srv(config, domain, hostname),
        _autoconfig(config, domain, hostname),
        _caa(domain),
        _ptr(config, hostname),
    ]


def _in(name: str, domain: str) -> bool:
    return name == domain or name.endswith(f".{domain}")


def _mx(domain: str, hostname: str) -> Group:
    record = Record(domain, "MX", f"{MX_PREFERENCE} {hostname}.")
    return Group(f"Mail for {domain} is delivered to {hostname}.", (record,))


def _addresses(config: Config, domain: str, hostname: str) -> Group:
    """A/AAAA of the hostname: in this zone only when the hostname is under the domain."""
    elsewhere = "" if _in(hostname, domain) else f"publish in the zone of {hostname}"
    records = tuple(
        Record(hostname, kind, address, elsewhere, in_zone=not elsewhere)
        for kind, addresses in (("A", config.public.ipv4), ("AAAA", config.public.ipv6))
        for address in addresses
    )
    warnings: tuple[str, ...] = ()
    if not records:
        warnings = (
            f"public.ipv4 and public.ipv6 are not set: add the A/AAAA records of {hostname} "
            "yourself, or set them in the configuration and run this again",
        )
    if "." not in hostname:
        warnings += (f"{hostname} is not a fully qualified name: set public.hostname",)
    return Group(f"The addresses of {hostname}.", records, warnings)


def spf_value(config: Config) -> str:
    """Authorise the public addresses by name, so SPF needs no extra lookup; the MX in any case."""
    mechanisms = [f"ip4:{a}" for a in config.public.ipv4]
    mechanisms += [f"ip6:{a}" for a in config.public.ipv6]
    return " ".join(["v=spf1", *mechanisms, "mx", "~all"])


def _spf(config: Config, domain: str) -> Group:
    record = Record(domain, "TXT", spf_value(config))
    return Group(f"SPF (RFC 7208): the hosts that may send mail from {domain}.", (record,))


def _dkim(domain: str, keys: Iterable[DKIMKey]) -> Group:
    records = tuple(
        Record(
            key.dns_name(),
            "TXT",
            "".join(key.txt_strings()),
            f"{key.algorithm}, created {key.created}, "
            + ("signing now" if key.active else "rotated out: keep until retired"),
        )
        for key in keys
    )
    warnings: tuple[str, ...] = ()
    if not records:
        warnings = (
            f"{domain} has no DKIM keys, so its mail goes out unsigned: "
            f"mailsuite-admin dkim generate {domain}",
        )
    title = "DKIM (RFC 6376, RFC 8463): the public keys outgoing mail is signed with."
    return Group(title, records, warnings)


def _dmarc(domain: str) -> Group:
    value = f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"
    record = Record(f"_dmarc.{domain}", "TXT", value)
    title = "DMARC (RFC 7489): mail failing SPF and DKIM alignment goes to spam; reports come in."
    return Group(title, (record,))


def mta_sts_policy(config: Config) -> str:
    """The policy file (RFC 8461 §3.2) the web listener serves for every local domain."""
    return policy_text(config.mta_sts.mode, hostname_of(config), config.mta_sts.max_age)


def mta_sts_id(config: Config) -> str:
    return policy_id(mta_sts_policy(config))


def _mta_sts(config: Config, domain: str, hostname: str) -> Group:
    records = (
        Record(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={mta_sts_id(config)}"),
        Record(f"mta-sts.{domain}", "CNAME", f"{hostname}.", "serves the policy over https"),
    )
    title = (
        f"MTA-STS (RFC 8461), mode {config.mta_sts.mode}: senders must reach {domain} over "
        "verified TLS."
    )
    warnings: tuple[str, ...] = ()
    if config.public_port("https") is None:
        warnings = ("the https role is off (https.listen): the MTA-STS policy cannot be fetched",)
    return Group(title, records, warnings)


def _tlsrpt(domain: str) -> Group:
    value = f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"
    record = Record(f"_smtp._tls.{domain}", "TXT", value)
    return Group("TLS reporting (RFC 8460): where senders report TLS failures.", (record,))


def srv_value(config: Config, role: str, priority: int, hostname: str) -> str:
    """``priority weight port target``; a disabled role gets the null target (RFC 6186 4),
    which tells clients not to try it, instead of no record, which lets them guess."""
    port = config.public_port(role)
    if port is None:
        return "0 0 0 ."
    return f"{priority} 1 {port} {hostname}."


def _srv(config: Config, domain: str, hostname: str) -> Group:
    records = tuple(
        Record(
            f"_{role}._tcp.{domain}",
            "SRV",
            srv_value(config, role, priority, hostname),
            "" if config.public_port(role) is not None else "off in the configuration",
        )
        for role, priority in SRV_SERVICES
    )
    title = "Mail clients find the servers (RFC 6186, RFC 8314): implicit TLS preferred."
    return Group(title, records)


def _autoconfig(config: Config, domain: str, hostname: str) -> Group:
    port = config.public_port("https") or 443
    records = (
        Record(f"autoconfig.{domain}", "CNAME", f"{hostname}.", "Thunderbird's autoconfig"),
        Record(f"autodiscover.{domain}", "CNAME", f"{hostname}.", "Outlook's autodiscover"),
        Record(f"_autodiscover._tcp.{domain}", "SRV", f"0 0 {port} {hostname}."),
    )
    return Group("Mail clients set themselves up (autoconfig, autodiscover).", records)


def _caa(domain: str) -> Group:
    record = Record(domain, "CAA", f'0 issue "{CAA_ISSUER}"')
    title = f"Only {CAA_ISSUER} may issue certificates for {domain} (change it for another CA)."
    return Group(title, (record,))


def _ptr(config: Config, hostname: str) -> Group:
    """Reverse DNS lives in the address owner's zone: ask the hosting provider to set it."""
    records = tuple(
        Record(
            ipaddress.ip_address(address).reverse_pointer,
            "PTR",
            f"{hostname}.",
            f"ask the provider of {address} to set its reverse DNS",
            in_zone=False,
        )
        for address in (*config.public.ipv4, *config.public.ipv6)
    )
    title = f"Reverse DNS: each public address must name {hostname} (receivers check it)."
    if not records:
        title += " Ask the provider of the addresses to set it."
    return Group(title, records)


# --- output ------------------------------------------------------------------------------------


def _warnings(groups: Iterable[Group]) -> list[str]:
    return [warning for group in groups for warning in group.warnings]


def json_records(groups: Iterable[Group]) -> list[dict[str, Any]]:
    """Every record, those for other zones included (their comment says where they go)."""
    items = []
    for group in groups:
        for record in group.records:
            item: dict[str, Any] = {
                "name": record.name,
                "type": record.type,
                "ttl": TTL,
                "value": record.value,
            }
            if record.comment:
                item["comment"] = record.comment
            items.append(item)
    return items


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _rdata(record: Record, indent: int) -> str:
    """TXT as quoted strings, several in parentheses over lines; other types as they are."""
    if record.type != "TXT":
        return record.value
    strings = [_quoted(s) for s in record.txt_strings()]
    if len(strings) == 1:
        return strings[0]
    return "( " + f"\n{' ' * (indent + 2)}".join(strings) + " )"


def _owner(record: Record, domain: str) -> str:
    """Relative to $ORIGIN inside the zone; absolute (final dot) outside it."""
    if not (record.in_zone and _in(record.name, domain)):
        return f"{record.name}."
    if record.name == domain:
        return "@"
    return record.name[: -len(domain) - 1]


def _zone_line(record: Record, domain: str) -> str:
    head = f"{_owner(record, domain):<28} {TTL} IN {record.type:<5} "
    line = head + _rdata(record, len(head))
    if not (record.in_zone and _in(record.name, domain)):
        return "\n".join(f"; {part}" for part in line.splitlines()) + f"  ; {record.comment}"
    return f"{line}  ; {record.comment}" if record.comment else line


def zone_text(domain: str, groups: Iterable[Group], hostname: str) -> str:
    """A zone-file fragment for ``domain``; what belongs elsewhere is commented out."""
    lines = [
        f"; DNS records for {domain}, whose mail server is {hostname}.",
        "; Lines starting with ';' explain, or show records that belong in another zone.",
        f"$ORIGIN {domain}.",
        f"$TTL {TTL}",
    ]
    for group in groups:
        lines.append("")
        lines.append(f"; {group.title}")
        lines.extend(f"; WARNING: {warning}" for warning in group.warnings)
        lines.extend(_zone_line(record, domain) for record in group.records)
    return "\n".join(lines)
