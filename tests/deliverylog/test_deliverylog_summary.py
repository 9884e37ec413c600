"""The report's arithmetic and the reader's window, on hand-written log lines."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from mailsuite.deliverylog.reader import LogReader, parse_duration
from mailsuite.deliverylog.record import file_name
from mailsuite.deliverylog.report import normalise_reply, summarize
from mailsuite.deliverylog.trace import trace

Q1, Q2 = "0193aaaaaaaa-0000000000000001", "0193aaaaaaaa-0000000000000002"


def attempt(queue_id, recipient, outcome, status, reply, attempts=1):
    return {
        "time": "2026-12-01T10:00:01.000Z",
        "event": "delivery.attempt",
        "queue_id": queue_id,
        "sender": "alice@a.test",
        "recipient": recipient,
        "domain": recipient.rpartition("@")[2],
        "outcome": outcome,
        "status": status,
        "reply": reply,
        "attempts": attempts,
    }


RECORDS = [
    {
        "time": "2026-12-01T10:00:00.000Z",
        "event": "message.accepted",
        "id": "00000000000000A1",
        "message_id": "<one@a.test>",
        "sender": "alice@a.test",
        "recipients": ["bob@b.test", "carol@c.test", "alice@a.test"],
        "local": ["alice@a.test"],
        "queue_id": Q1,
        "size": 1000,
        "user": "alice@a.test",
    },
    {
        "time": "2026-12-01T10:00:00.500Z",
        "event": "message.accepted",
        "id": "00000000000000A2",
        "message_id": "",
        "sender": "",
        "recipients": ["alice@a.test"],
        "local": ["alice@a.test"],
        "queue_id": None,
        "size": 10,
        "user": None,
    },
    {
        "time": "2026-12-01T10:00:00.700Z",
        "event": "message.rejected",
        "id": "00000000000000A3",
        "sender": "x@x.test",
        "recipients": ["alice@a.test"],
        "code": 554,
        "enhanced": "5.4.6",
        "reason": "too many hops",
    },
    attempt(Q1, "bob@b.test", "delivered", "2.0.0", "250 2.0.0 Ok: queued as 7F3A9B2C1D"),
    attempt(Q1, "carol@c.test", "deferred", "4.7.1", "451 4.7.1 <carol@c.test> greylisted"),
    attempt(Q1, "carol@c.test", "deferred", "4.7.1", "451 4.7.1 <carol@c.test> greylisted", 2),
    attempt(Q1, "carol@c.test", "expired", "4.4.7", "connect to 192.0.2.1:25 refused", 3),
    attempt(Q2, "dave@b.test", "failed", "5.1.1", "550 5.1.1 <dave@b.test>: user unknown"),
    attempt(Q2, "erin@b.test", "failed", "5.1.1", "550 5.1.1 <erin@b.test>: user unknown"),
    {
        "time": "2026-12-01T10:00:02.000Z",
        "event": "notice.sent",
        "queue_id": Q1,
        "action": "failed",
        "to": "alice@a.test",
        "mailboxes": ["alice@a.test"],
        "queued": None,
    },
]


def test_counts_per_domain_reasons_and_senders():
    report = summarize(RECORDS)
    domains = report["domains"]
    assert list(domains) == ["b.test", "a.test", "c.test"]  # busiest first, then by name
    assert domains["b.test"] == {
        "local": 0,
        "delivered": 1,
        "deferred": 0,
        "bounced": 2,
        "expired": 0,
        "deferrals": 0,
    }
    assert (domains["c.test"]["deferred"], domains["c.test"]["deferrals"]) == (1, 2)
    assert domains["c.test"]["expired"] == 1 and domains["a.test"]["local"] == 2
    assert report["bounce_reasons"] == [
        {"count": 2, "status": "5.1.1", "reply": "<address>: user unknown"}
    ]
    assert report["deferral_reasons"] == [
        {"count": 2, "status": "4.7.1", "reply": "<address> greylisted"}
    ]
    totals = report["totals"]
    assert (totals["accepted"], totals["recipients"], totals["local"]) == (2, 4, 2)
    assert (totals["delivered"], totals["bounced"], totals["expired"]) == (1, 2, 1)
    assert totals["rejected"] == 1 and report["rejected_by_code"] == {"554 5.4.6": 1}
    assert (totals["notices_failed"], totals["notices_delayed"]) == (1, 0)
    assert report["users"] == [
        {"user": "alice@a.test", "messages": 1, "recipients": 3, "bytes": 1000}
    ]
    assert [s["sender"] for s in report["senders"]] == ["alice@a.test", "<>"]


def test_one_domain_only():
    report = summarize(RECORDS, domain="B.TEST")
    assert list(report["domains"]) == ["b.test"]
    assert report["deferral_reasons"] == [] and report["totals"]["rejected"] == 0
    assert report["users"][0]["recipients"] == 1  # bob only
    assert report["totals"]["notices_failed"] == 0  # Q1 failed in c.test only


def test_replies_are_grouped_by_what_they_say():
    assert normalise_reply("550-5.1.1 <x@y.test>: no\n 550 5.1.1 such user") == (
        "<address>: no 550 5.1.1 such user"
    )
    assert normalise_reply("connect to [2001:db8::1]:25: refused") == "connect to [ip]:25: refused"
    assert normalise_reply("421 4.7.0 try later d2-20020a05600c0a4200b00 - gsmtp") == (
        "try later # - gsmtp"
    )
    assert normalise_reply(None) == "(no reply)"


def test_durations():
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("24h") == timedelta(days=1)
    assert parse_duration("7d") == timedelta(days=7)
    with pytest.raises(ValueError):
        parse_duration("yesterday")


def test_a_window_opens_only_the_files_of_its_days(tmp_path):
    for day, hour in ((date(2026, 11, 28), 9), (date(2026, 11, 30), 23), (date(2026, 12, 1), 1)):
        record = {"time": f"{day.isoformat()}T{hour:02d}:00:00.000Z", "event": "x", "n": str(day)}
        (tmp_path / file_name(day)).write_text(json.dumps(record) + "\n")
    reader = LogReader(tmp_path)
    since = datetime(2026, 11, 30, 22, tzinfo=UTC)
    assert [r["n"] for r in reader.records(since)] == ["2026-11-30", "2026-12-01"]
    assert [p.name for p in reader.files] == [
        "delivery-2026-11-30.jsonl",
        "delivery-2026-12-01.jsonl",
    ]
    assert [r["n"] for r in reader.records(datetime(2026, 11, 30, 23, 30, tzinfo=UTC))] == [
        "2026-12-01"
    ]


def test_trace_ties_queue_records_to_their_message():
    [message] = trace(RECORDS, "one@a.test")  # a Message-ID without <>, not an address
    assert message.id == "00000000000000A1" and message.queue_ids == [Q1]
    assert [r["event"] for r in message.events] == [
        "message.accepted",
        *["delivery.attempt"] * 4,
        "notice.sent",
    ]
    assert trace(RECORDS, "00000000000000a1")[0].events == message.events
    [by_queue] = trace(RECORDS, Q2)
    assert by_queue.id is None and [r["recipient"] for r in by_queue.events] == [
        "dave@b.test",
        "erin@b.test",
    ]
    by_address = trace(RECORDS, "ALICE@a.test")  # most recent first: Q2's attempts came last
    assert [m.id for m in by_address] == [None, *(f"00000000000000A{n}" for n in (3, 2, 1))]
    assert [m.id for m in trace(RECORDS, "alice@a.test", limit=2)] == [None, "00000000000000A3"]
