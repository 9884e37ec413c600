"""The MX role (port 25): what it delivers and how (trace headers, aliases, loops). Its replies
as dialogs are transcripts: tests/scenarios/smtp."""


def test_local_delivery_with_trace_headers(suite):
    body = b"Subject: hello\r\nFrom: x@remote.example\r\n\r\nline one\r\nline two\r\n"
    with suite.smtp() as client:
        client.sendmail("x@remote.example", ["alice@example.com"], body)
    [stored] = suite.messages("alice@example.com")
    assert stored.startswith(b"Return-Path: <x@remote.example>\r\nReceived: from client.test ")
    assert stored.endswith(body)
    assert b"by mx.test.example (mailsuite) with ESMTP id " in stored
    assert b"for <alice@example.com>;" in stored
    # MX does not add Message-ID/Date: that is the submission server's job.
    assert b"Message-ID" not in stored


def test_disabled_user_rejected(suite):
    suite.db.set_enabled("bob@example.com", False)
    with suite.smtp() as client:
        client.ehlo()
        client.mail("x@remote.example")
        code, text = client.rcpt("bob@example.com")
        assert (code, text[:5]) == (550, b"5.2.1")


def test_alias_and_catch_all(suite):
    suite.db.add_alias("sales@example.com", "alice@example.com")
    suite.db.add_alias("sales@example.com", "bob@example.com")
    suite.db.add_alias("@example.com", "bob@example.com")
    with suite.smtp() as client:
        client.sendmail("x@remote.example", ["sales@example.com"], b"Subject: a\r\n\r\nalias\r\n")
        client.sendmail("x@remote.example", ["random@example.com"], b"Subject: b\r\n\r\ncatch\r\n")
    assert [m.endswith(b"alias\r\n") for m in suite.messages("alice@example.com")] == [True]
    bob = suite.messages("bob@example.com")
    assert sorted(m.rsplit(b"\r\n\r\n", 1)[1] for m in bob) == [b"alias\r\n", b"catch\r\n"]


def test_null_sender_accepted_on_mx(suite):
    with suite.smtp() as client:
        client.ehlo()
        assert client.docmd("MAIL", "FROM:<>")[0] == 250
        assert client.rcpt("alice@example.com")[0] == 250
        assert client.data(b"Subject: bounce\r\n\r\nx\r\n")[0] == 250
    [stored] = suite.messages("alice@example.com")
    assert stored.startswith(b"Return-Path: <>\r\n")


def test_mail_loop_detected(suite):
    hops = b"".join(b"Received: from hop%d\r\n" % i for i in range(51))
    with suite.smtp() as client:
        client.ehlo()
        client.mail("x@remote.example")
        client.rcpt("alice@example.com")
        code, text = client.data(hops + b"Subject: loop\r\n\r\nx\r\n")
        assert (code, text[:5]) == (554, b"5.4.6")
    assert suite.messages("alice@example.com") == []


def test_helo_session_is_plain_smtp(suite):
    with suite.smtp() as client:
        assert client.helo("old.client")[0] == 250
        client.sendmail("x@remote.example", ["alice@example.com"], b"Subject: old\r\n\r\nx\r\n")
    [stored] = suite.messages("alice@example.com")
    assert b"Received: from old.client (unknown [127.0.0.1])" in stored
    assert b"with SMTP id" in stored


def test_received_header_uses_utf8_for_smtputf8(suite):
    with suite.submission("alice@example.com") as client:
        client.ehlo()
        code, _ = client.mail("alice@example.com", ["SMTPUTF8", "BODY=8BITMIME"])
        assert code == 250
        client.send("RCPT TO:<jörg@bücher.example>\r\n".encode())
        assert client.getreply()[0] == 250
        assert client.data("Subject: ü\r\n\r\nbody\r\n".encode())[0] == 250
    queue = suite.service.queue
    [queue_id] = queue.list_ids()
    assert queue.load(queue_id)["recipients"][0]["address"] == "jörg@xn--bcher-kva.example"


def test_bare_postmaster_is_accepted(suite):
    suite.add_user("postmaster@test.example")
    with suite.smtp() as client:
        client.ehlo()
        client.mail("x@remote.example")
        assert client.docmd("RCPT", "TO:<Postmaster>")[0] == 250
        assert client.data(b"Subject: pm\r\n\r\nhello postmaster\r\n")[0] == 250
    [stored] = suite.messages("postmaster@test.example")
    assert stored.endswith(b"hello postmaster\r\n")
