"""Webhooks for real: a receiver on 127.0.0.1 gets signed delivery outcomes (local deliveries,
remote deliveries, deferrals, bounces), per user or for everyone, and gets them late but whole
when it was down for a while, even across a restart of the server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from api_client import ALICE, BOB, admin, new_key, run_admin, send_json
from conftest import cli_fails as fails
from support.sink import SinkBehaviour
from support.wait import wait_until
from webhook_sink import WebhookSink

from mailsuite.webhooks.signature import verify

FAST = {"webhooks.first_retry": 0.2, "webhooks.max_retry": 0.5}


@pytest.fixture
def sink():
    receiver = WebhookSink()
    yield receiver
    receiver.stop()


def start(make_suite, overrides=None):
    suite = make_suite({**FAST, **(overrides or {})})
    for user in (ALICE, BOB):
        if suite.db.get_user(user) is None:
            suite.add_user(user)
    return suite


def authentic(call, secret: str) -> bool:
    """The receiver's check, as the README shows it."""
    timestamp = call.headers["x-mailsuite-timestamp"]
    signed = timestamp.encode() + b"." + call.body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, call.headers["x-mailsuite-signature"])


def test_local_deliveries_are_told_signed(make_suite, sink):
    suite = start(make_suite)
    out = admin(suite, "webhook", "add", sink.url).splitlines()
    secret = out[0]
    assert secret.startswith("whsec_") and "for all users" in out[1]
    sent = send_json(suite, new_key(suite), {"from": ALICE, "to": BOB, "text": "hi"}).json

    [call] = wait_until(lambda: sink.events("delivered"), what="the webhook call")
    assert authentic(call, secret)
    assert verify(
        secret,
        call.headers["x-mailsuite-timestamp"],
        call.body,
        call.headers["x-mailsuite-signature"],
    )
    assert not authentic(call, "whsec_wrong")
    assert call.headers["content-type"] == "application/json"
    event = call.json
    assert event.pop("event_id") and event.pop("time").endswith("+00:00")
    assert event == {
        "event": "delivered",
        "id": sent["id"],
        "queue_id": None,
        "message_id": sent["message_id"],
        "recipient": BOB,
        "outcome": "delivered",
        "status": "2.0.0",
        "reply": "delivered to the local mailbox",
    }

    # Mail submitted over SMTP is told the same way.
    with suite.submission(BOB) as client:
        client.sendmail(BOB, [ALICE], b"Subject: smtp\r\n\r\nhello\r\n")
    wait_until(lambda: len(sink.events("delivered")) == 2, what="the second call")
    assert sink.events("delivered")[1].json["recipient"] == ALICE
    assert list((suite.config.webhooks_dir / "outbox").iterdir()) == []


def test_a_users_webhook_hears_only_that_users_mail_and_the_events_it_chose(make_suite, sink):
    suite = start(make_suite)
    other = WebhookSink()
    try:
        admin(suite, "webhook", "add", sink.url, "--user", BOB, "--events", "delivered")
        admin(suite, "webhook", "add", other.url, "--events", "deferred")
        listed = json.loads(admin(suite, "webhook", "list", "--json"))
        assert [(h["user"], h["events"]) for h in listed] == [
            (BOB, ["delivered"]),
            (None, ["deferred"]),
        ]
        assert "secret" not in listed[0] and "whsec_" not in admin(suite, "webhook", "list")

        fields = {"from": ALICE, "to": [BOB, "carol@remote.example"], "text": "hi"}
        alices = send_json(suite, new_key(suite), fields).json
        [deferred] = wait_until(lambda: other.events("deferred"), timeout=20, what="deferred")
        event = deferred.json
        assert event["id"] == alices["id"] and event["queue_id"] == alices["queue_id"]
        assert event["recipient"] == "carol@remote.example" and event["outcome"] == "deferred"
        assert event["status"].startswith("4.") and event["message_id"] == alices["message_id"]

        bobs = send_json(suite, new_key(suite, BOB), {"from": BOB, "to": ALICE, "text": "x"})
        [call] = wait_until(lambda: sink.events(), what="bob's webhook call")
        assert call.json["id"] == bobs.json["id"] and call.json["recipient"] == ALICE
        assert other.events("delivered") == []  # it asked for deferrals only
    finally:
        other.stop()
    assert [c.json["id"] for c in sink.events()] == [bobs.json["id"]]  # never alice's mail


