"""Where mail for a domain goes (RFC 5321 §5): transport map, smarthost, or the domain's MX hosts.

``RoutingTable`` decides the destination of a recipient domain without any lookup; the
``DNSResolver`` turns a destination into the ordered list of (host, address, port) hops to try,
asking the server's one caching resolver (mailsuite.resolver), shared with the mail-authentication
checks. It blocks: the scheduler calls it in worker threads, never on the reactor.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import dns.name

from mailsuite.config import Config, ListenAddress
from mailsuite.resolver import DNSTemporaryError, Resolver

# Addresses tried per destination, at most (Postfix: smtp_mx_address_limit).
MAX_HOPS = 10

MX, RELAY, TRANSPORT, LITERAL = "mx", "relay", "transport", "literal"


@dataclass(frozen=True)
class Destination:
    """A next hop: recipients of one message with the same destination share one connection.

    ``key`` names it for grouping and for the per-destination connection limit.
    """

    key: str
    kind: str  # MX, RELAY (smarthost or fallback relay), TRANSPORT (map entry), LITERAL
    name: str  # the domain for MX; the host name (or address) otherwise
    port: int
    require_tls: bool = False
    credentials: tuple[str, str] | None = None  # AUTH, only ever over TLS
    verify_tls: bool = False  # check the certificate chain and host name
    ca_file: Path | None = None  # trust roots for that check (None: the system's)


@dataclass(frozen=True)
class Hop:
    name: str  # the host name (MX exchange) as the logs and Remote-MTA show it
    address: str  # IP address to connect to
    port: int

    def __str__(self) -> str:
        return f"{self.name}[{self.address}]:{self.port}"


class RouteError(Exception):
    """No hop for a destination; ``permanent`` failures bounce, the others are retried."""

    def __init__(self, permanent: bool, status: str, text: str) -> None:
        super().__init__(text)
        self.permanent = permanent
        self.status = status
        self.text = text


def _host_port_key(kind: str, address: ListenAddress) -> str:
    return f"{kind}:{address}"


class RoutingTable:
    """Transport map first, then the smarthost, then MX lookup; plus the fallback relay."""

    def __init__(
        self,
        *,
        mx_port: int = 25,
        transport_map: dict[str, ListenAddress] | None = None,
        require_tls: tuple[str, ...] = (),
        relay: ListenAddress | None = None,
        relay_credentials: tuple[str, str] | None = None,
        relay_require_tls: bool = True,
        relay_verify_tls: bool = True,
        relay_ca_file: Path | None = None,
        fallback: ListenAddress | None = None,
    ) -> None:
        self.mx_port = mx_port
        self.transport_map = dict(transport_map or {})
        self.require_tls = frozenset(require_tls)
        self.relay = relay
        self.relay_credentials = relay_credentials
        self.relay_require_tls = relay_require_tls
        self.relay_verify_tls = relay_verify_tls
        self.relay_ca_file = relay_ca_file
        self.fallback = fallback

    @classmethod
    def from_config(cls, config: Config) -> RoutingTable:
        credentials = None
        if config.relay.username:
            credentials = (config.relay.username, config.relay.password)
        return cls(
            mx_port=config.client.mx_port,
            transport_map=dict(config.transport.map),
            require_tls=config.transport.require_tls,
            relay=config.relay.host,
            relay_credentials=credentials,
            relay_require_tls=config.relay.require_tls,
            relay_verify_tls=config.relay.tls_verify,
            relay_ca_file=config.relay.tls_ca_file,
            fallback=config.relay.fallback,
        )

    def destination(self, domain: str) -> Destination:
        """The destination of mail for ``domain`` (a recipient's domain, lower case)."""
        domain = domain.lower().rstrip(".")
        tls = domain in self.require_tls
        target = self.transport_map.get(domain)
        if target is not None:
            key = _host_port_key(TRANSPORT, target)
            return Destination(key, TRANSPORT, target.host, target.port, require_tls=tls)
        if self.relay is not None:
            return Destination(
                _host_port_key(RELAY, self.relay),
                RELAY,
                self.relay.host,
                self.relay.port,
                require_tls=self.relay_require_tls or tls,
                credentials=self.relay_credentials,
                verify_tls=self.relay_verify_tls,
                ca_file=self.relay_ca_file,
            )
        if domain.startswith("[") and domain.endswith("]"):
            literal = domain[1:-1]
            if literal.lower().startswith("ipv6:"):
                literal = literal[5:]
            return Destination(
                f"{LITERAL}:{domain}", LITERAL, literal, self.mx_port, require_tls=tls
            )
        return Destination(f"{MX}:{domain}", MX, domain, self.mx_port, require_tls=tls)

    def fallback_for(self, destination: Destination) -> Destination | None:
        """Postfix's fallback_relay: only for MX destinations, and not when it would loop."""
        if self.fallback is None or destination.kind != MX:
            return None
        return Destination(
            _host_port_key(RELAY, self.fallback),
            RELAY,
            self.fallback.host,
            self.fallback.port,
            require_tls=destination.require_tls,
        )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class DNSResolver:
    """MX and address lookups; blocking, so call it in a worker thread."""

    def __init__(
        self,
        nameservers: tuple[str, ...] = (),
        port: int = 53,
        timeout: float = 10.0,
        own_hostname: str = "",
        resolver: Resolver | None = None,
    ) -> None:
        """``resolver``: the server's shared one; else one is made from the other arguments."""
        self.resolver = resolver or Resolver(tuple(nameservers), port, timeout)
        self.own_hostname = own_hostname.lower().rstrip(".")

    @classmethod
    def from_config(cls, config: Config, resolver: Resolver | None = None) -> DNSResolver:
        if resolver is None:
            resolver = Resolver.from_config(config)
        return cls(own_hostname=config.hostname, resolver=resolver)

    def hops(self, destination: Destination) -> list[Hop]:
        """Ordered hops for ``destination``; RouteError when there is none."""
        if destination.kind == MX:
            hops = self.mx_hops(destination.name, destination.port)
        else:
            hops = self.host_hops(destination.name, destination.port)
        return hops[:MAX_HOPS]

    def mx_hops(self, domain: str, port: int) -> list[Hop]:
        try:
            answer = self.resolver.query(domain, "MX")
        except DNSTemporaryError as exc:
            raise RouteError(False, "4.4.3", str(exc)) from None
        if answer.nxdomain:
            raise RouteError(True, "5.1.2", f"Host or domain name not found: {domain}") from None
        if answer.void:
            return self._implicit_mx(domain, port)
        records = [r for r in answer.records if r.exchange != dns.name.root]
        if not records:
            # RFC 7505: a single "0 ." MX says the domain accepts no mail at all.
            raise RouteError(True, "5.1.10", f"Domain {domain} does not accept mail (null MX)")
        own = [
            r.preference
            for r in records
            if r.exchange.to_text(omit_final_dot=True).lower() == self.own_hostname
        ]
        if own:
            # RFC 5321 §5.1: when we are one of the MX hosts, only hosts strictly more preferred
            # than our best entry may get the mail; equal-preference peers are dropped too (else
            # two of them could pass a message back and forth until the hop limit).
            records = [r for r in records if r.preference < min(own)]
            if not records:
                raise RouteError(True, "5.4.6", f"mail for {domain} loops back to myself")
        hosts = self._mx_order(records)
        hops: list[Hop] = []
        errors: list[str] = []
        for host in hosts:
            try:
                hops += [Hop(host, address, port) for address in self._addresses(host)]
            except RouteError as exc:
                errors.append(exc.text)
        if not hops:
            detail = "; ".join(errors) or f"no address for any MX host of {domain}"
            raise RouteError(False, "4.4.4", detail)
        return hops

    @staticmethod
    def _mx_order(records: list) -> list[str]:
        """Host names by preference, equal preferences shuffled (RFC 5321 §5.1)."""
        ordered: list[str] = []
        by_preference = sorted(records, key=lambda r: r.preference)
        for _, group in groupby(by_preference, key=lambda r: r.preference):
            names = [r.exchange.to_text(omit_final_dot=True).lower() for r in group]
            random.shuffle(names)
            ordered += [name for name in names if name not in ordered]
        return ordered

    def _implicit_mx(self, domain: str, port: int) -> list[Hop]:
        """No MX record: the domain itself is the mail host (RFC 5321 §5.1)."""
        try:
            addresses = self._addresses(domain)
        except RouteError as exc:
            raise RouteError(False, exc.status, exc.text) from None
        if not addresses:
            raise RouteError(True, "5.4.4", f"{domain} has no MX and no A/AAAA record")
        return [Hop(domain, address, port) for address in addresses]

    def host_hops(self, host: str, port: int) -> list[Hop]:
        """A fixed next hop (smarthost, transport map, literal): its addresses, no MX."""
        if _is_ip(host):
            return [Hop(host, host, port)]
        addresses = self._addresses(host)
        if not addresses:
            raise RouteError(False, "4.4.4", f"no A/AAAA record for {host}")
        return [Hop(host, address, port) for address in addresses]

    def _addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host``; [] when it has none; RouteError if unsure."""
        if _is_ip(host):
            return [host]
        addresses: list[str] = []
        error = None
        for rdtype in ("A", "AAAA"):
            try:
                answer = self.resolver.query(host, rdtype)
            except DNSTemporaryError as exc:
                error = RouteError(False, "4.4.3", str(exc))
                continue
            if answer.nxdomain:
                return []
            addresses += answer.addresses
        if error is not None and not addresses:
            raise error
        return addresses
