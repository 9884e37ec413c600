"""The shared resolver against a fake zone: records, CNAMEs, negative answers, errors, the cache."""

import pytest

from mailsuite.resolver import DNSTemporaryError, Resolver


def test_resolver_answers_and_caches(zone):
    zone.txt("a.example", "v=spf1 ", "-all")
    zone.cname("c.example", "a.example")
    zone.ptr("127.0.0.9", "mx.a.example")
    zone.aaaa("a.example", "::1")
    zone.servfail.add("bad.example")
    zone.silent.add("slow.example")
    r = Resolver(("127.0.0.1",), zone.port, timeout=1)
    assert r.query("a.example", "TXT").texts == [b"v=spf1 -all"]
    assert r.query("c.example", "TXT").texts == [b"v=spf1 -all"]
    assert r.query("9.0.0.127.in-addr.arpa", "PTR").records[0].target.to_text() == "mx.a.example."
    assert r.query("a.example", "AAAA").addresses == ["::1"]
    assert r.query("nope.example", "TXT").nxdomain
    assert r.query("a.example", "MX").void and not r.query("a.example", "MX").nxdomain
    with pytest.raises(DNSTemporaryError):
        r.query("bad.example", "TXT")
    with pytest.raises(DNSTemporaryError):
        r.query("slow.example", "TXT")
    n = len(zone.queries)
    r.query("a.example", "TXT")
    assert len(zone.queries) == n
