"""Relayed mail in the delivery log: a sink in a fake zone delivers one recipient, greylists
one, refuses one for good and keeps another waiting until the queue lifetime runs out; report
counts each outcome and its reason, trace shows the path attempt by attempt."""

from __future__ import annotations

import pytest
from deliverylog_helpers import Admin, events, flushed_records
from support.sink import SinkBehaviour
from support.wait import wait_until

pytest_plugins = ["queue_fixtures"]  # start_instance (zone, start_sink: support.fixtures)

BODY = b"From: alice@a.test\r\nMessage-ID: <relay-1@a.test>\r\nSubject: hello\r\n\r\nhi\r\n"
REFUSED = "550 5.1.1 <dave@b.test>: Recipient address rejected: user unknown"
RECIPIENTS = ["bob@b.test", "erin@b.test", "dave@b.test", "carol@b.test"]


@pytest.fixture
def relayed(zone, start_sink, start_instance, capsys):
    zone.mx("b.test", (10, "mx.b.test"))
    zone.a("mx.b.test", "127.0.0.1")
    sink = start_sink(
        SinkBehaviour(
            rcpt_replies={
                "erin@b.test": ["451 4.7.1 greylisted, come back later"],
                "dave@b.test": REFUSED,
                "carol@b.test": "452 4.2.2 mailbox full",
            }
        )
    )
    a = start_instance("a", "mx.a.test", mx_port=sink.port, overrides={"queue.lifetime": 2})
    a.add_user("alice@a.test")
    a.submit("alice@a.test", RECIPIENTS, BODY)
    wait_until(lambda: not a.queue_ids(), what="the queue to empty", timeout=20)
    records = wait_until(
        lambda: (r := flushed_records(a.service)) and events(r, "queue.removed") and r,
        what="the removal in the log",
    )
    return a, records, Admin(capsys, a.config_file, a.config.data_dir)


def test_each_outcome_is_logged_once_per_attempt(relayed):
    _, records, _ = relayed
    [accepted] = events(records, "message.accepted")
    queue_id = accepted["queue_id"]
    outcomes = {
        address: [r["outcome"] for r in events(records, "delivery.attempt", recipient=address)]
        for address in RECIPIENTS
    }
    assert outcomes["bob@b.test"] == ["delivered"]
    assert outcomes["erin@b.test"] == ["deferred", "delivered"]
    assert outcomes["dave@b.test"] == ["failed"]
    assert outcomes["carol@b.test"][-1] == "expired"
    assert set(outcomes["carol@b.test"][:-1]) == {"deferred"}
    [expiry] = events(records, "delivery.attempt", outcome="expired")
    assert expiry["status"] == "4.4.7" and expiry["age"] >= 2
    [bob] = events(records, "delivery.attempt", recipient="bob@b.test")
    assert bob["relay"] == "mx.b.test[127.0.0.1]" and bob["queue_id"] == queue_id
    notices = events(records, "notice.sent", queue_id=queue_id)
    assert notices and {n["action"] for n in notices} == {"failed"}
    assert all(n["mailboxes"] == ["alice@a.test"] for n in notices)  # the sender is local
    [removed] = events(records, "queue.removed")
    assert (removed["queue_id"], removed["delivered"], removed["failed"]) == (queue_id, 2, 2)


def test_report_counts_outcomes_and_reasons(relayed):
    _, records, admin = relayed
    report = admin.json("report", "--since", "1h", "--domain", "b.test")
    assert report["domains"] == {
        "b.test": {
            "local": 0,
            "delivered": 2,
            "deferred": 2,  # erin and carol
            "bounced": 1,
            "expired": 1,
            "deferrals": len(events(records, "delivery.attempt", outcome="deferred")),
        }
    }
    unknown = "<address>: Recipient address rejected: user unknown"
    assert report["bounce_reasons"] == [{"count": 1, "status": "5.1.1", "reply": unknown}]
    reasons = {(r["status"], r["reply"]) for r in report["deferral_reasons"]}
    assert reasons == {("4.7.1", "greylisted, come back later"), ("4.2.2", "mailbox full")}
    assert report["totals"]["notices_failed"] >= 1
    assert report["users"][0]["recipients"] == 4

    text = admin.run("report", "--domain", "b.test")
    assert "5.1.1   <address>: Recipient address rejected: user unknown" in text
    [row] = [line.split() for line in text.splitlines() if line.startswith("  b.test ")]
    assert row[:6] == ["b.test", "0", "2", "2", "1", "1"]


def test_trace_follows_each_recipient(relayed):
    _, records, admin = relayed
    [accepted] = events(records, "message.accepted")
    text = admin.run("trace", accepted["queue_id"])
    lines = text.splitlines()
    assert lines[0] == f"message {accepted['id']}, Message-ID <relay-1@a.test>, from <alice@a.test>"
    assert "accepted" in lines[1] and "via submission" in lines[1]
    delivered = [line for line in lines if " delivered " in line and "bob@b.test" in line]
    assert delivered and "via mx.b.test[127.0.0.1]" in delivered[0]
    assert any(" failed " in line and REFUSED in line for line in lines)
    assert any(" expired " in line and "carol@b.test" in line and "4.4.7" in line for line in lines)
    assert any(" notice " in line and "failed notice to <alice@a.test>" in line for line in lines)
    assert " removed " in lines[-1] and "2 delivered, 2 failed" in lines[-1]
    # The events come in time order.
    [message] = admin.json("trace", "relay-1@a.test")
    times = [event["time"] for event in message["events"]]
    assert times == sorted(times) and len(message["events"]) == len(
        [r for r in records if r["event"] != "message.rejected"]
    )