def test_remote_deliveries_and_bounces(make_suite, start_sink, sink):
    smtp = start_sink(SinkBehaviour(rcpt_replies={"gone@remote.example": "550 5.1.1 no such user"}))
    suite = start(make_suite, {"transport.map": {"remote.example": f"127.0.0.1:{smtp.port}"}})
    admin(suite, "webhook", "add", sink.url, "--events", "delivered,bounced")
    fields = {"from": ALICE, "to": ["ok@remote.example", "gone@remote.example"], "text": "hi"}
    sent = send_json(suite, new_key(suite), fields).json

    calls = wait_until(lambda: len(sink.events()) >= 2 and sink.events(), what="two outcomes")
    by_recipient = {c.json["recipient"]: c.json for c in calls}
    ok, gone = by_recipient["ok@remote.example"], by_recipient["gone@remote.example"]
    assert (ok["event"], ok["outcome"], ok["queue_id"]) == (
        "delivered",
        "delivered",
        sent["queue_id"],
    )
    assert (gone["event"], gone["outcome"], gone["status"]) == ("bounced", "failed", "5.1.1")
    assert "no such user" in gone["reply"]
    # The bounce notice alice gets is the server's own mail: no call about it.
    wait_until(lambda: suite.messages(ALICE), what="the bounce notice")
    assert {c.json["recipient"] for c in sink.events()} == set(by_recipient)


def test_calls_wait_while_the_receiver_is_down(make_suite, sink):
    suite = start(make_suite)
    admin(suite, "webhook", "add", sink.url)
    outbox = suite.config.webhooks_dir / "outbox"
    sink.stop()
    sent = send_json(suite, new_key(suite), {"from": ALICE, "to": BOB, "text": "hi"}).json
    dispatcher = suite.service.webhooks.dispatcher
    wait_until(lambda: dispatcher.failed >= 3, what="a few failed attempts")
    assert len(list(outbox.iterdir())) == 1

    sink.start()  # the same port again
    [call] = wait_until(lambda: sink.events(), what="the call once the receiver is back")
    assert call.json["id"] == sent["id"]
    wait_until(lambda: not list(outbox.iterdir()), what="the outbox emptied")


def test_calls_survive_a_restart(make_suite, sink):
    suite = start(make_suite)
    secret = admin(suite, "webhook", "add", sink.url).splitlines()[0]
    outbox = suite.config.webhooks_dir / "outbox"
    sink.stop()
    sent = send_json(suite, new_key(suite), {"from": ALICE, "to": BOB, "text": "hi"}).json
    wait_until(lambda: list(outbox.iterdir()), what="the call in the outbox")
    suite.reactor.call(suite.service.stopService)

    sink.start()
    again = start(make_suite)  # the same data directory
    [call] = wait_until(lambda: sink.events(), what="the call made by the new server")
    assert call.json["id"] == sent["id"] and authentic(call, secret)
    wait_until(lambda: not list(outbox.iterdir()), what="the outbox emptied")
    assert again.service.webhooks.dispatcher.delivered == 1


def test_webhook_commands(make_suite):
    suite = start(make_suite)
    fails(run_admin(suite, "webhook", "add", "ftp://x.example/"), "http:// or https://")
    fails(run_admin(suite, "webhook", "add", "https://x.example/\n"), "not a usable URL")
    fails(
        run_admin(suite, "webhook", "add", "https://x.example/", "--events", "opened"), "events are"
    )
    fails(
        run_admin(suite, "webhook", "add", "https://x.example/", "--user", "zed@example.com"),
        "unknown user zed@example.com",
    )
    admin(suite, "webhook", "add", "https://hooks.example/in", "--user", ALICE)
    listed = admin(suite, "webhook", "list")
    assert listed == f"1 https://hooks.example/in {ALICE} delivered,deferred,bounced\n"
    fails(run_admin(suite, "webhook", "del", "7"), "unknown webhook 7")
    fails(run_admin(suite, "webhook", "del", "x"), "a webhook id is a number")
    assert admin(suite, "webhook", "del", "1") == "deleted webhook 1\n"
    assert admin(suite, "webhook", "list") == ""
    admin(suite, "webhook", "add", "https://hooks.example/a", "--user", ALICE)
    suite.db.delete_user(ALICE)  # a user's webhooks go with the user
    assert admin(suite, "webhook", "list", "--json") == "[]\n"
