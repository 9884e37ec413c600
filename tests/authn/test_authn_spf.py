"""SPF checks of the MX's incoming mail (mailsuite.authn.spf) against a real fake zone on the
loopback: each result, DNS failures as temperror, the HELO identity, IPv6, RFC 7208's limits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from support.dns import FakeZone

from mailsuite.authn.spf import SPFResult, check_helo, check_mail_from
from mailsuite.resolver import Resolver


@pytest.fixture
def resolver(zone) -> Resolver:
    return Resolver(("127.0.0.1",), zone.port, timeout=0.5)


def test_pass_from_an_ip4_term(zone, resolver):
    zone.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    result = check_mail_from(resolver, "192.0.2.7", "alice@Example.ORG", "mx.example.org")
    assert result == SPFResult("pass", "example.org", "mailfrom", "sender SPF authorized")


def test_fail_and_softfail(zone, resolver):
    zone.txt("example.org", "v=spf1 a -all")
    zone.a("example.org", "192.0.2.1")
    zone.txt("example.net", "v=spf1 mx ~all")
    zone.mx("example.net", (10, "mx.example.net"))
    zone.a("mx.example.net", "198.51.100.1")
    assert check_mail_from(resolver, "192.0.2.1", "a@example.org", "h.example").result == "pass"
    assert check_mail_from(resolver, "192.0.2.2", "a@example.org", "h.example").result == "fail"
    assert check_mail_from(resolver, "198.51.100.1", "b@example.net", "h.example").result == "pass"
    softfail = check_mail_from(resolver, "192.0.2.2", "<b@example.net>", "h.example")
    assert (softfail.result, softfail.domain) == ("softfail", "example.net")


def test_an_internationalized_domain_is_checked_by_its_a_labels(zone, resolver):
    zone.txt("xn--bcher-kva.example", "v=spf1 ip4:192.0.2.1 -all")
    result = check_mail_from(resolver, "192.0.2.1", "jörg@Bücher.example", "h.example")
    assert (result.result, result.domain) == ("pass", "xn--bcher-kva.example")


def test_none_without_a_record(zone, resolver):
    zone.txt("example.org", "google-site-verification=abc")
    assert check_mail_from(resolver, "192.0.2.1", "a@example.org", "h.example").result == "none"
    assert check_mail_from(resolver, "192.0.2.1", "a@absent.example", "h.example").result == "none"


def test_none_for_what_is_no_domain_without_asking_dns(zone, resolver):
    assert check_helo(resolver, "192.0.2.1", "[192.0.2.1]").result == "none"
    assert check_helo(resolver, "192.0.2.1", "localhost").result == "none"
    assert check_mail_from(resolver, "192.0.2.1", "a@[192.0.2.1]", "h.example").result == "none"
    assert zone.queries == []


def test_temperror_on_servfail_and_on_silence(zone, resolver):
    zone.servfail.add("broken.example")
    zone.silent.add("slow.example")
    broken = check_mail_from(resolver, "192.0.2.1", "a@broken.example", "h.example")
    assert (broken.result, broken.domain) == ("temperror", "broken.example")
    assert check_mail_from(resolver, "192.0.2.1", "a@slow.example", "h.example").result == (
        "temperror"
    )


def test_temperror_inside_an_include(zone, resolver):
    zone.txt("example.org", "v=spf1 include:_spf.broken.example -all")
    zone.servfail.add("_spf.broken.example")
    assert check_mail_from(resolver, "192.0.2.1", "a@example.org", "h").result == "temperror"


def test_null_sender_checks_the_helo_name(zone, resolver):
    zone.txt("mx.example.org", "v=spf1 a -all")
    zone.a("mx.example.org", "192.0.2.25")
    for null in ("", "<>"):
        result = check_mail_from(resolver, "192.0.2.25", null, "MX.example.org")
        assert result == SPFResult("pass", "mx.example.org", "helo", "sender SPF authorized")
    helo = check_helo(resolver, "192.0.2.26", "mx.example.org")
    assert (helo.result, helo.identity) == ("fail", "helo")
    # the %{l} of the HELO identity is postmaster (RFC 7208 §2.3)
    zone.txt("h.example", "v=spf1 exists:%{l}.allow.example -all")
    zone.a("postmaster.allow.example", "127.0.0.2")
    assert check_helo(resolver, "192.0.2.1", "h.example").result == "pass"


def test_ipv6_client(zone, resolver):
    zone.txt("example.org", "v=spf1 ip6:2001:db8:1::/48 a -all")
    zone.aaaa("example.org", "2001:db8:2::25")
    for ip in ("2001:db8:1::7", "2001:db8:2::25"):
        assert check_mail_from(resolver, ip, "a@example.org", "h.example").result == "pass"
    assert check_mail_from(resolver, "2001:db8:3::1", "a@example.org", "h.example").result == "fail"
    # an IPv4 client seen through a dual-stack socket is checked as IPv4
    zone.txt("example.net", "v=spf1 ip4:192.0.2.0/24 -all")
    assert check_mail_from(resolver, "::ffff:192.0.2.9", "a@example.net", "h").result == "pass"


def test_more_than_ten_dns_terms_is_permerror(zone, resolver):
    terms = " ".join(f"a:h{n}.example.org" for n in range(11))
    zone.txt("example.org", f"v=spf1 {terms} ip4:192.0.2.1 -all")
    for n in range(11):
        zone.a(f"h{n}.example.org", "198.51.100.1")
    result = check_mail_from(resolver, "192.0.2.1", "a@example.org", "h.example")
    assert result.result == "permerror"
    assert "Too many DNS lookups" in result.explanation
    # ten are fine
    zone.txt("ten.example.org", f"v=spf1 {terms.rsplit(' ', 1)[0]} ip4:192.0.2.1 -all")
    assert check_mail_from(resolver, "192.0.2.1", "a@ten.example.org", "h").result == "pass"


def test_a_third_void_lookup_is_permerror(zone, resolver):
    zone.txt("example.org", "v=spf1 a:v1.example.org a:v2.example.org ip4:192.0.2.1 -all")
    zone.txt("example.net", "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org -all")
    assert check_mail_from(resolver, "192.0.2.1", "a@example.org", "h").result == "pass"
    result = check_mail_from(resolver, "192.0.2.1", "a@example.net", "h")
    assert result.result == "permerror"
    assert "Void lookup limit" in result.explanation


def test_ptr_dns_errors_skip_names_instead_of_temperror(zone, resolver):
    """RFC 7208 §5.5: an error looking up one PTR name's addresses skips that name; an error
    looking up the PTR records themselves makes "ptr" not match (pyspf alone: temperror)."""
    zone.txt("example.org", "v=spf1 ptr -all")
    zone.ptr("192.0.2.1", "slow.example.org")
    zone.ptr("192.0.2.1", "mx.example.org")
    zone.silent.add("slow.example.org")
    zone.a("mx.example.org", "192.0.2.1")
    assert check_mail_from(resolver, "192.0.2.1", "a@example.org", "h").result == "pass"
    zone.servfail.add("2.2.0.192.in-addr.arpa")
    assert check_mail_from(resolver, "192.0.2.2", "a@example.org", "h").result == "fail"


def test_explanation_from_dns_is_one_safe_comment_line(zone, resolver):
    zone.txt("example.org", "v=spf1 -all exp=why.example.org")
    zone.txt("why.example.org", "%{i} (see \\ http://x) is\tnot ours")
    result = check_mail_from(resolver, "192.0.2.1", "a@example.org", "h")
    assert result == SPFResult(
        "fail", "example.org", "mailfrom", "192.0.2.1 [see / http://x] is not ours"
    )


def test_two_resolvers_in_two_threads_do_not_mix(zone, resolver, reactor_thread):
    """Each check sees the resolver it was given, even while another check runs meanwhile."""
    other = FakeZone()
    reactor_thread.call(other.start, reactor_thread.reactor)
    try:
        zone.txt("example.org", "v=spf1 ip4:192.0.2.1 -all")
        other.txt("example.org", "v=spf1 ip4:198.51.100.1 -all")
        zone.silent.add("slow.example")  # the first thread's check waits a while on this
        zone.txt("example.net", "v=spf1 a:slow.example ip4:192.0.2.1 -all")
        resolver2 = Resolver(("127.0.0.1",), other.port, timeout=0.5)
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(check_mail_from, resolver, "192.0.2.1", "a@example.net", "h")
            mine = pool.submit(check_mail_from, resolver2, "198.51.100.1", "a@example.org", "h")
            assert mine.result().result == "pass"
            assert slow.result().result == "temperror"
        assert check_mail_from(resolver, "198.51.100.1", "a@example.org", "h").result == "fail"
    finally:
        reactor_thread.call(other.stop)
