"""Routing (RFC 5321 §5, RFC 7505) against a real DNS server on 127.0.0.1 serving a fake zone."""

from __future__ import annotations

import pytest
from support.net import free_port
from twisted.names import dns

from mailsuite.config import ListenAddress
from mailsuite.queue.routing import (
    LITERAL,
    MX,
    RELAY,
    TRANSPORT,
    DNSResolver,
    Hop,
    RouteError,
    RoutingTable,
)


@pytest.fixture
def resolver(zone):
    return DNSResolver(("127.0.0.1",), zone.port, timeout=2, own_hostname="mx.me.test")


def test_mx_by_preference_with_equal_preferences_shuffled(zone, resolver):
    zone.mx("ex.test", (20, "backup.ex.test"), (10, "a.ex.test"), (10, "b.ex.test"))
    for host, address in (("a", "192.0.2.1"), ("b", "192.0.2.2"), ("backup", "192.0.2.3")):
        zone.a(f"{host}.ex.test", address)
    orders = set()
    for _ in range(30):
        hops = resolver.mx_hops("ex.test", 25)
        orders.add(tuple(hop.name for hop in hops[:2]))
        assert hops[2] == Hop("backup.ex.test", "192.0.2.3", 25)
    assert orders == {("a.ex.test", "b.ex.test"), ("b.ex.test", "a.ex.test")}


def test_ipv4_then_ipv6_addresses(zone, resolver):
    zone.mx("ex.test", (10, "mx.ex.test"))
    zone.add("mx.ex.test", dns.Record_AAAA("2001:db8::1"), dns.Record_A("192.0.2.1"))
    assert [hop.address for hop in resolver.mx_hops("ex.test", 2525)] == [
        "192.0.2.1",
        "2001:db8::1",
    ]


def test_implicit_mx_uses_the_domain_address(zone, resolver):
    zone.a("plain.test", "192.0.2.7")
    assert resolver.mx_hops("plain.test", 25) == [Hop("plain.test", "192.0.2.7", 25)]


@pytest.mark.parametrize(
    "setup, domain, permanent, status",
    [
        (lambda z: z.null_mx("null.test"), "null.test", True, "5.1.10"),
        (lambda z: None, "missing.test", True, "5.1.2"),
        (lambda z: z.add("txt.test", dns.Record_TXT(b"v=none")), "txt.test", True, "5.4.4"),
        (lambda z: z.servfail.add("broken.test"), "broken.test", False, "4.4.3"),
        (lambda z: z.mx("dangling.test", (10, "gone.test")), "dangling.test", False, "4.4.4"),
        (lambda z: z.mx("self.test", (5, "mx.me.test"), (9, "x.test")), "self.test", True, "5.4.6"),
    ],
)
def test_failures(zone, resolver, setup, domain, permanent, status):
    setup(zone)
    with pytest.raises(RouteError) as info:
        resolver.mx_hops(domain, 25)
    assert (info.value.permanent, info.value.status) == (permanent, status)


def test_less_preferred_hosts_than_ourselves_are_dropped(zone, resolver):
    zone.mx("ours.test", (5, "primary.test"), (10, "mx.me.test"), (20, "tertiary.test"))
    zone.a("primary.test", "192.0.2.5")
    zone.a("tertiary.test", "192.0.2.6")
    assert [hop.name for hop in resolver.mx_hops("ours.test", 25)] == ["primary.test"]


def test_unreachable_name_server_is_temporary():
    resolver = DNSResolver(("127.0.0.1",), free_port(), timeout=0.5)
    with pytest.raises(RouteError) as info:
        resolver.mx_hops("ex.test", 25)
    assert info.value.permanent is False


def test_large_answers_come_over_tcp(zone, resolver):
    addresses = [f"192.0.2.{i}" for i in range(1, 61)]  # > 512 bytes: truncated over UDP
    zone.a("big.test", *addresses)
    assert [hop.address for hop in resolver.host_hops("big.test", 25)] == addresses
    assert zone.queries.count(("big.test", "A")) == 2  # truncated over UDP, then over TCP
    assert len(resolver.hops(RoutingTable().destination("[192.0.2.1]"))) == 1


def test_routing_table_precedence():
    table = RoutingTable(
        mx_port=2525,
        transport_map={"special.test": ListenAddress("gw.test", 2500)},
        require_tls=("secure.test",),
        relay=None,
        fallback=ListenAddress("backup.test", 25),
    )
    special = table.destination("Special.TEST")
    assert (special.kind, special.name, special.port) == (TRANSPORT, "gw.test", 2500)
    normal = table.destination("other.test")
    assert (normal.kind, normal.name, normal.port, normal.require_tls) == (
        MX,
        "other.test",
        2525,
        False,
    )
    assert table.destination("secure.test").require_tls is True
    literal = table.destination("[IPv6:2001:db8::1]")
    assert (literal.kind, literal.name) == (LITERAL, "2001:db8::1")
    fallback = table.fallback_for(normal)
    assert (fallback.kind, fallback.name) == (RELAY, "backup.test")
    assert table.fallback_for(special) is None


def test_smarthost_takes_everything_but_the_transport_map():
    table = RoutingTable(
        transport_map={"special.test": ListenAddress("gw.test", 25)},
        relay=ListenAddress("smarthost.test", 587),
        relay_credentials=("user", "secret"),
    )
    relay = table.destination("anything.test")
    assert (relay.kind, relay.name, relay.port) == (RELAY, "smarthost.test", 587)
    assert relay.require_tls and relay.verify_tls and relay.credentials == ("user", "secret")
    assert relay.key == table.destination("else.test").key  # one destination: shared limits
    assert table.destination("special.test").kind == TRANSPORT


def test_equal_preference_peers_of_ourselves_are_dropped_whatever_the_shuffle(zone, resolver):
    """RFC 5321 §5.1: hosts at our own preference are not more preferred than we are; keeping
    the ones the shuffle put before us let two equal MX hosts pass mail back and forth."""
    zone.mx(
        "peers.test",
        (5, "primary.test"),
        (10, "mx.me.test"),
        (10, "peer-a.test"),
        (10, "peer-b.test"),
        (20, "backup.test"),
    )
    for host, address in (("primary", 5), ("peer-a", 6), ("peer-b", 7), ("backup", 8)):
        zone.a(f"{host}.test", f"192.0.2.{address}")
    for _ in range(20):  # equal preferences are shuffled anew at every lookup
        assert [hop.name for hop in resolver.mx_hops("peers.test", 25)] == ["primary.test"]
    zone.mx("equals.test", (10, "peer-a.test"), (10, "mx.me.test"))
    for _ in range(20):
        with pytest.raises(RouteError) as info:
            resolver.mx_hops("equals.test", 25)
        assert (info.value.permanent, info.value.status) == (True, "5.4.6")
