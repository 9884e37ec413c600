"""Submission -> queue -> routing in the fake zone -> relay to SMTP sinks, over real sockets."""

from __future__ import annotations

import pytest
from queue_helpers import parse_report
from support.net import free_port
from support.sink import SinkBehaviour, tls_server
from support.wait import wait_until

pytest_plugins = ["queue_fixtures"]  # start_instance (zone, start_sink: support.fixtures)

BODY = b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: hello\r\n\r\n.leading dot\r\nbye\r\n"


@pytest.fixture
def b_mx(zone):
    """b.test's MX is 127.0.0.1; the sink listens on the port the instance uses for MX hosts."""
    zone.mx("b.test", (10, "mx.b.test"))
    zone.a("mx.b.test", "127.0.0.1")


def sender_instance(start_instance, sink_port, **overrides):
    a = start_instance("a", "mx.a.test", mx_port=sink_port, overrides=overrides)
    a.add_user("alice@a.test")
    return a


def dsn_of(instance, address="alice@a.test"):
    [raw] = wait_until(lambda: instance.messages(address), what=f"a notice for {address}")
    assert raw.startswith(b"Return-Path: <>\r\n")
    return parse_report(raw)


def test_delivered_on_first_try(b_mx, start_sink, start_instance):
    sink = start_sink()
    a = sender_instance(start_instance, sink.port)

    # A local copy too: the queue file then starts with Return-Path, which must not be relayed.
    a.submit("alice@a.test", ["bob@b.test", "alice@a.test"], BODY)

    wait_until(lambda: sink.transactions, what="the relayed message")
    [txn] = sink.transactions
    assert (txn.sender, txn.recipients) == ("alice@a.test", ["bob@b.test"])
    assert txn.helo == "mx.a.test"
    assert txn.data.startswith(b"Received: from client.test")
    assert txn.data.endswith(BODY)
    assert "SIZE=" + str(len(txn.data)) in txn.params
    [local] = a.messages("alice@a.test")
    assert local.startswith(b"Return-Path: <alice@a.test>\r\n")
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_temporary_failure_then_delivered_on_retry(b_mx, start_sink, start_instance):
    sink = start_sink(SinkBehaviour(rcpt_replies={"bob@b.test": ["451 4.7.1 greylisted"]}))
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    wait_until(lambda: sink.transactions, what="delivery on the retry")
    assert sink.recipients() == ["bob@b.test"]
    assert sink.connections == 2
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")
    assert a.messages("alice@a.test") == []


def test_permanent_failure_bounces_to_the_local_sender(b_mx, start_sink, start_instance):
    reply = "550 5.1.1 <bob@b.test>: Recipient address rejected: user unknown"
    sink = start_sink(SinkBehaviour(rcpt_replies={"bob@b.test": reply}))
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    report, parts, [block] = dsn_of(a)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["To"] == "alice@a.test"
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@mx.a.test>"
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert reply in " ".join(parts[0].get_content().split())
    per_message = parts[1].get_payload()[0]
    assert per_message["Reporting-MTA"] == "dns; mx.a.test"
    assert block["Final-Recipient"] == "rfc822; bob@b.test"
    assert block["Action"] == "failed"
    assert block["Status"] == "5.1.1"
    assert block["Remote-MTA"] == "dns; mx.b.test"
    assert block["Diagnostic-Code"] == f"smtp; {reply}"
    assert b"Subject: hello" in parts[2].get_payload(decode=True)
    assert sink.transactions == []
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_mixed_results_share_one_connection(b_mx, start_sink, start_instance):
    behaviour = SinkBehaviour(
        rcpt_replies={
            "carol@b.test": "550 5.1.1 no such user",
            "dave@b.test": ["452 4.2.2 mailbox full"],
        }
    )
    sink = start_sink(behaviour)
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["bob@b.test", "carol@b.test", "dave@b.test"], BODY)

    wait_until(lambda: len(sink.transactions) == 2, what="two deliveries")
    first, second = sink.transactions
    assert first.recipients == ["bob@b.test"]
    assert second.recipients == ["dave@b.test"]
    # PIPELINING: the first connection sent MAIL, the three RCPTs and DATA in one go.
    mail_batch = next(batch for batch in sink.batches if batch[0].startswith("MAIL FROM"))
    assert [c.split(":")[0] for c in mail_batch] == ["MAIL FROM"] + ["RCPT TO"] * 3 + ["DATA"]
    _, _, blocks = dsn_of(a)
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; carol@b.test"]
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_unreachable_host_retries_then_expires_with_a_notice(zone, start_instance):
    closed = free_port()
    a = start_instance(
        "a",
        "mx.a.test",
        overrides={
            "transport.map": {"c.test": f"127.0.0.1:{closed}"},
            "queue.retry_schedule": [0.1],
            "queue.lifetime": 0.8,
        },
    )
    a.add_user("alice@a.test")

    a.submit("alice@a.test", ["carol@c.test"], BODY)

    def retried():
        ids = a.queue_ids()
        if not ids:
            return False
        [record] = a.envelope(ids[0])["recipients"]
        return record["attempts"] >= 2 and record["state"] == "deferred"

    wait_until(retried, what="a second failed attempt")
    _, parts, [block] = dsn_of(a)
    assert block["Action"] == "failed"
    assert block["Status"] == "4.4.7"
    assert "Connection refused" in block["Diagnostic-Code"]
    assert "delivery time expired" in parts[0].get_content()
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_null_mx_bounces_at_once(zone, start_sink, start_instance):
    sink = start_sink()
    zone.null_mx("nomail.test")
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["x@nomail.test"], BODY)

    _, _, [block] = dsn_of(a)
    assert block["Status"] == "5.1.10"
    assert "null MX" in block["Diagnostic-Code"]
    assert sink.connections == 0


