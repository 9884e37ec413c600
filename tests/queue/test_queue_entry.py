"""QueueEntry: the per-recipient state machine, retry schedule, expiry and notices."""

from __future__ import annotations

import json

import pytest

from mailsuite.queue.entry import (
    DEFERRED,
    DELIVERED,
    FAILED,
    Outcome,
    QueueEntry,
    RetryPolicy,
    epoch,
    iso,
)
from mailsuite.queue.spool import QueueSpool

T0 = 1_700_000_000.0
POLICY = RetryPolicy(schedule=(60, 300, 900), lifetime=3600, delay_warning=1800)


@pytest.fixture
def entry(tmp_path):
    message = tmp_path / "m.eml"
    message.write_bytes(b"Subject: x\r\n\r\ny\r\n")
    spool = QueueSpool(tmp_path / "queue")
    queue_id = spool.enqueue_file(message, "alice@a.test", ["b@b.test", "c@c.test"])
    envelope = spool.load(queue_id)
    envelope["created"] = iso(T0)
    for record in envelope["recipients"]:
        record["next_attempt"] = iso(T0)
    return QueueEntry(envelope)


def temp(text="451 4.7.1 later"):
    return Outcome.temporary("4.7.1", text, smtp_reply=True, remote_mta="mx", stage="RCPT TO")


def test_retry_policy_uses_the_last_value_for_ever():
    assert [POLICY.delay(n) for n in (1, 2, 3, 4, 10)] == [60, 300, 900, 900, 900]


def test_new_entry_is_due_at_once(entry):
    assert entry.due(T0) == ["b@b.test", "c@c.test"]
    assert entry.next_due() == T0
    assert entry.counts() == {"pending": 2}


def test_temporary_failures_follow_the_schedule(entry):
    entry.apply("b@b.test", temp(), T0, POLICY)
    record = entry.record("b@b.test")
    assert (record["state"], record["attempts"]) == (DEFERRED, 1)
    assert epoch(record["next_attempt"]) == T0 + 60
    assert record["last_response"] == "451 4.7.1 later"
    assert entry.due(T0 + 30) == ["c@c.test"]
    entry.apply("b@b.test", temp(), T0 + 60, POLICY)
    assert epoch(record["next_attempt"]) == T0 + 60 + 300


def test_the_last_retry_happens_at_expiry_then_it_fails(entry):
    record = entry.record("b@b.test")
    for now in (T0 + 3000, T0 + 3060):
        entry.apply("b@b.test", temp(), now, POLICY)
    assert epoch(record["next_attempt"]) == T0 + 3360
    entry.apply("b@b.test", temp(), T0 + 3360, POLICY)
    assert epoch(record["next_attempt"]) == T0 + 3600  # not T0 + 3360 + 900
    entry.apply("b@b.test", temp(), T0 + 3600, POLICY)
    assert (record["state"], record["status"], record["expired"]) == (FAILED, "4.4.7", True)
    assert record["last_response"] == "451 4.7.1 later"


def test_failures_are_reported_once(entry):
    entry.apply("b@b.test", Outcome.permanent("5.1.1", "550 5.1.1 no"), T0, POLICY)
    entry.apply("c@c.test", Outcome(DELIVERED, "2.0.0", "250 ok"), T0, POLICY)
    assert [r["address"] for r in entry.unnotified_failures()] == ["b@b.test"]
    assert not entry.finished()
    entry.mark_notified(["b@b.test"])
    assert entry.unnotified_failures() == []
    assert entry.finished()


def test_null_sender_failures_are_never_reported(entry):
    entry.envelope["sender"] = ""
    entry.apply("b@b.test", Outcome.permanent("5.1.1", "550 no"), T0, POLICY)
    entry.apply("c@c.test", Outcome.permanent("5.1.1", "550 no"), T0, POLICY)
    assert entry.unnotified_failures() == []
    assert entry.finished()


def test_delay_notice_once_after_the_warning_time(entry):
    entry.apply("b@b.test", temp(), T0, POLICY)
    assert entry.delay_notice_due(T0 + 1799, POLICY) == []
    [record] = entry.delay_notice_due(T0 + 1800, POLICY)
    assert record["address"] == "b@b.test"
    entry.mark_delay_notified()
    assert entry.delay_notice_due(T0 + 2000, POLICY) == []
    no_warning = RetryPolicy(POLICY.schedule, POLICY.lifetime, 0)
    entry.envelope.pop("delay_notified")
    assert entry.delay_notice_due(T0 + 3000, no_warning) == []


def test_retry_now_and_fail_all(entry):
    entry.apply("b@b.test", temp(), T0, POLICY)
    entry.apply("c@c.test", Outcome(DELIVERED, "2.0.0", "250 ok"), T0, POLICY)
    assert entry.retry_now(T0 + 5) == 1
    assert entry.due(T0 + 5) == ["b@b.test"]
    assert entry.fail_all(T0 + 6, "returned by the administrator") == 1
    assert entry.record("b@b.test")["state"] == FAILED
    assert entry.record("c@c.test")["state"] == DELIVERED


def test_state_round_trips_through_the_spool(entry, tmp_path):
    entry.apply("b@b.test", temp(), T0, POLICY)
    spool = QueueSpool(tmp_path / "queue")
    assert spool.save(entry.id, entry.to_bytes())
    loaded = QueueEntry(spool.load(entry.id))
    assert loaded.record("b@b.test") == entry.record("b@b.test")
    assert json.loads(spool.envelope_path(entry.id).read_text())["id"] == entry.id
    assert spool.delete(entry.id)
    assert not spool.save(entry.id, entry.to_bytes())  # never resurrect a removed entry
    assert spool.list_ids() == []
    assert not spool.delete(entry.id)
