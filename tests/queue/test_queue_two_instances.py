"""Two mailsuite instances, each the MX of its own domain in the fake zone: a user of one writes
to a user of the other through submission, the queue, MX lookup and the other's MX listener;
the answer comes back the same way."""

from __future__ import annotations

from support.net import free_port
from support.wait import wait_until

pytest_plugins = ["queue_fixtures"]  # start_instance (zone, start_sink: support.fixtures)


def test_mail_and_reply_between_two_instances(zone, start_instance):
    port_a, port_b = free_port(), free_port()
    zone.mx("a.test", (10, "mx.a.test"))
    zone.mx("b.test", (10, "mx.b.test"))
    zone.a("mx.a.test", "127.0.0.1")
    zone.a("mx.b.test", "127.0.0.1")
    # Every MX host listens on 127.0.0.1 here, so each instance's "MX port" is the other's.
    a = start_instance("a", "mx.a.test", port_b, {"smtp.listen": [f"127.0.0.1:{port_a}"]})
    b = start_instance("b", "mx.b.test", port_a, {"smtp.listen": [f"127.0.0.1:{port_b}"]})
    a.add_user("alice@a.test")
    b.add_user("bob@b.test")

    a.submit(
        "alice@a.test",
        ["bob@b.test"],
        b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: lunch?\r\n"
        b"Message-ID: <q1@a.test>\r\n\r\nNoon at the usual place?\r\n",
    )

    [received] = wait_until(lambda: b.messages("bob@b.test"), what="the message at b.test")
    assert received.startswith(b"Return-Path: <alice@a.test>\r\nAuthentication-Results: mx.b.test;")
    assert b"\r\nReceived: from mx.a.test " in received
    assert b"by mx.b.test (mailsuite) with ESMTPS" in received  # A used B's STARTTLS
    assert b"(Authenticated sender: alice@a.test)" in received  # A's own Received header
    assert received.endswith(b"\r\n\r\nNoon at the usual place?\r\n")

    b.submit(
        "bob@b.test",
        ["alice@a.test"],
        b"From: bob@b.test\r\nTo: alice@a.test\r\nSubject: Re: lunch?\r\n"
        b"In-Reply-To: <q1@a.test>\r\n\r\nSure.\r\n",
    )

    [reply] = wait_until(lambda: a.messages("alice@a.test"), what="the reply at a.test")
    assert reply.startswith(b"Return-Path: <bob@b.test>\r\nAuthentication-Results: mx.a.test;")
    assert b"\r\nReceived: from mx.b.test " in reply
    assert b"In-Reply-To: <q1@a.test>" in reply and reply.endswith(b"Sure.\r\n")
    wait_until(lambda: not a.queue_ids() and not b.queue_ids(), what="both queues to empty")