def test_nxdomain_is_permanent(zone, start_sink, start_instance):
    a = sender_instance(start_instance, start_sink().port)
    a.submit("alice@a.test", ["x@nowhere.test"], BODY)
    _, _, [block] = dsn_of(a)
    assert block["Status"] == "5.1.2"


def test_servfail_is_temporary(zone, start_sink, start_instance):
    sink = start_sink()
    zone.servfail.add("flaky.test")
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["x@flaky.test"], BODY)

    def deferred_by_dns():
        ids = a.queue_ids()
        record = a.envelope(ids[0])["recipients"][0] if ids else {}
        return record.get("state") == "deferred" and record.get("status") == "4.4.3"

    wait_until(deferred_by_dns, what="a DNS deferral")
    zone.servfail.clear()
    zone.mx("flaky.test", (5, "mx.flaky.test"))
    zone.a("mx.flaky.test", "127.0.0.1")
    wait_until(lambda: sink.recipients() == ["x@flaky.test"], what="delivery after DNS recovers")
    assert a.messages("alice@a.test") == []


def test_next_mx_when_the_first_greets_with_4xx(zone, start_sink, start_instance):
    sink = start_sink(SinkBehaviour(greetings=["421 4.3.2 mx1 busy, try later"]))
    zone.mx("b.test", (10, "mx1.b.test"), (20, "mx2.b.test"))
    zone.a("mx1.b.test", "127.0.0.1")
    zone.a("mx2.b.test", "127.0.0.1")
    a = sender_instance(start_instance, sink.port, **{"queue.retry_schedule": [3600]})

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    # Delivered in the first attempt (retries are an hour away): through the second host.
    wait_until(lambda: sink.transactions, what="delivery through the second MX")
    assert sink.connections == 2
    # RFC 5321 §3.1: QUIT after a refused greeting.
    wait_until(lambda: sink.commands.get(1) == ["QUIT"], what="QUIT on the first connection")


def test_fallback_relay_when_every_mx_fails(b_mx, start_sink, start_instance):
    fallback = start_sink(SinkBehaviour(hostname="fallback.test"))
    a = sender_instance(
        start_instance,
        free_port(),  # nothing listens where the MX hosts are
        **{"relay.fallback": f"127.0.0.1:{fallback.port}", "queue.retry_schedule": [3600]},
    )

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    wait_until(lambda: fallback.transactions, what="delivery through the fallback relay")
    assert fallback.recipients() == ["bob@b.test"]


