"""DMARC: record parsing, the author domain of From:, the Organizational Domain, and evaluation
against a real (fake-zone) DNS server: alignment, policy discovery, sp/np, pct, DNS errors."""

from __future__ import annotations

import pytest
from support.dns import FakeZone

from mailsuite.authn.dmarc import (
    DMARCRecord,
    DMARCResult,
    evaluate,
    from_domain,
    organizational_domain,
    parse_record,
)
from mailsuite.resolver import Resolver

# --- parse_record ------------------------------------------------------------------------------

PARSED = [
    ("v=DMARC1;p=reject", DMARCRecord(p="reject")),
    ("v=DMARC1; p=none", DMARCRecord(p="none")),
    ("  v = DMARC1 ;  p = Quarantine ; ", DMARCRecord(p="quarantine")),
    ("v=DMARC1; p=reject; sp=none; np=quarantine", DMARCRecord("reject", "none", "quarantine")),
    ("v=DMARC1; p=reject; adkim=S; aspf=s", DMARCRecord(p="reject", adkim="s", aspf="s")),
    ("v=DMARC1; p=reject; adkim=x; aspf=", DMARCRecord(p="reject")),  # bad -> default r
    ("v=DMARC1; p=reject; pct=0", DMARCRecord(p="reject", pct=0)),
    ("v=DMARC1; p=reject; pct=25", DMARCRecord(p="reject", pct=25)),
    ("v=DMARC1; p=reject; pct=101", DMARCRecord(p="reject")),  # bad -> default 100
    ("v=DMARC1; p=reject; pct=-1", DMARCRecord(p="reject")),
    ("v=DMARC1; p=reject; pct=ten", DMARCRecord(p="reject")),
    ("v=DMARC1; p=reject; np=never", DMARCRecord(p="reject")),  # a bad np is ignored
    ("v=DMARC1; p=reject; foo=bar; junk; =x", DMARCRecord(p="reject")),  # unknown: ignored
    ("v=DMARC1; p=reject; p=none", DMARCRecord(p="reject")),  # the first of a repeated tag
    ("v=DMARC1; P=REJECT", DMARCRecord(p="reject")),
    (
        "v=DMARC1; p=none; rua=mailto:a@r.example!10m, bogus ,https://r.example/x; "
        "ruf=mailto:f@r.example; fo=1:d; rf=AFRF; ri=3600",
        DMARCRecord(
            p="none",
            rua=("mailto:a@r.example!10m", "https://r.example/x"),
            ruf=("mailto:f@r.example",),
            fo="1:d",
            ri=3600,
        ),
    ),
    ("v=DMARC1; p=none; fo=7; ri=soon", DMARCRecord(p="none")),
    # RFC 7489 §6.6.3 step 6: no valid p (or a bad sp) but a valid rua -> as if p=none.
    ("v=DMARC1; rua=mailto:a@r.example", DMARCRecord(p="none", rua=("mailto:a@r.example",))),
    ("v=DMARC1; p=block; rua=mailto:a@r.example", DMARCRecord("none", rua=("mailto:a@r.example",))),
    (
        "v=DMARC1; p=reject; sp=hold; pct=50; rua=mailto:a@r.example",
        DMARCRecord("none", pct=50, rua=("mailto:a@r.example",)),
    ),
]


@pytest.mark.parametrize(("text", "record"), PARSED)
def test_parse_record(text, record):
    assert parse_record(text) == record


@pytest.mark.parametrize(
    "text",
    [
        "",
        "p=reject; v=DMARC1",  # the version must come first
        "v=DMARC2; p=reject",
        "v=dmarc1; p=reject",  # RFC 7489 §6.4: the version value is case-sensitive
        "v=DMARC1p=reject",
        "v=DMARC1 p=reject",  # no separator: not v=DMARC1
        "v=DMARC1",  # no p, no rua
        "v=DMARC1; p=block",
        "v=DMARC1; p=",
        "v=DMARC1; p=reject; sp=hold",  # a bad sp without rua
        "v=DMARC1; p=block; rua=bogus",  # rua present but no valid URI
        "v=spf1 -all",
    ],
)
def test_parse_record_rejects(text):
    with pytest.raises(ValueError):
        parse_record(text)


