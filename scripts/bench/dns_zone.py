"""A throwaway authoritative DNS server for the bench (twisted.names, UDP + TCP on 127.0.0.1):
``python dns_zone.py PORT ZONE.json``, where the JSON maps names to [[type, value], ...] for the
types A, TXT and PTR. It stands for the internet's DNS when mailsuite checks SPF, DMARC and
iprev, so the bench measures the checks, not a resolver on the other side of the world."""

from __future__ import annotations

import json
import sys

from twisted.internet import defer, reactor
from twisted.names import common, dns, server

_TYPES = {
    "A": lambda value: dns.Record_A(value, ttl=3600),
    "TXT": lambda value: dns.Record_TXT(value.encode(), ttl=3600),
    "PTR": lambda value: dns.Record_PTR(value, ttl=3600),
}


class Zone(common.ResolverBase):
    """Answers from the dict; a name not in it is NXDOMAIN, a missing type NODATA."""

    def __init__(self, records: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__()
        self.records = {
            name.lower(): [_TYPES[kind](value) for kind, value in entries]
            for name, entries in records.items()
        }

    def _lookup(self, name, cls, type, timeout):  # noqa: A002 - twisted's signature
        key = name.decode().lower().rstrip(".")
        if key not in self.records:
            return defer.fail(dns.AuthoritativeDomainError(name))
        answers = [
            dns.RRHeader(name, record.TYPE, dns.IN, 3600, record, auth=True)
            for record in self.records[key]
            if record.TYPE == type
        ]
        return defer.succeed((answers, [], []))


def main() -> None:
    port, zone_file = int(sys.argv[1]), sys.argv[2]
    with open(zone_file) as fh:
        records = json.load(fh)
    factory = server.DNSServerFactory(authorities=[Zone(records)])
    reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