def test_opportunistic_tls_is_used_when_offered(b_mx, start_sink, start_instance, tmp_path):
    options, _ = tls_server(tmp_path)
    sink = start_sink(SinkBehaviour(tls_options=options))
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    [txn] = wait_until(lambda: sink.transactions, what="delivery")
    assert txn.tls is True
    assert txn.helo == "mx.a.test"  # EHLO again after STARTTLS


def test_required_tls_defers_when_not_offered(b_mx, start_sink, start_instance):
    sink = start_sink()
    a = sender_instance(start_instance, sink.port, **{"transport.require_tls": ["b.test"]})

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    def deferred_for_tls():
        ids = a.queue_ids()
        record = a.envelope(ids[0])["recipients"][0] if ids else {}
        return record.get("state") == "deferred" and "TLS is required" in (
            record.get("last_response") or ""
        )

    wait_until(deferred_for_tls, what="a deferral for missing TLS")
    assert sink.transactions == []


@pytest.mark.parametrize("mechanisms", ["PLAIN LOGIN", "LOGIN"])
def test_smarthost_with_starttls_and_auth(zone, start_sink, start_instance, tmp_path, mechanisms):
    options, cert = tls_server(tmp_path)
    smarthost = start_sink(
        SinkBehaviour(
            hostname="smarthost.test",
            tls_options=options,
            users={"relayuser": "relay secret"},
            auth_mechanisms=mechanisms,
        )
    )
    a = sender_instance(
        start_instance,
        25,
        **{
            "relay.host": f"127.0.0.1:{smarthost.port}",
            "relay.username": "relayuser",
            "relay.password": "relay secret",
            "relay.tls_ca_file": str(cert),
        },
    )

    a.submit("alice@a.test", ["someone@anywhere.test", "other@elsewhere.test"], BODY)

    [txn] = wait_until(lambda: smarthost.transactions, what="delivery to the smarthost")
    assert (txn.tls, txn.auth) == (True, "relayuser")
    assert sorted(txn.recipients) == ["other@elsewhere.test", "someone@anywhere.test"]


def test_smarthost_with_an_untrusted_certificate_is_not_used(
    zone, start_sink, start_instance, tmp_path
):
    options, _ = tls_server(tmp_path / "real")
    _, other_cert = tls_server(tmp_path / "other")
    smarthost = start_sink(SinkBehaviour(tls_options=options, users={"u": "p"}))
    a = sender_instance(
        start_instance,
        25,
        **{
            "relay.host": f"127.0.0.1:{smarthost.port}",
            "relay.username": "u",
            "relay.password": "p",
            "relay.tls_ca_file": str(other_cert),
        },
    )

    a.submit("alice@a.test", ["someone@anywhere.test"], BODY)

    def deferred_for_tls():
        ids = a.queue_ids()
        record = a.envelope(ids[0])["recipients"][0] if ids else {}
        return record.get("state") == "deferred" and "TLS" in (record.get("last_response") or "")

    wait_until(deferred_for_tls, what="a TLS deferral")
    assert smarthost.transactions == []
    assert not any(
        c.startswith("AUTH") or c.startswith("MAIL") for b in smarthost.batches for c in b
    )


def test_eight_bit_message_to_a_peer_without_8bitmime_bounces(b_mx, start_sink, start_instance):
    sink = start_sink(SinkBehaviour(extensions=["PIPELINING", "ENHANCEDSTATUSCODES"]))
    a = sender_instance(start_instance, sink.port)

    a.submit("alice@a.test", ["bob@b.test"], "Subject: café\r\n\r\nnaïve\r\n".encode())

    _, _, [block] = dsn_of(a)
    assert block["Status"] == "5.6.3"
    assert sink.transactions == []


def test_eight_bit_message_is_declared(b_mx, start_sink, start_instance):
    sink = start_sink()
    a = sender_instance(start_instance, sink.port)
    a.submit("alice@a.test", ["bob@b.test"], "Subject: x\r\n\r\nnaïve\r\n".encode())
    [txn] = wait_until(lambda: sink.transactions, what="delivery")
    assert "BODY=8BITMIME" in txn.params
    assert "naïve".encode() in txn.data


