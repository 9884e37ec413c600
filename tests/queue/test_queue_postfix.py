"""A real peer: Debian's Postfix (a throwaway instance on 127.0.0.1, its own config and queue
directories) receives mail relayed by mailsuite, refuses an unknown user (mailsuite bounces with
Postfix's reply), and sends mail to mailsuite as its relay host."""

from __future__ import annotations

import smtplib

import pytest
from queue_helpers import parse_report
from support.wait import wait_until

pytest_plugins = ["queue_fixtures"]  # start_instance (zone, postfix: support.fixtures)


@pytest.fixture
def peers(postfix, zone, start_instance):
    """mailsuite (a.test, alice) and Postfix (pf.test, carol), each relaying to the other."""
    zone.mx("pf.test", (10, "mx.pf.test"))
    zone.a("mx.pf.test", "127.0.0.1")
    listen = {"smtp.listen": [f"127.0.0.1:{postfix.relay_port}"]}
    a = start_instance("a", "mx.a.test", postfix.port, listen)
    a.add_user("alice@a.test")
    return a, postfix


def test_postfix_receives_mail_relayed_by_mailsuite(peers):
    a, postfix = peers
    a.submit("alice@a.test", ["carol@pf.test"], b"Subject: to postfix\r\n\r\n.dot line\r\nbye\r\n")

    [received] = wait_until(postfix.maildir, what="delivery by Postfix")
    assert b"from mx.a.test (localhost [127.0.0.1])" in received
    assert b"(using TLS" in received  # opportunistic STARTTLS to Postfix
    assert b"\nSubject: to postfix\n" in received  # Postfix's Maildir uses bare LF
    assert received.endswith(b"\n\n.dot line\nbye\n")
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_postfix_refusal_comes_back_as_a_notice(peers):
    a, postfix = peers
    a.submit("alice@a.test", ["nobody@pf.test"], b"Subject: lost\r\n\r\nx\r\n")

    [notice] = wait_until(lambda: a.messages("alice@a.test"), what="the notice")
    _, _, [block] = parse_report(notice)
    assert block["Status"] == "5.1.1"
    assert block["Remote-MTA"] == "dns; mx.pf.test"
    assert block["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <nobody@pf.test>")


def test_postfix_relays_to_mailsuite(peers):
    a, postfix = peers
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as client:
        client.sendmail(
            "carol@pf.test", ["alice@a.test"], b"Subject: from postfix\r\n\r\nhello alice\r\n"
        )

    [received] = wait_until(lambda: a.messages("alice@a.test"), what="delivery by mailsuite")
    # The MX checks (SPF, DKIM, DMARC, iprev) put their result between Return-Path and Received.
    top = b"Return-Path: <carol@pf.test>\r\nAuthentication-Results: mx.a.test;"
    assert received.startswith(top)
    assert b"\r\nReceived: from pf.test " in received
    assert b"by mx.a.test (mailsuite) with ESMTPS" in received
    assert received.endswith(b"hello alice\r\n")
