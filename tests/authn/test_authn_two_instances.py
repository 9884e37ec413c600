"""End to end with two mailsuite instances and a fake authoritative zone: A signs what its users
send, B checks what its MX receives (SPF, DKIM, DMARC, iprev) and applies A's DMARC policy."""

from __future__ import annotations

import smtplib

import pytest
from support.net import free_port
from support.wait import wait_until

from mailsuite.authn.keys import DKIMKeyStore

pytest_plugins = ["queue_fixtures"]  # start_instance (zone, start_sink: support.fixtures)

FORGER = "127.0.0.2"  # a loopback address A's SPF record does not list


@pytest.fixture
def instances(zone, start_instance):
    port_a, port_b = free_port(), free_port()
    for domain in ("a", "b"):
        zone.mx(f"{domain}.test", (10, f"mx.{domain}.test"))
        zone.a(f"mx.{domain}.test", "127.0.0.1")
    zone.ptr("127.0.0.1", "mx.a.test")  # forward-confirmed: iprev=pass for A's connections
    zone.txt("a.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.txt("mx.a.test", "v=spf1 a -all")
    a = start_instance("a", "mx.a.test", port_b, {"smtp.listen": [f"127.0.0.1:{port_a}"]})
    b = start_instance("b", "mx.b.test", port_a, {"smtp.listen": [f"127.0.0.1:{port_b}"]})
    a.add_user("alice@a.test")
    b.add_user("bob@b.test")
    keys = DKIMKeyStore(a.config.dkim_dir)
    for algorithm in ("rsa", "ed25519"):
        key = keys.generate("a.test", algorithm)
        zone.txt(key.dns_name(), *key.txt_strings())
    return zone, a, b


def results_of(message: bytes) -> str:
    """The Authentication-Results field of B, unfolded."""
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    start = head.index("Authentication-Results: mx.b.test;")
    field = head[start:].split("\r\nReceived:", 1)[0]
    return " ".join(field.split())


def forge(b, from_header: bytes, extra: bytes = b"") -> None:
    """Straight to B's MX from an address A's SPF does not list, without A's signature."""
    message = from_header + b"To: bob@b.test\r\nSubject: wire the money\r\n" + extra
    message += b"\r\nUrgent.\r\n"
    with smtplib.SMTP(
        "127.0.0.1", b.port("smtp"), "forger.test", timeout=10, source_address=(FORGER, 0)
    ) as client:
        client.sendmail("ceo@a.test", ["bob@b.test"], message)


def test_signed_mail_from_a_passes_every_check_at_b(instances):
    zone, a, b = instances
    zone.txt("_dmarc.a.test", "v=DMARC1; p=reject")
    a.submit(
        "alice@a.test",
        ["bob@b.test"],
        b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: lunch?\r\n"
        b"Message-ID: <q1@a.test>\r\n\r\nNoon at the usual place?\r\n",
    )
    [received] = wait_until(lambda: b.messages("bob@b.test"), what="the message at b.test")
    results = results_of(received)
    assert "iprev=pass policy.iprev=127.0.0.1 (mx.a.test)" in results
    assert "spf=pass (sender SPF authorized) smtp.mailfrom=alice@a.test" in results
    assert "spf=pass (sender SPF authorized) smtp.helo=mx.a.test" in results
    assert "dkim=pass header.d=a.test" in results and "header.a=rsa-sha256" in results
    assert "header.a=ed25519-sha256" in results
    assert results.count("dkim=pass") == 2
    assert "dmarc=pass" in results and "header.from=a.test" in results
    # The signature is A's, above A's own Received: line, below B's trace fields.
    assert received.index(b"DKIM-Signature: v=1; a=rsa-sha256") < received.index(
        b"Received: from client.test"
    )


def test_a_copy_for_a_local_recipient_carries_the_signature_too(instances):
    _, a, _ = instances
    a.add_user("carol@a.test")
    a.submit("alice@a.test", ["carol@a.test"], b"From: alice@a.test\r\nSubject: hi\r\n\r\nhi\r\n")
    [local] = wait_until(lambda: a.messages("carol@a.test"), what="the local copy")
    assert local.count(b"DKIM-Signature: ") == 2
    assert b"Authentication-Results" not in local  # submission is signed, not checked


def test_forgery_of_a_domain_with_p_reject_is_refused(instances):
    zone, _, b = instances
    zone.txt("_dmarc.a.test", "v=DMARC1; p=reject")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        forge(b, b"From: The CEO <ceo@a.test>\r\n")
    assert refused.value.smtp_code == 550
    assert b"5.7.1" in refused.value.smtp_error and b"DMARC" in refused.value.smtp_error
    assert b.messages("bob@b.test") == []


def test_forgery_of_a_domain_with_p_quarantine_lands_in_junk(instances):
    zone, _, b = instances
    zone.txt("_dmarc.a.test", "v=DMARC1; p=quarantine")
    forged = b"Authentication-Results: mx.b.test; dkim=pass header.d=a.test; dmarc=pass\r\n"
    forge(b, b"From: The CEO <ceo@a.test>\r\n", extra=forged)
    junk = b.maildir("bob@b.test") / ".Junk" / "new"
    [message] = wait_until(lambda: [p.read_bytes() for p in junk.iterdir()], what="junk")
    assert b.messages("bob@b.test") == []
    results = results_of(message)
    assert message.count(b"Authentication-Results: mx.b.test") == 1  # the forged one is gone
    assert "spf=fail" in results and "dmarc=fail" in results and "dkim=none" in results
    assert f"iprev=permerror policy.iprev={FORGER}" in results


def test_a_dns_failure_is_a_temporary_refusal_never_a_bounce(instances):
    zone, _, b = instances
    zone.txt("_dmarc.a.test", "v=DMARC1; p=reject")
    zone.records.pop("a.test")  # SPF of a.test now times out ...
    zone.mx("a.test", (10, "mx.a.test"))
    zone.silent.add("a.test")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        forge(b, b"From: The CEO <ceo@a.test>\r\n")
    assert refused.value.smtp_code == 451 and b"4.7.1" in refused.value.smtp_error


def test_delivery_notices_are_signed_with_the_hostnames_domain(instances):
    from mailsuite.authn.dkimcheck import verify_signatures
    from mailsuite.resolver import Resolver

    zone, a, _ = instances
    a.submit("alice@a.test", ["nobody@b.test"], b"From: alice@a.test\r\nSubject: x\r\n\r\nx\r\n")
    [notice] = wait_until(lambda: a.messages("alice@a.test"), what="the bounce at a.test")
    assert b"From: Mail Delivery System <MAILER-DAEMON@mx.a.test>" in notice
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=2)
    checks = verify_signatures(resolver, notice)
    assert [(c.result, c.domain) for c in checks] == [("pass", "a.test"), ("pass", "a.test")]