def test_message_larger_than_the_peer_size_limit_bounces(b_mx, start_sink, start_instance):
    sink = start_sink(SinkBehaviour(extensions=["PIPELINING", "SIZE 100", "8BITMIME"]))
    a = sender_instance(start_instance, sink.port)
    a.submit("alice@a.test", ["bob@b.test"], BODY + b"x" * 200 + b"\r\n")
    _, _, [block] = dsn_of(a)
    assert block["Status"] == "5.3.4"
    assert sink.transactions == []


def _enqueue(instance, tmp_path, sender, recipients, data):
    """Put a message straight into a running instance's queue and wake its scheduler."""
    source = tmp_path / "raw.eml"
    source.write_bytes(data)
    queue_id = instance.service.queue.enqueue_file(source, sender, recipients)
    instance.reactor_thread.call(instance.service.scheduler.wake, queue_id)
    return queue_id


def test_forwarding_loop_is_bounced_without_sending(b_mx, start_sink, start_instance, tmp_path):
    sink = start_sink()
    a = sender_instance(start_instance, sink.port)
    hops = b"".join(b"Received: from hop%d by somewhere\r\n" % i for i in range(51))

    _enqueue(a, tmp_path, "alice@a.test", ["bob@b.test"], hops + b"Subject: loop\r\n\r\nx\r\n")

    _, _, [block] = dsn_of(a)
    assert block["Status"] == "5.4.6"
    assert sink.connections == 0


def test_a_bounce_is_never_bounced(b_mx, start_sink, start_instance, tmp_path):
    sink = start_sink(SinkBehaviour(rcpt_replies={"bob@b.test": "550 5.1.1 unknown"}))
    a = sender_instance(start_instance, sink.port)

    _enqueue(a, tmp_path, "", ["bob@b.test"], b"Subject: a notice\r\n\r\nx\r\n")

    wait_until(lambda: sink.connections and not a.queue_ids(), what="the failed bounce dropped")
    assert sink.transactions == []
    assert a.messages("alice@a.test") == []


def test_notice_to_a_remote_sender_is_sent_with_the_null_sender(
    zone, start_sink, start_instance, tmp_path
):

    remote_mx = start_sink(SinkBehaviour(rcpt_replies={"bob@b.test": "550 5.1.1 unknown"}))
    zone.mx("b.test", (10, "mx.b.test"))
    zone.mx("remote.test", (10, "mx.b.test"))
    zone.a("mx.b.test", "127.0.0.1")
    a = sender_instance(start_instance, remote_mx.port)

    _enqueue(a, tmp_path, "someone@remote.test", ["bob@b.test"], b"Subject: fwd\r\n\r\nx\r\n")

    [notice] = wait_until(lambda: remote_mx.transactions, what="the notice to the remote sender")
    assert (notice.sender, notice.recipients) == ("", ["someone@remote.test"])
    _, parts, [block] = parse_report(notice.data)
    assert block["Final-Recipient"] == "rfc822; bob@b.test"
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_delay_notice_then_delivery(b_mx, start_sink, start_instance):
    sink = start_sink(SinkBehaviour(rcpt_replies={"bob@b.test": ["451 4.3.0 try again"] * 1000}))
    a = sender_instance(
        start_instance,
        sink.port,
        **{"queue.delay_warning": 0.3, "queue.retry_schedule": [0.1]},
    )

    a.submit("alice@a.test", ["bob@b.test"], BODY)

    report, _, [block] = dsn_of(a)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert block["Action"] == "delayed"
    assert block["Will-Retry-Until"]
    assert a.queue_ids()  # still being retried
    sink.behaviour.rcpt_replies.clear()
    wait_until(lambda: sink.transactions, what="delivery after the notice")
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")
    assert len(a.messages("alice@a.test")) == 1  # one notice, no failure report


def test_connections_per_destination_are_limited(b_mx, start_sink, start_instance):
    sink = start_sink(SinkBehaviour(hold_data=True))
    a = sender_instance(start_instance, sink.port, **{"queue.max_per_destination": 1})

    for n in range(3):
        a.submit("alice@a.test", ["bob@b.test"], BODY + b"message %d\r\n" % n)
    for _ in range(3):
        [held] = wait_until(lambda: list(sink.held), what="a transaction at the sink")
        a.reactor_thread.call(held.release)

    wait_until(lambda: len(sink.transactions) == 3, what="three deliveries")
    assert sink.max_in_data == 1
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")