def test_policy_for():
    record = DMARCRecord(p="reject", sp="quarantine", np="none")
    assert record.policy_for(subdomain=False, nonexistent=True) == "reject"
    assert record.policy_for(subdomain=True) == "quarantine"
    assert record.policy_for(subdomain=True, nonexistent=True) == "none"
    assert DMARCRecord(p="reject", np="none").policy_for(True) == "reject"
    assert DMARCRecord(p="reject", sp="none").policy_for(True, nonexistent=True) == "none"


# --- organizational_domain and from_domain -----------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("mail.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),  # a public suffix is its own
        ("A.B.Example.COM.", "example.com"),
        ("deep.sub.example.test", "example.test"),  # unknown TLD: counted as a public suffix
        ("user.github.io", "user.github.io"),  # the list's private section counts
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_organizational_domain(domain, org):
    assert organizational_domain(domain) == org


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("john@Example.COM", "example.com"),
        ("John Doe <john@example.com>", "example.com"),
        ('"Doe, John" <john@example.com>', "example.com"),
        ('"evil@attacker.example" <john@example.com>', "example.com"),
        ("John (at <x@attacker.example>, (nested)) <john@example.com>", "example.com"),
        ("john@example.com (John Doe)", "example.com"),
        ("=?utf-8?q?x=40attacker.example=2C?= <john@example.com>", "example.com"),
        ("=?utf-8?b?SsO2cmc=?= <john@example.com>", "example.com"),
        ("John\r\n <john@example.com>", "example.com"),  # folded
        ("J. R. Doe <john@example.com>", "example.com"),  # obs-phrase
        ('"john smith"@example.com', "example.com"),
        ("john.q.public@mail.example.com", "mail.example.com"),
        ("<@relay.example,@other.example:john@example.com>", "example.com"),  # obs-route
        ("Authors: a@example.com, b@Example.com;", "example.com"),
        ("a@example.com, B <b@example.com>", "example.com"),  # one domain: evaluated once
        ("a@example.com,,", "example.com"),
        ("Jöhn <j@bücher.example>", "xn--bcher-kva.example"),
    ],
)
def test_from_domain(value, domain):
    assert from_domain(value) == domain


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "john",
        "john@",
        "<>",
        "John Doe",
        "a@example.com, b@other.example",  # two author domains: local policy
        "undisclosed-recipients:;",
        "a@attacker.example <john@example.com>",  # readable two ways
        "John <john@example.com> junk",
        "John <john@example.com",
        "(unclosed <john@example.com>",
        '"unclosed <john@example.com>',
        "john@[192.0.2.1]",  # a domain literal has no DMARC record
        "john@example.com.",
        "john@example..com",
        "john@@example.com",
        "a@b@example.com",
        "john@exa$mple.com",
        "john@" + "a" * 64 + ".example",
        "john@example.com\x00",
        "G: H: a@example.com;;",
    ],
)
def test_from_domain_none(value):
    assert from_domain(value) is None


# --- evaluate against DNS ----------------------------------------------------------------------

RECORDS = {
    "_dmarc.reject.example": ["v=DMARC1; p=reject"],
    "_dmarc.quarantine.example": ["v=DMARC1; p=quarantine; pct=50"],
    "_dmarc.pct.example": ["v=DMARC1; p=reject; pct=10"],
    "_dmarc.zero.example": ["v=DMARC1; p=reject; pct=0"],
    "_dmarc.monitor.example": ["v=DMARC1; p=none; rua=mailto:d@monitor.example"],
    "_dmarc.strict.example": ["v=DMARC1; p=reject; adkim=s; aspf=s"],
    "_dmarc.example.co.uk": ["v=DMARC1; p=reject; sp=quarantine"],
    "_dmarc.np.example": ["v=DMARC1; p=reject; sp=none; np=quarantine"],
    "_dmarc.sub.reject.example": ["v=DMARC1; p=none"],  # a subdomain's own record wins
    "_dmarc.multi.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "_dmarc.multi.reject.example": ["v=DMARC1; p=none", "v=DMARC1; p=quarantine"],
    "_dmarc.mixed.example": ["v=spf1 -all", "v=DMARC1; p=quarantine", "hello"],
    "_dmarc.spf.reject.example": ["v=spf1 -all"],  # not DMARC: discarded, the org's applies
    "_dmarc.invalid.example": ["v=DMARC1; p=block"],
    "_dmarc.invalid-rua.example": ["v=DMARC1; p=block; rua=mailto:d@invalid-rua.example"],
    "_dmarc.version.example": ["v=dmarc1; p=reject"],
}


