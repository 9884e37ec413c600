"""A fake DNS zone: an authoritative server (twisted.names, UDP and TCP on one port of
127.0.0.1) serving MX/A/AAAA/TXT/PTR/CNAME records, null MX, NXDOMAIN, SERVFAIL and names that
never answer (a timeout) from a dict the test fills in.
Started and stopped in the shared reactor thread (the ``zone`` fixture of support.fixtures)."""

from __future__ import annotations

import ipaddress

from twisted.internet import defer
from twisted.names import common, dns, server


class _ZoneResolver(common.ResolverBase):
    def __init__(self, zone: FakeZone) -> None:
        super().__init__()
        self.zone = zone

    def _lookup(self, name, cls, type, timeout):  # noqa: A002 - twisted's signature
        key = name.decode().lower().rstrip(".")
        self.zone.queries.append((key, dns.QUERY_TYPES.get(type, type)))
        if key in self.zone.servfail:
            return defer.fail(RuntimeError(f"SERVFAIL for {key}"))
        answered = self.zone.answers_only.get(key)
        if key in self.zone.silent or (answered is not None and type not in answered):
            return defer.Deferred()  # never answered: the client's timeout decides
        if key not in self.zone.records:
            return defer.fail(dns.AuthoritativeDomainError(name))
        answers = []
        for _ in range(8):  # follow CNAMEs inside the zone, a bounded number of times
            records = self.zone.records.get(key, [])
            matching = [r for r in records if r.TYPE == type]
            cnames = [r for r in records if r.TYPE == dns.CNAME]
            if matching or not cnames or type == dns.CNAME:
                answers += [self._rr(key, record) for record in matching]
                break
            answers.append(self._rr(key, cnames[0]))
            key = cnames[0].name.name.decode().lower().rstrip(".")
        return defer.succeed((answers, [], []))

    @staticmethod
    def _rr(key: str, record) -> dns.RRHeader:
        return dns.RRHeader(key.encode(), record.TYPE, dns.IN, 60, record, auth=True)


class _TruncatingDatagramProtocol(dns.DNSDatagramProtocol):
    """Classic DNS over UDP: answers over 512 bytes are truncated, so resolvers retry over TCP."""

    def writeMessage(self, message, address):
        message.maxSize = 512
        super().writeMessage(message, address)


class FakeZone:
    """Records by lower-case name; a name absent from ``records`` is NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[str, list] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()  # names whose queries are never answered
        # name -> the record types it answers; queries of its other types are never answered
        self.answers_only: dict[str, set[int]] = {}
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._ports: list = []

    def add(self, name: str, *records) -> None:
        self.records.setdefault(name.lower(), []).extend(records)

    def mx(self, domain: str, *hosts: tuple[int, str]) -> None:
        self.add(domain, *(dns.Record_MX(pref, host.encode()) for pref, host in hosts))

    def a(self, host: str, *addresses: str) -> None:
        self.add(host, *(dns.Record_A(address) for address in addresses))

    def aaaa(self, host: str, *addresses: str) -> None:
        self.add(host, *(dns.Record_AAAA(address) for address in addresses))

    def txt(self, name: str, *strings: str | bytes) -> None:
        """One TXT record of the given character-strings (each at most 255 bytes)."""
        data = [s.encode() if isinstance(s, str) else s for s in strings]
        self.add(name, dns.Record_TXT(*data))

    def ptr(self, address: str, host: str) -> None:
        """The reverse (PTR) record of an IPv4 or IPv6 address."""
        self.add(ipaddress.ip_address(address).reverse_pointer, dns.Record_PTR(host.encode()))

    def cname(self, name: str, target: str) -> None:
        self.add(name, dns.Record_CNAME(target.encode()))

    def null_mx(self, domain: str) -> None:
        self.add(domain, dns.Record_MX(0, b""))

    def start(self, reactor) -> None:
        factory = server.DNSServerFactory(authorities=[_ZoneResolver(self)])
        for _ in range(20):
            udp = reactor.listenUDP(0, _TruncatingDatagramProtocol(factory), interface="127.0.0.1")
            port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(port, factory, interface="127.0.0.1")
            except Exception:
                udp.stopListening()
                continue
            self.port, self._ports = port, [udp, tcp]
            return
        raise RuntimeError("no free port for the fake DNS server")

    def stop(self):
        return defer.gatherResults([p.stopListening() for p in self._ports])