def test_authentic_mail_forwarded_by_an_alias_is_signed_on_its_way_out(instances):
    """B's MX gets mail of its own domain (SPF-aligned, DMARC pass) for an alias that forwards
    to A: B signs it with b.test's keys, so it still passes DMARC at A."""
    zone, a, b = instances
    zone.txt("b.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.txt("_dmarc.b.test", "v=DMARC1; p=reject")
    for algorithm in ("rsa", "ed25519"):
        key = DKIMKeyStore(b.config.dkim_dir).generate("b.test", algorithm)
        zone.txt(key.dns_name(), *key.txt_strings())
    b.db.add_alias("team@b.test", "alice@a.test")
    with smtplib.SMTP("127.0.0.1", b.port("smtp"), "app.b.test", timeout=10) as client:
        client.sendmail(
            "app@b.test",
            ["team@b.test"],
            b"From: The app <app@b.test>\r\nTo: team@b.test\r\nSubject: report\r\n\r\nok\r\n",
        )
    [forwarded] = wait_until(lambda: a.messages("alice@a.test"), what="the forwarded copy")
    head = forwarded.split(b"\r\n\r\n", 1)[0].decode()
    results = " ".join(head[head.index("Authentication-Results: mx.a.test;") :].split())
    assert results.count("dkim=pass header.d=b.test") == 2
    assert "Authentication-Results: mx.b.test;" in head  # B's own verdict travels along