@pytest.fixture(scope="module")
def dmarc_zone(reactor_thread):
    """One zone for the evaluation table (each row looks at its own names)."""
    zone = FakeZone()
    for name, texts in RECORDS.items():
        for text in texts:
            zone.txt(name, text)
    zone.txt("_dmarc.split.example", "v=DMARC1; ", "p=reject")  # one record, two strings
    zone.cname("_dmarc.alias.example", "_dmarc.reject.example")
    zone.a("mail.example.co.uk", "192.0.2.1")
    zone.a("www.np.example", "192.0.2.1")
    zone.mx("mx-only.np.example", (10, "mx.np.example"))
    zone.aaaa("v6.np.example", "2001:db8::1")
    zone.txt("txt-only.np.example", "hello")  # exists in DNS, but not for DMARC (RFC 9091)
    zone.servfail.add("_dmarc.broken.example")
    zone.servfail.add("_dmarc.orgfail.example")
    zone.servfail.add("flaky.np.example")
    zone.silent.add("_dmarc.slow.example")
    reactor_thread.call(zone.start, reactor_thread.reactor)
    yield zone
    reactor_thread.call(zone.stop)


@pytest.fixture
def resolver(dmarc_zone):
    return Resolver(("127.0.0.1",), dmarc_zone.port, timeout=0.5)


def never() -> float:
    raise AssertionError("the pct sample is drawn only for failing mail under a policy")


def at(value: float):
    return lambda: value


def r(domain: str) -> tuple[str, str]:
    return ("pass", domain)


# (from, spf, dkim, rng) -> "result policy disposition [record domain]", the record domain
# left out when it is the From domain, "-" when there is none.
EVALUATED = [
    # Alignment, relaxed (the default): the same Organizational Domain.
    ("reject.example", r("reject.example"), [], never, "pass reject none"),
    ("reject.example", r("bounce.reject.example"), [], never, "pass reject none"),
    ("reject.example", None, [r("mail.reject.example")], never, "pass reject none"),
    ("reject.example", None, [("PASS", "Reject.Example.")], never, "pass reject none"),
    ("spf.reject.example", r("reject.example"), [], never, "pass reject none reject.example"),
    ("reject.example", r("other.example"), [r("other.example")], at(0), "fail reject reject"),
    ("reject.example", ("softfail", "reject.example"), [], at(0), "fail reject reject"),
    ("reject.example", ("fail", "reject.example"), [("fail", "reject.example")],
     at(0), "fail reject reject"),
    ("reject.example", None, [("fail", "reject.example"), r("x.example"), r("reject.example")],
     never, "pass reject none"),
    ("reject.example", None, [], at(0), "fail reject reject"),
    # Strict: the very same name.
    ("strict.example", r("strict.example"), [], never, "pass reject none"),
    ("strict.example", None, [r("STRICT.example")], never, "pass reject none"),
    ("strict.example", r("bounce.strict.example"), [], at(0), "fail reject reject"),
    ("strict.example", None, [r("mail.strict.example")], at(0), "fail reject reject"),
    # The Organizational Domain from the Public Suffix List; sp for its subdomains.
    ("mail.example.co.uk", None, [r("example.co.uk")],
     never, "pass quarantine none example.co.uk"),
    ("mail.example.co.uk", r("bounce.example.co.uk"), [],
     never, "pass quarantine none example.co.uk"),
    ("mail.example.co.uk", None, [r("other.co.uk")],
     at(0), "fail quarantine quarantine example.co.uk"),
    ("mail.example.co.uk", None, [r("co.uk")],
     at(0), "fail quarantine quarantine example.co.uk"),
    ("example.co.uk", None, [r("other.co.uk")], at(0), "fail reject reject"),
    # A subdomain with its own record uses its p (sp is for the org record's subdomains).
    ("sub.reject.example", None, [], never, "fail none none"),
    # pct: a draw >= pct/100 steps the policy down one level.
    ("quarantine.example", None, [], at(0.49), "fail quarantine quarantine"),
    ("quarantine.example", None, [], at(0.5), "fail quarantine none"),
    ("pct.example", None, [], at(0.05), "fail reject reject"),
    ("pct.example", None, [], at(0.95), "fail reject quarantine"),
    ("zero.example", None, [], at(0.0), "fail reject quarantine"),
    ("pct.example", r("pct.example"), [], never, "pass reject none"),
    ("monitor.example", None, [], never, "fail none none"),
    # np (RFC 9091): a subdomain with no A, AAAA or MX (NXDOMAIN or no data).
    ("ghost.np.example", None, [], at(0), "fail quarantine quarantine np.example"),
    ("txt-only.np.example", None, [], at(0), "fail quarantine quarantine np.example"),
    ("www.np.example", None, [], never, "fail none none np.example"),
    ("mx-only.np.example", None, [], never, "fail none none np.example"),
    ("v6.np.example", None, [], never, "fail none none np.example"),
    ("np.example", None, [], at(0), "fail reject reject"),
    ("ghost.np.example", r("np.example"), [], never, "pass quarantine none np.example"),
    # Discovery details.
    ("split.example", None, [], at(0), "fail reject reject"),
    ("alias.example", None, [], at(0), "fail reject reject"),
    ("mixed.example", None, [], at(0), "fail quarantine quarantine"),
    ("invalid-rua.example", None, [], never, "fail none none"),
    ("nodmarc.example", r("nodmarc.example"), [], never, "none none none -"),
    ("version.example", None, [], never, "none none none -"),
    ("multi.example", None, [], never, "none none none -"),
    ("multi.reject.example", None, [], never, "none none none -"),  # no fallback
    ("invalid.example", None, [], never, "permerror none none"),
    ("sub.invalid.example", None, [], never, "permerror none none invalid.example"),
    # DNS temporary errors: temperror, never a reject.
    ("broken.example", None, [], never, "temperror none none -"),
    ("sub.orgfail.example", None, [], never, "temperror none none -"),
    ("slow.example", None, [], never, "temperror none none -"),
    ("flaky.np.example", None, [], never, "temperror none none np.example"),
    ("flaky.np.example", r("np.example"), [], never, "pass none none np.example"),
]


