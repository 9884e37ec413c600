"""Sandbox mode over SMTP: any login on submission, any recipient on the MX, everything into the
one capture mailbox (read back with IMAPS and POP3S), nothing queued; the simulated outcomes."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import uuid

import pytest
from sandbox_clients import API, captured, http, imaps, listing, pop3s
from support.wait import wait_until
from support.wire import RawClient

pytest_plugins = ["sandbox_fixtures"]  # sandbox


def random_address(local: str = "") -> str:
    token = uuid.uuid4().hex[:10]
    return f"{local or 'user'}-{token}@{token}.example"


def test_submission_takes_any_login_and_any_sender(sandbox):
    sender, to, bcc = random_address("app"), random_address(), random_address("hidden")
    with sandbox.submission("whatever-api-key", "any password") as client:
        refused = client.sendmail(
            sender, [to, bcc], f"From: {sender}\r\nTo: {to}\r\nSubject: hi\r\n\r\nbody\r\n"
        )
    assert refused == {}
    [stored] = captured(sandbox)
    assert stored.startswith(f"Return-Path: <{sender}>\r\n".encode())
    assert f"X-Sandbox-Envelope-From: <{sender}>\r\n".encode() in stored
    assert f"X-Sandbox-Envelope-To: <{to}>\r\nX-Sandbox-Envelope-To: <{bcc}>\r\n".encode() in stored
    assert b"(Authenticated sender: whatever-api-key)" in stored
    assert stored.endswith(b"Subject: hi\r\n\r\nbody\r\n")
    assert sandbox.service.queue.list_ids() == []


def test_implicit_tls_submissions_and_the_fixed_login(sandbox):
    with sandbox.submissions("sandbox", "sandbox") as client:
        client.sendmail("", ["someone@example.org"], b"Subject: null sender\r\n\r\nx\r\n")
    [stored] = captured(sandbox)
    assert b"X-Sandbox-Envelope-From: <>\r\n" in stored
    assert b"(Authenticated sender: sandbox@sandbox.invalid)" in stored


def test_mx_takes_any_recipient_at_any_domain(sandbox):
    recipients = [random_address() for _ in range(3)]
    with sandbox.smtp() as client:
        assert client.sendmail("a@b.example", recipients, b"Subject: mx\r\n\r\nx\r\n") == {}
    [stored] = captured(sandbox)  # one copy, whatever the number of recipients
    for address in recipients:
        assert f"X-Sandbox-Envelope-To: <{address}>".encode() in stored
    assert sandbox.service.queue.list_ids() == []


def test_auth_is_still_only_offered_over_tls(sandbox):
    raw = RawClient.connect(sandbox, "submission")
    try:
        assert raw.reply()[0] == 220
        raw.send(b"EHLO client.test\r\n")
        code, lines = raw.reply()
        assert code == 250 and not any(line.startswith(b"250-AUTH") for line in lines)
        raw.send(b"AUTH PLAIN AHNhbmRib3gAc2FuZGJveA==\r\n")
        assert raw.reply()[0] == 538
    finally:
        raw.close()


def test_submission_still_needs_a_login(sandbox):
    with sandbox.submission() as client:
        client.ehlo()
        code, _ = client.mail("a@b.example")
        assert code == 530


def test_only_the_configured_login_without_accept_any_login(make_suite):
    suite = make_suite(
        {
            "sandbox.enabled": True,
            "sandbox.accept_any_login": False,
            "sandbox.login": "tester",
            "sandbox.password": "pw-123",
        }
    )
    with pytest.raises(smtplib.SMTPAuthenticationError):
        suite.submission("someone", "pw-123")
    with suite.submission("tester", "pw-123") as client:
        client.sendmail("x@y.example", ["z@w.example"], b"Subject: ok\r\n\r\nx\r\n")
    [stored] = captured_for(suite, "tester")
    assert b"X-Sandbox-Envelope-To: <z@w.example>" in stored
    with imaps(suite, "tester", "pw-123") as client:
        assert client.select("INBOX") == ("OK", [b"1"])


def captured_for(suite, login: str) -> list[bytes]:
    new = suite.maildir(f"{login}@sandbox.invalid") / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())]


def test_capture_is_read_over_imaps_and_pop3s_with_the_fixed_login(sandbox):
    with sandbox.smtp() as client:
        client.sendmail("a@b.example", ["one@x.example"], b"Subject: first\r\n\r\n1\r\n")
        client.sendmail("a@b.example", ["two@y.example"], b"Subject: second\r\n\r\n2\r\n")
    with imaps(sandbox) as client:
        assert client.select("INBOX") == ("OK", [b"2"])
        _, data = client.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [item[1].strip() for item in data if isinstance(item, tuple)]
        assert subjects == [b"Subject: first", b"Subject: second"]
    client = pop3s(sandbox)
    try:
        assert client.stat()[0] == 2
        _, lines, _ = client.retr(2)
        assert b"Subject: second" in lines
    finally:
        client.quit()


def test_a_guest_login_does_not_open_the_mailbox(sandbox):
    with pytest.raises(imaplib.IMAP4.error):
        imaps(sandbox, "anyone", "anything")
    with pytest.raises(imaplib.IMAP4.error):
        imaps(sandbox, "sandbox", "wrong")
    with pytest.raises(poplib.error_proto):
        pop3s(sandbox, "sandbox@sandbox.invalid", "anything")


def test_reject_and_defer_are_answered_at_rcpt(sandbox):
    with sandbox.smtp() as client:
        client.ehlo()
        client.mail("app@b.example")
        code, text = client.rcpt("reject-me@anything.example")
        assert (code, text[:5]) == (550, b"5.1.1")
        code, text = client.rcpt("Defer-later@anything.example")
        assert (code, text[:5]) == (450, b"4.2.0")
        assert client.rcpt("fine@anything.example")[0] == 250
        assert client.data(b"Subject: mixed\r\n\r\nx\r\n")[0] == 250
    [stored] = captured(sandbox)
    assert b"X-Sandbox-Envelope-To: <fine@anything.example>\r\nReceived:" in stored
    assert b"reject-me" not in stored.split(b"\r\n\r\n")[0].split(b"Received:")[0]


def test_bounce_recipient_is_captured_and_bounced(sandbox):
    with sandbox.submission("app", "key") as client:
        client.sendmail(
            "noreply@app.example",
            ["bounce-test@nowhere.example", "ok@nowhere.example"],
            b"Message-ID: <orig-1@app.example>\r\nSubject: will bounce\r\n\r\nbody\r\n",
        )
    original, notice = wait_until(lambda: len(captured(sandbox)) == 2 and captured(sandbox))
    assert b"Subject: will bounce" in original
    assert notice.startswith(b"Return-Path: <>\r\nX-Sandbox-Envelope-From: <>\r\n")
    assert b"X-Sandbox-Envelope-To: <noreply@app.example>\r\n" in notice
    assert b"From: Mail Delivery System <MAILER-DAEMON@mx.test.example>" in notice
    assert b'Content-Type: multipart/report; report-type="delivery-status"' in notice
    assert b"Final-Recipient: rfc822; bounce-test@nowhere.example" in notice
    assert b"Action: failed" in notice and b"Status: 5.1.1" in notice
    assert b"Final-Recipient: rfc822; ok@nowhere.example" not in notice
    assert b"Message-ID: <orig-1@app.example>" in notice  # the original's header block
    assert sandbox.service.queue.list_ids() == []
    entries = listing(sandbox)
    assert [e["envelope"]["sender"] for e in entries] == ["noreply@app.example", ""]
    report = http(sandbox, f"{API}/{entries[1]['id']}").json()
    [status] = [
        p["text"] for p in report["parts"] if p["content_type"] == "message/delivery-status"
    ]
    assert "Final-Recipient: rfc822; bounce-test@nowhere.example\n" in status


def test_no_bounce_for_the_null_sender(sandbox):
    with sandbox.smtp() as client:
        client.sendmail("", ["bounce-x@y.example"], b"Subject: a bounce itself\r\n\r\nx\r\n")
        client.noop()
    assert len(captured(sandbox)) == 1


def test_mx_checks_are_off_in_sandbox_mode(make_suite):
    suite = make_suite({"sandbox.enabled": True, "verify.enabled": True})
    message = b"From: someone@gmail.com\r\nSubject: no DMARC here\r\n\r\nx\r\n"
    with suite.smtp() as client:
        assert client.sendmail("someone@gmail.com", ["x@y.example"], message) == {}
    [stored] = captured(suite)  # in the INBOX: no verdict could send it to Junk
    assert b"Authentication-Results" not in stored
