"""Submission (587 role, STARTTLS) and submissions (465 role, implicit TLS): what an authenticated
client's mail becomes. AUTH and its refusals as dialogs are transcripts: tests/scenarios/smtp."""

import pytest
from conftest import PASSWORD


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
        client.sendmail(
            "alice@example.com",
            ["bob@example.com"],
            b"Message-ID: <keep@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Subject: tls\r\n\r\nover 465\r\n",
        )
    [stored] = suite.messages("bob@example.com")
    assert stored.count(b"Message-ID:") == 1 and stored.count(b"Date:") == 1


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
