"""The webhook parts on their own: the retry schedule, the signature, and events to outcomes."""

from __future__ import annotations

import json

from mailsuite.webhooks.backoff import Backoff
from mailsuite.webhooks.outbox import Outbox, parse_name
from mailsuite.webhooks.payload import MessageFacts, from_accepted, from_attempt
from mailsuite.webhooks.signature import sign, verify


def test_backoff_doubles_to_its_maximum_and_gives_up():
    backoff = Backoff(10, 3600, 86400)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 9, 10, 5000)] == [
        10,
        20,
        40,
        80,
        2560,
        3600,
        3600,
    ]
    assert not backoff.expired(1000.0, 1000.0 + 86399) and backoff.expired(1000.0, 87400.0)


def test_the_signature_covers_timestamp_and_body():
    body = b'{"event":"delivered"}'
    signature = sign("whsec_s", 1700000000, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("whsec_s", "1700000000", body, signature, now=1700000100)
    assert not verify("whsec_s", "1700000000", body + b" ", signature, now=1700000100)
    assert not verify("whsec_s", "1700000001", body, signature, now=1700000100)
    assert not verify("whsec_s", "1700000000", body, signature, now=1700009999)  # too old
    assert not verify("whsec_x", "1700000000", body, signature, now=1700000100)


def test_events_become_outcomes():
    accepted = {
        "id": "0123456789ABCDEF",
        "message_id": "<m@x>",
        "sender": "a@example.com",
        "local": ["b@example.com"],
        "queue_id": "q",
        "user": "a@example.com",
    }
    [local] = from_accepted(accepted, 0.0)
    assert (local.event, local.recipient, local.user) == (
        "delivered",
        "b@example.com",
        "a@example.com",
    )
    attempt = {
        "queue_id": "q",
        "message_id": "0123456789ABCDEF",
        "recipient": "c@r.example",
        "outcome": "failed",
        "status": "5.1.1",
        "reply": "550 no",
        "sender": "a@x",
    }
    [bounce] = from_attempt(attempt, MessageFacts("0123456789ABCDEF", "<m@x>", "u"), 0.0)
    body = json.loads(bounce.body())
    assert body["event"] == "bounced" and body["message_id"] == "<m@x>" and bounce.user == "u"
    [unknown] = from_attempt(attempt, None, 0.0)  # queued before a restart
    assert (unknown.id, unknown.message_id, unknown.user) == ("0123456789ABCDEF", "", None)
    assert from_attempt({**attempt, "notification": True}, None, 0.0) == []
    assert from_accepted({**accepted, "local": []}, 0.0) == []


def test_the_outbox_keeps_calls_by_name(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    item = outbox.add(3, b"{}", 1700000000.123)
    outbox.sync()
    (tmp_path / "outbox" / ".x.json.0123.tmp").write_bytes(b"half")
    assert [(i.name, i.webhook, i.created) for i in outbox.scan()] == [
        (item.name, 3, 1700000000.123)
    ]
    assert not (tmp_path / "outbox" / ".x.json.0123.tmp").exists()
    assert outbox.body(item.name) == b"{}" and parse_name("../x.json") is None
    outbox.remove(item.name)
    assert outbox.scan() == [] and outbox.body(item.name) is None
