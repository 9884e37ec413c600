"""iprev (RFC 8601 §3): forward-confirmed reverse DNS against a real (fake-zone) DNS server."""

from __future__ import annotations

import pytest

from mailsuite.authn.iprev import MAX_PTR_NAMES, IprevResult, check_iprev
from mailsuite.resolver import Resolver


@pytest.fixture
def resolver(zone):
    return Resolver(("127.0.0.1",), zone.port, timeout=0.5)


def test_pass_ipv4(zone, resolver):
    zone.ptr("192.0.2.1", "MX.Good.Example")
    zone.a("mx.good.example", "192.0.2.7", "192.0.2.1")
    assert check_iprev(resolver, "192.0.2.1") == IprevResult("pass", "mx.good.example")


def test_pass_ipv6_in_any_spelling(zone, resolver):
    zone.ptr("2001:db8::25", "v6.good.example")
    zone.aaaa("v6.good.example", "2001:0db8:0000::0025")
    assert check_iprev(resolver, "2001:DB8:0::25") == IprevResult("pass", "v6.good.example")


def test_ipv4_mapped_ipv6_is_checked_as_ipv4(zone, resolver):
    zone.ptr("192.0.2.1", "mx.good.example")
    zone.a("mx.good.example", "192.0.2.1")
    assert check_iprev(resolver, "::ffff:192.0.2.1") == IprevResult("pass", "mx.good.example")


def test_fail_when_the_name_does_not_point_back(zone, resolver):
    zone.ptr("192.0.2.2", "bank.example")  # anyone can claim a name in their reverse zone
    zone.a("bank.example", "198.51.100.1")
    assert check_iprev(resolver, "192.0.2.2") == IprevResult("fail", "")


def test_fail_when_the_name_does_not_exist_or_has_no_address(zone, resolver):
    zone.ptr("192.0.2.3", "ghost.example")
    zone.ptr("192.0.2.4", "txt-only.example")
    zone.txt("txt-only.example", "hello")
    assert check_iprev(resolver, "192.0.2.3") == IprevResult("fail", "")
    assert check_iprev(resolver, "192.0.2.4") == IprevResult("fail", "")


def test_ipv6_needs_aaaa_not_a(zone, resolver):
    zone.ptr("2001:db8::26", "dual.example")
    zone.a("dual.example", "192.0.2.26")
    assert check_iprev(resolver, "2001:db8::26") == IprevResult("fail", "")


def test_no_ptr_is_permerror(zone, resolver):
    """RFC 8601 §2.7.3: no PTR data (NXDOMAIN or no answer) is permerror, not fail."""
    zone.txt("6.2.0.192.in-addr.arpa", "not a PTR")
    assert check_iprev(resolver, "192.0.2.5") == IprevResult("permerror", "")
    assert check_iprev(resolver, "192.0.2.6") == IprevResult("permerror", "")
    assert check_iprev(resolver, "2001:db8::99") == IprevResult("permerror", "")


def test_not_an_address_is_permerror(resolver):
    assert check_iprev(resolver, "mx.example") == IprevResult("permerror", "")


def test_any_of_several_names_may_confirm(zone, resolver):
    zone.ptr("192.0.2.8", "a-liar.example")
    zone.ptr("192.0.2.8", "b-honest.example")
    zone.a("a-liar.example", "198.51.100.8")
    zone.a("b-honest.example", "192.0.2.8")
    assert check_iprev(resolver, "192.0.2.8") == IprevResult("pass", "b-honest.example")


def test_at_most_ten_ptr_names(zone, resolver):
    names = [f"h{i:02}.example" for i in range(MAX_PTR_NAMES + 1)]
    for name in names:
        zone.ptr("192.0.2.9", name)
        zone.a(name, "198.51.100.9")
    zone.records["h10.example"] = []
    zone.a("h10.example", "192.0.2.9")  # the eleventh (in sorted order) would confirm
    assert check_iprev(resolver, "192.0.2.9") == IprevResult("fail", "")
    asked = {name for name, rdtype in zone.queries if rdtype == "A"}
    assert asked == set(names[:MAX_PTR_NAMES])


def test_temperror_on_the_ptr_lookup(zone, resolver):
    zone.servfail.add("10.2.0.192.in-addr.arpa")
    zone.silent.add("11.2.0.192.in-addr.arpa")
    assert check_iprev(resolver, "192.0.2.10") == IprevResult("temperror", "")
    assert check_iprev(resolver, "192.0.2.11") == IprevResult("temperror", "")


def test_temperror_on_the_forward_lookup_unless_another_name_passes(zone, resolver):
    zone.ptr("192.0.2.12", "flaky.example")
    zone.servfail.add("flaky.example")
    assert check_iprev(resolver, "192.0.2.12") == IprevResult("temperror", "")
    zone.ptr("192.0.2.13", "flaky.example")
    zone.ptr("192.0.2.13", "good.example")
    zone.a("good.example", "192.0.2.13")
    assert check_iprev(resolver, "192.0.2.13") == IprevResult("pass", "good.example")
    zone.ptr("192.0.2.14", "flaky.example")
    zone.ptr("192.0.2.14", "liar.example")
    zone.a("liar.example", "198.51.100.14")
    assert check_iprev(resolver, "192.0.2.14") == IprevResult("temperror", "")
