"""The OpenSPF RFC 7208 test suite (tests/data/rfc7208-tests.yml) run against mailsuite.authn.spf.

Each scenario's zone data is served by a real DNS server on the loopback (a FakeZone) and asked
through our Resolver, so the suite checks pyspf, our glue and our DNS path together. One pytest
test per suite test; the known failures are listed in XFAIL with why, strict, so any change shows.

How the suite's zone data is meant (its header and pyspf's driver, test/testspf.py):
- a type SPF (99) record is also published as TXT unless the name lists TXT records of its own
  (the suite writes policies as SPF and relies on drivers to duplicate them);
- ``TXT: NONE`` means the name has no TXT record (and suppresses that duplication);
- ``TIMEOUT`` means: queries of the name time out, except of the types listed before it;
- a TXT/SPF value given as a list is one record of several character-strings;
- a name listed (even without records) exists: its absent types are NODATA, not NXDOMAIN.
A test with an empty ``mailfrom`` checks the HELO identity.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import spf
import yaml
from support.dns import FakeZone
from twisted.names import dns

from mailsuite.authn.spf import check_helo, check_mail_from
from mailsuite.resolver import Resolver

SUITE = Path(__file__).parents[1] / "data" / "rfc7208-tests.yml"

# A TIMEOUT costs the resolver this long; small, so the whole suite runs in seconds.
DNS_TIMEOUT = 0.5

# Suite test name -> why it fails with pyspf 2.0.14 behind our Resolver (strict xfail).
XFAIL: dict[str, str] = {
    "null-text": (
        "null.example.com also has a TXT record of zero character-strings (illegal per RFC 1035 "
        "3.3.14, the suite says an SPF checker must not crash on it): dnspython 2.9 rejects that "
        "rdata ('the list of strings must not be empty', FormError), so the whole UDP answer is "
        "dropped as malformed, the query times out, and the check is temperror, not pass"
    ),
}


@pytest.fixture
def suite_zone(reactor_thread):
    zone = FakeZone()
    reactor_thread.call(zone.start, reactor_thread.reactor)
    yield zone
    reactor_thread.call(zone.stop)


def _strings(value) -> list[bytes]:
    """A TXT/SPF value: one string, or a list of character-strings (UTF-8, as pyspf's driver)."""
    return [s.encode() for s in ([value] if isinstance(value, str) else value)]


def _serve(zone: FakeZone, zonedata: dict) -> None:
    """Publish one scenario's zone data the way the suite means it (see the module docstring)."""
    for name, entries in zonedata.items():
        key = name.lower().rstrip(".")
        zone.add(key)  # listed: the name exists
        own_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        spf_values = []
        before_timeout: set[int] | None = None
        for entry in entries:
            if entry == "TIMEOUT":
                before_timeout = {record.TYPE for record in zone.records[key]}
                continue
            ((rtype, value),) = entry.items()
            if rtype == "TXT" and value == "NONE":
                continue
            if rtype == "SPF":
                spf_values.append(value)
            zone.add(key, _record(rtype, value))
        if not own_txt:  # the SPF-to-TXT duplication comes last, after any TIMEOUT
            zone.add(key, *(dns.Record_TXT(*_strings(value)) for value in spf_values))
        if before_timeout is not None:
            zone.answers_only[key] = before_timeout


def _record(rtype: str, value):
    if rtype == "A":
        return dns.Record_A(value)
    if rtype == "AAAA":
        return dns.Record_AAAA(value)
    if rtype == "MX":
        preference, host = value
        return dns.Record_MX(preference, host.rstrip(".").encode())
    if rtype == "PTR":
        return dns.Record_PTR(value.rstrip(".").encode())
    if rtype == "CNAME":
        return dns.Record_CNAME(value.rstrip(".").encode())
    if rtype == "TXT":
        return dns.Record_TXT(*_strings(value))
    if rtype == "SPF":
        return dns.Record_SPF(*_strings(value))
    raise ValueError(f"zone data of unknown type {rtype}")


def _cases() -> list:
    params = []
    with SUITE.open("rb") as stream:
        for scenario in yaml.safe_load_all(stream):
            for name, test in scenario["tests"].items():
                reason = XFAIL.get(name)
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                params.append(pytest.param(scenario["zonedata"], test, id=name, marks=marks))
    return params


@pytest.mark.parametrize(("zonedata", "test"), _cases())
def test_rfc7208(suite_zone, zonedata, test):
    _serve(suite_zone, zonedata)
    resolver = Resolver(("127.0.0.1",), suite_zone.port, timeout=DNS_TIMEOUT)
    if test["mailfrom"]:
        got = check_mail_from(resolver, test["host"], test["mailfrom"], test["helo"])
    else:
        got = check_helo(resolver, test["host"], test["helo"])
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert got.result in expected, f"{test.get('description', '')} {got}"
    if "explanation" in test:
        # "DEFAULT": the implementation's own explanation, i.e. exp= was rightly ignored
        want = test["explanation"]
        assert got.explanation == (spf.EXPLANATIONS[got.result] if want == "DEFAULT" else want)