@pytest.mark.parametrize(("author", "spf", "dkim", "rng", "expected"), EVALUATED)
def test_evaluate(resolver, author, spf, dkim, rng, expected):
    result = evaluate(resolver, author, spf, dkim, rng=rng)
    assert isinstance(result, DMARCResult)
    assert result.header_from == author.lower()
    result_, policy, disposition, *where = expected.split()
    record_domain = {(): author, ("-",): ""}.get(tuple(where), where[0] if where else "")
    got = (result.result, result.policy, result.disposition, result.record_domain)
    assert got == (result_, policy, disposition, record_domain)
    assert result.reason


def test_evaluate_reasons(resolver):
    fail = evaluate(resolver, "reject.example", ("pass", "other.example"), [], rng=at(0))
    assert fail.reason == "SPF and DKIM not aligned with reject.example"
    sampled = evaluate(resolver, "pct.example", None, [], rng=at(0.99))
    assert "pct=10" in sampled.reason
    passed = evaluate(resolver, "reject.example", None, [r("mail.reject.example")], rng=never)
    assert "d=mail.reject.example" in passed.reason
    assert "2 DMARC records" in evaluate(resolver, "multi.example", None, [], rng=never).reason


def test_evaluate_normalizes_the_from_domain(resolver):
    result = evaluate(resolver, "Reject.Example.", None, [], rng=at(0))
    assert (result.header_from, result.result, result.disposition) == (
        "reject.example",
        "fail",
        "reject",
    )
    bad = evaluate(resolver, "exa$mple.com", None, [], rng=never)
    assert (bad.result, bad.policy, bad.record_domain) == ("none", "none", "")


def test_evaluate_asks_dns_once_per_name(dmarc_zone, resolver):
    """The from-domain record is looked up before the org's; answers come from the cache."""
    before = len(dmarc_zone.queries)
    evaluate(resolver, "deep.sub.reject.example", None, [], rng=at(0))
    assert dmarc_zone.queries[before:] == [
        ("_dmarc.deep.sub.reject.example", "TXT"),
        ("_dmarc.reject.example", "TXT"),
    ]
    evaluate(resolver, "deep.sub.reject.example", None, [], rng=at(0))
    assert len(dmarc_zone.queries) == before + 2
