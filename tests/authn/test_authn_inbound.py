"""The MX verdict: the [verify] policy table, and the no-I/O fast path giving what the full
checks give, against a fake zone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mailsuite.authn.inbound import ACCEPT, JUNK, REJECT, TEMPFAIL, InboundChecks
from mailsuite.config import load_config
from mailsuite.resolver import Resolver

IP = "127.0.0.1"
HEAD = b"From: Joe <joe@sender.test>\r\nTo: bob@b.test\r\nSubject: hi\r\n"
MESSAGE = HEAD + b"\r\nhello\r\n"


@pytest.fixture
def checks(zone):
    zone.txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.ptr(IP, "mx.sender.test")
    zone.a("mx.sender.test", IP)
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=0.5)
    return zone, InboundChecks(resolver, "mx.b.test", load_config().verify)


def verdict(checks: InboundChecks, mail_from: str = "joe@sender.test", ip: str = IP):
    envelope = checks.envelope(ip, "mx.sender.test", mail_from)
    return checks.message(envelope, MESSAGE, HEAD, mail_from, ip)


def test_the_fast_path_gives_the_same_verdict_without_io(checks):
    zone, inbound = checks
    zone.txt("_dmarc.sender.test", "v=DMARC1; p=reject")
    envelope = inbound.envelope(IP, "mx.sender.test", "joe@sender.test")
    assert inbound.quick(envelope, HEAD, "joe@sender.test", IP) is None  # nothing known yet
    full = inbound.message(envelope, MESSAGE, HEAD, "joe@sender.test", IP)
    asked = len(zone.queries)
    assert inbound.known_envelope(IP, "MX.sender.test", "Joe@Sender.test") == envelope
    fast = inbound.quick(envelope, HEAD, "joe@sender.test", IP)
    assert fast == full and fast.action == ACCEPT and b"dmarc=pass" in fast.header
    assert len(zone.queries) == asked
    signed = b"DKIM-Signature: v=1; d=sender.test\r\n" + HEAD
    assert inbound.quick(envelope, signed, "joe@sender.test", IP) is None  # must verify


def test_dmarc_reject_policy_table(checks):
    zone, inbound = checks
    zone.txt("_dmarc.sender.test", "v=DMARC1; p=reject")
    forged = verdict(inbound, mail_from="x@elsewhere.test")
    assert (forged.action, forged.code, forged.enhanced) == (REJECT, 550, "5.7.1")
    assert "DMARC policy of sender.test (reject)" in forged.reason
    inbound.policy = replace(inbound.policy, on_dmarc_reject="junk")
    assert verdict(inbound, mail_from="x@elsewhere.test").action == JUNK
    inbound.policy = replace(inbound.policy, on_dmarc_reject="accept")
    assert verdict(inbound, mail_from="x@elsewhere.test").action == ACCEPT


def test_spf_fail_alone_is_header_only_unless_configured(checks):
    _, inbound = checks
    failing = verdict(inbound, ip="127.0.0.9")  # no DMARC record: SPF decides alone
    assert failing.action == ACCEPT and b"spf=fail" in failing.header
    inbound.policy = replace(inbound.policy, on_spf_fail="reject")
    refused = verdict(inbound, ip="127.0.0.9")
    assert (refused.action, refused.code, refused.enhanced) == (REJECT, 550, "5.7.23")


def test_a_dns_timeout_never_becomes_a_reject(checks):
    zone, inbound = checks
    zone.txt("_dmarc.sender.test", "v=DMARC1; p=reject")
    zone.silent.add("timeout.test")
    zone.txt("sender.test", "v=spf1 include:timeout.test -all")  # a second SPF record: permerror
    zone.records["sender.test"] = zone.records["sender.test"][-1:]  # ... so keep only the new one
    tempfail = verdict(inbound, mail_from="joe@sender.test", ip="127.0.0.9")
    assert (tempfail.action, tempfail.code, tempfail.enhanced) == (TEMPFAIL, 451, "4.7.1")
    assert b"spf=temperror" in tempfail.header
