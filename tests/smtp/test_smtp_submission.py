"""Submission (587 role, STARTTLS) and submissions (465 role, implicit TLS) with AUTH."""

import base64
import smtplib

import pytest
from conftest import PASSWORD


def test_auth_only_after_starttls(suite):
    with suite.smtp("submission") as client:
        code, text = client.ehlo()
        assert b"STARTTLS" in text and b"AUTH" not in text
        code, text = client.docmd(
            "AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.com\0x").decode()
        )
        assert (code, text[:6]) == (538, b"5.7.11")
        code, text = client.docmd("MAIL", "FROM:<alice@example.com>")
        assert (code, text[:5]) == (530, b"5.7.0")
        client.starttls(context=suite.tls_context())
        code, text = client.ehlo()
        assert b"AUTH PLAIN LOGIN" in text and b"STARTTLS" not in text


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_auth_and_send(suite, mechanism):
    with suite.submission() as client:
        client.ehlo()
        client.user, client.password = "alice@example.com", PASSWORD
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, text = client.auth(mechanism, method)
        assert (code, text[:5]) == (235, b"2.7.0")
        client.sendmail(
            "alice@example.com", ["bob@example.com"], b"Subject: hi\r\n\r\nhello bob\r\n"
        )
    [stored] = suite.messages("bob@example.com")
    assert b"with ESMTPSA id" in stored
    assert b"(Authenticated sender: alice@example.com)" in stored
    assert b"(using TLSv1.3 with cipher" in stored
    # Submission adds what the client left out (RFC 6409 §8).
    assert b"\r\nMessage-ID: <" in stored and b"\r\nDate: " in stored
    assert stored.endswith(b"Subject: hi\r\n\r\nhello bob\r\n")


def test_implicit_tls_submissions(suite):
    with suite.submissions("alice@example.com") as client:
        code, text = client.ehlo()
        assert b"STARTTLS" not in text and b"AUTH PLAIN LOGIN" in text
        client.sendmail(
            "alice@example.com",
            ["bob@example.com"],
            b"Message-ID: <keep@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Subject: tls\r\n\r\nover 465\r\n",
        )
    [stored] = suite.messages("bob@example.com")
    assert stored.count(b"Message-ID:") == 1 and stored.count(b"Date:") == 1


def plain_auth(client, user, password):
    """One AUTH PLAIN attempt (smtplib's login() would retry with every mechanism)."""
    client.user, client.password = user, password
    return client.auth("PLAIN", client.auth_plain)


def test_wrong_password_535_then_421(suite):
    with suite.submission() as client:
        client.ehlo()
        for _ in range(2):
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                plain_auth(client, "alice@example.com", "wrong")
            assert info.value.smtp_code == 535
            assert info.value.smtp_error.startswith(b"5.7.8")
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            plain_auth(client, "alice@example.com", "wrong")
        assert info.value.smtp_code == 421
        assert info.value.smtp_error.startswith(b"4.7.0")


def test_unknown_user_same_reply_as_bad_password(suite):
    replies = []
    for user in ("alice@example.com", "nobody@example.com"):
        with suite.submission() as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                plain_auth(client, user, "wrong")
            replies.append((info.value.smtp_code, info.value.smtp_error))
    assert replies[0] == replies[1]


def test_sender_must_be_owned(suite):
    suite.db.add_alias("alias@example.com", "alice@example.com")
    with suite.submission("alice@example.com") as client:
        code, text = client.mail("bob@example.com")
        assert (code, text[:5]) == (553, b"5.7.1")
        code, text = client.docmd("MAIL", "FROM:<>")
        assert code == 553
        assert client.mail("alias@example.com")[0] == 250
        client.rset()
        assert client.mail("ALICE@Example.COM")[0] == 250


def test_user_added_while_running_logs_in_at_once(suite):
    suite.add_user("carol@example.org")
    with suite.submission("carol@example.org") as client:
        assert client.noop()[0] == 250


def test_authenticated_relay_goes_to_queue(suite):
    with suite.submission("alice@example.com") as client:
        client.sendmail(
            "alice@example.com",
            ["friend@remote.example", "bob@example.com"],
            b"Subject: out\r\n\r\nto the world\r\n",
        )
    queue = suite.service.queue
    [queue_id] = queue.list_ids()
    envelope = queue.load(queue_id)
    assert envelope["sender"] == "alice@example.com"
    assert [r["address"] for r in envelope["recipients"]] == ["friend@remote.example"]
    queued = queue.message_path(queue_id).read_bytes()
    offset = envelope["metadata"]["body_offset"]
    assert queued[:offset] == b"Return-Path: <alice@example.com>\r\n"
    assert queued[offset:].startswith(b"Received: ")
    assert len(suite.messages("bob@example.com")) == 1


def test_size_limit_at_mail_and_after_data(suite):
    with suite.submission("alice@example.com") as client:
        code, text = client.docmd("MAIL", "FROM:<alice@example.com> SIZE=999999999")
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.mail("alice@example.com", ["SIZE=1000"])[0] == 250
        client.rcpt("bob@example.com")
        code, text = client.data(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1100)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert client.noop()[0] == 250
    assert suite.messages("bob@example.com") == []
    assert list(suite.config.spool_dir.glob("*.incoming")) == []
