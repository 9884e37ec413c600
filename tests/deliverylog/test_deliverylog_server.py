"""A real server writes its delivery log; report and trace read it back: mail to a local
mailbox over the MX, a refused message, and a submission to a remote domain that stays deferred
(the test DNS answers nothing)."""

from __future__ import annotations

import json

import pytest
from conftest import start_suite
from deliverylog_helpers import Admin, events, flushed_records
from support.wait import wait_until

MX_BODY = b"From: bob@remote.example\r\nMessage-ID: <mx-1@remote.example>\r\n\r\nhi\r\n"
SUBMITTED = (
    b"From: alice@example.com\r\nMessage-ID: <sub-1@example.com>\r\nSubject: out\r\n\r\n"
    b"the body, never logged\r\n"
)


def our_id(reply: bytes) -> str:
    """The id in "250 2.0.0 Ok: queued as <id>"."""
    return reply.decode().rsplit(" ", 1)[1]


@pytest.fixture
def admin(suite, tmp_path, capsys):
    return Admin(capsys, tmp_path / "mailsuite.toml", suite.config.data_dir)


@pytest.fixture
def traffic(suite):
    """Send the three messages; returns (MX id, submission id, submission queue id, records)."""
    with suite.smtp() as client:
        client.ehlo()
        client.mail("bob@remote.example")
        client.rcpt("alice@example.com")
        code, reply = client.data(MX_BODY)
        assert code == 250
        mx_id = our_id(reply)
        client.mail("loop@remote.example")
        client.rcpt("alice@example.com")
        code, _ = client.data(b"Received: from x\r\n" * 51 + b"Subject: loop\r\n\r\nx\r\n")
        assert code == 554
    with suite.submission("alice@example.com") as client:
        client.mail("alice@example.com")
        client.rcpt("carol@remote.test")
        client.rcpt("bob@example.com")
        code, reply = client.data(SUBMITTED)
        assert code == 250
        submitted_id = our_id(reply)
    records = wait_until(
        lambda: (r := flushed_records(suite.service)) and events(r, "delivery.attempt") and r,
        what="the deferred attempt in the log",
    )
    [accepted] = events(records, "message.accepted", id=submitted_id)
    return mx_id, submitted_id, accepted["queue_id"], records


def test_every_event_is_one_json_line(suite, traffic):
    mx_id, submitted_id, queue_id, records = traffic
    [mx] = events(records, "message.accepted", id=mx_id)
    assert mx["message_id"] == "<mx-1@remote.example>" and mx["local"] == ["alice@example.com"]
    assert mx["role"] == "smtp" and mx["queue_id"] is None and mx["user"] is None
    [rejected] = events(records, "message.rejected")
    assert (rejected["code"], rejected["enhanced"]) == (554, "5.4.6")
    [submitted] = events(records, "message.accepted", id=submitted_id)
    assert submitted["user"] == "alice@example.com" and submitted["role"] == "submission"
    assert submitted["local"] == ["bob@example.com"] and queue_id
    attempt = events(records, "delivery.attempt")[0]
    assert (attempt["queue_id"], attempt["recipient"]) == (queue_id, "carol@remote.test")
    assert attempt["outcome"] == "deferred" and attempt["status"].startswith("4.")
    assert all(r["time"].endswith("Z") for r in records)
    [path] = suite.config.log_dir.glob("delivery-*.jsonl")
    text = path.read_text()
    assert "never logged" not in text and "correct horse" not in text  # no body, no password
    assert all(json.loads(line) for line in text.splitlines())


def test_report_counts_domains_reasons_and_users(traffic, admin):
    report = admin.json("report", "--since", "30m")
    totals = report["totals"]
    assert (totals["accepted"], totals["local"], totals["rejected"]) == (2, 2, 1)
    assert report["rejected_by_code"] == {"554 5.4.6": 1}
    domains = report["domains"]
    assert domains["example.com"]["local"] == 2
    assert domains["remote.test"]["deferred"] == 1 and domains["remote.test"]["delivered"] == 0
    [reason] = report["deferral_reasons"][:1]
    assert reason["status"].startswith("4.") and reason["count"] >= 1
    [user] = report["users"]
    assert (user["user"], user["messages"], user["recipients"]) == ("alice@example.com", 1, 2)
    assert user["bytes"] == len(SUBMITTED)
    assert {s["sender"] for s in report["senders"]} == {"bob@remote.example", "alice@example.com"}

    only = admin.json("report", "--domain", "remote.test")
    assert list(only["domains"]) == ["remote.test"]
    assert only["totals"]["accepted"] == 1 and only["totals"]["local"] == 0

    text = admin.run("report")
    assert "Recipient domains" in text and "Deferral reasons" in text
    [header] = [line for line in text.splitlines() if line.lstrip().startswith("domain ")]
    [row] = [line for line in text.splitlines() if line.lstrip().startswith("remote.test ")]
    assert row.split()[:6] == ["remote.test", "0", "0", "1", "0", "0"]
    assert len(row) == len(header)  # numbers right-aligned under their headings


def test_trace_by_each_kind_of_id(traffic, admin):
    mx_id, submitted_id, queue_id, records = traffic
    [rejected] = events(records, "message.rejected")
    mx_trace = admin.run("trace", mx_id)
    assert mx_trace.splitlines()[0] == (
        f"message {mx_id}, Message-ID <mx-1@remote.example>, from <bob@remote.example>"
    )
    assert "delivered to alice@example.com" in mx_trace

    [by_id] = admin.json("trace", submitted_id.lower())
    for key in (queue_id, "<sub-1@example.com>", "sub-1@example.com", "carol@remote.test"):
        [found] = admin.json("trace", key)
        assert found["id"] == submitted_id and found["queue_ids"] == [queue_id], key
        assert found["events"][: len(by_id["events"])] == by_id["events"]
    assert [e["event"] for e in by_id["events"]][:2] == ["message.accepted", "delivery.attempt"]

    text = admin.run("trace", queue_id)
    assert "delivered to bob@example.com" in text
    assert "deferred" in text and "carol@remote.test" in text

    # An address: the messages from or to it, most recent first.
    by_address = admin.json("trace", "alice@example.com")
    assert [m["id"] for m in by_address] == [submitted_id, rejected["id"], mx_id]
    assert [m["id"] for m in admin.json("trace", "alice@example.com", "--limit", "1")] == [
        submitted_id
    ]


def test_trace_of_nothing_is_an_error(traffic, admin, capsys):
    from mailsuite.admin.cli import main

    code = main([*admin.base, "trace", "nobody@nowhere.test"])
    assert code == 1 and "no message matching" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([*admin.base, "report", "--since", "yesterday"])
    assert usage.value.code == 2 and "not a duration" in capsys.readouterr().err


def test_stopping_the_server_writes_the_last_events(reactor_thread, tmp_path):
    suite = start_suite(reactor_thread, tmp_path)
    try:
        suite.add_user("alice@example.com")
        with suite.smtp() as client:
            for _ in range(20):
                client.sendmail("x@remote.example", ["alice@example.com"], b"Subject: x\r\n\r\nx")
    finally:
        reactor_thread.call(suite.service.stopService)  # at once: the writer's last batch
    [path] = suite.config.log_dir.glob("delivery-*.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["message.accepted"] * 20
    assert not suite.service.delivery_log.running
