"""mailsuite-admin queue: list/show (--json), flush/retry/delete/bounce, with and without a
running server (a running server gets the changes as requests, and applies them at once)."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import cli_fails, cli_ok
from queue_helpers import parse_report
from support import PASSWORD
from support.sink import SinkBehaviour
from support.wait import wait_until

from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.passwords import hash_password
from mailsuite.admin.cli import main
from mailsuite.queue.entry import Outcome, QueueEntry, RetryPolicy
from mailsuite.queue.spool import QueueSpool

pytest_plugins = ["queue_fixtures"]  # start_instance (zone, start_sink: support.fixtures)


BODY = b"From: alice@a.test\r\nSubject: queued mail\r\n\r\nhello\r\n"


@pytest.fixture
def run(capsys):
    def run(data_dir, *args, config=None):
        argv = ["--data-dir", str(data_dir), *(["--config", str(config)] if config else []), *args]
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


ok, fails = cli_ok, cli_fails


@pytest.fixture
def offline(tmp_path):
    """A data directory with a user and one queued message (b deferred, c pending)."""
    data = tmp_path / "data"
    database = SQLiteUserDatabase(data / "mailsuite.db")
    database.add_domain("a.test")
    database.add_user("alice@a.test", hash_password(PASSWORD))
    database.close()
    message = tmp_path / "message.eml"
    message.write_bytes(BODY)
    spool = QueueSpool(data / "queue")
    queue_id = spool.enqueue_file(message, "alice@a.test", ["b@b.test", "c@c.test"])
    entry = QueueEntry(spool.load(queue_id))
    reply = Outcome.temporary("4.7.1", "451 4.7.1 greylisted", smtp_reply=True, remote_mta="mx.b")
    entry.apply("b@b.test", reply, time.time(), RetryPolicy(schedule=(3600,)))
    spool.save(queue_id, entry.to_bytes())
    return data, spool, queue_id


def test_list_shows_entries_recipients_and_counts(offline, run):
    data, _, queue_id = offline
    out = ok(run(data, "queue", "list"))
    lines = out.splitlines()
    assert re.fullmatch(rf"{queue_id}  age \d+s  from <alice@a.test>", lines[0])
    assert lines[1].startswith("  deferred   <b@b.test>  attempts 1, next ")
    assert lines[1].endswith("(in 59m), last from mx.b: 451 4.7.1 greylisted")
    assert lines[2].startswith("  pending    <c@c.test>  attempts 0, next ")
    assert lines[3] == "1 entry; recipients: 1 pending, 1 deferred, 0 delivered, 0 failed"
    [item] = json.loads(ok(run(data, "queue", "list", "--json")))
    assert item["id"] == queue_id and item["sender"] == "alice@a.test"
    assert [(r["address"], r["state"]) for r in item["recipients"]] == [
        ("b@b.test", "deferred"),
        ("c@c.test", "pending"),
    ]
    assert item["recipients"][0]["last_response"] == "451 4.7.1 greylisted"
    assert item["age_seconds"] >= 0


def test_show(offline, run):
    data, _, queue_id = offline
    out = ok(run(data, "queue", "show", queue_id))
    assert "  Subject: queued mail" in out and "<b@b.test>" in out
    shown = json.loads(ok(run(data, "queue", "show", queue_id, "--json")))
    assert shown["headers"] == {"From": "alice@a.test", "Subject": "queued mail"}
    assert shown["size"] == len(BODY)
    fails(run(data, "queue", "show", "../../etc/passwd"), "not a queue id")
    fails(run(data, "queue", "show", "0" * 12 + "-" + "0" * 16), "no queue entry")


def test_empty_queue(tmp_path, run):
    assert ok(run(tmp_path, "queue", "list")).endswith(
        "0 entries; recipients: 0 pending, 0 deferred, 0 delivered, 0 failed\n"
    )
    assert ok(run(tmp_path, "queue", "flush")) == "the queue is empty\n"
    assert json.loads(ok(run(tmp_path, "queue", "list", "--json"))) == []


def test_offline_flush_retry_and_delete(offline, run):
    data, spool, queue_id = offline
    assert "2 recipient(s) in 1 entry" in ok(run(data, "queue", "flush"))
    [record] = [r for r in spool.load(queue_id)["recipients"] if r["address"] == "b@b.test"]
    assert QueueEntry(spool.load(queue_id)).due(time.time()) == ["b@b.test", "c@c.test"]
    assert "2 recipient(s) due now" in ok(run(data, "queue", "retry", queue_id))
    assert ok(run(data, "queue", "delete", queue_id)) == f"{queue_id}: deleted\n"
    assert spool.list_ids() == []
    fails(run(data, "queue", "delete", queue_id), "no queue entry")


def test_offline_bounce_notifies_the_local_sender(offline, run):
    data, spool, queue_id = offline
    assert ok(run(data, "queue", "bounce", queue_id)) == f"{queue_id}: 2 recipient(s) bounced\n"
    assert spool.list_ids() == []
    [notice] = list((data / "mail" / "a.test" / "alice" / "new").iterdir())
    _, parts, blocks = parse_report(notice.read_bytes())
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; b@b.test", "rfc822; c@c.test"]
    assert "by the administrator" in blocks[0]["Diagnostic-Code"]
    assert b"Subject: queued mail" in parts[2].get_payload(decode=True)


@pytest.fixture
def deferred_in_server(zone, start_sink, start_instance):
    """A running server whose one message is deferred for an hour by a greylisting peer."""
    sink = start_sink(SinkBehaviour(rcpt_replies={"bob@b.test": ["450 4.7.1 greylisted"]}))
    zone.mx("b.test", (10, "mx.b.test"))
    zone.a("mx.b.test", "127.0.0.1")
    a = start_instance("a", "mx.a.test", sink.port, {"queue.retry_schedule": [3600]})
    a.add_user("alice@a.test")
    a.submit("alice@a.test", ["bob@b.test"], BODY)

    def deferred():
        ids = a.queue_ids()
        return ids and a.envelope(ids[0])["recipients"][0]["state"] == "deferred" and ids[0]

    queue_id = wait_until(deferred, what="the first attempt to be deferred")
    return a, sink, queue_id


def test_flush_makes_a_running_server_retry_now(deferred_in_server, run):
    a, sink, queue_id = deferred_in_server
    listing = ok(run(a.config.data_dir, "queue", "list", config=a.config_file))
    assert "deferred   <bob@b.test>" in listing and "450 4.7.1 greylisted" in listing
    out = ok(run(a.config.data_dir, "queue", "flush", config=a.config_file))
    assert out == "1 recipient(s) in 1 entry scheduled for delivery now\n"
    wait_until(lambda: sink.transactions, what="delivery after the flush")
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_retry_one_entry_in_a_running_server(deferred_in_server, run):
    a, sink, queue_id = deferred_in_server
    out = ok(run(a.config.data_dir, "queue", "retry", queue_id, config=a.config_file))
    assert out == f"{queue_id}: 1 recipient(s) scheduled for delivery now\n"
    wait_until(lambda: sink.transactions, what="delivery after the retry")


def test_bounce_in_a_running_server(deferred_in_server, run):
    a, sink, queue_id = deferred_in_server
    out = ok(run(a.config.data_dir, "queue", "bounce", queue_id, config=a.config_file))
    assert out == f"{queue_id}: 1 recipient(s) bounced\n"
    [notice] = wait_until(lambda: a.messages("alice@a.test"), what="the notice")
    _, _, [block] = parse_report(notice)
    assert block["Final-Recipient"] == "rfc822; bob@b.test"
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")
    assert sink.transactions == []


def test_delete_in_a_running_server(deferred_in_server, run):
    a, sink, queue_id = deferred_in_server
    out = ok(run(a.config.data_dir, "queue", "delete", queue_id, config=a.config_file))
    assert out == f"{queue_id}: deleted\n"
    assert a.queue_ids() == []
    fails(run(a.config.data_dir, "queue", "retry", queue_id, config=a.config_file), "no queue")
    assert a.messages("alice@a.test") == []
