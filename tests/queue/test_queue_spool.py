"""QueueSpool: durable entries (.eml + .json commit marker), listing and crash recovery."""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from datetime import UTC, datetime

import pytest

from mailsuite.queue.spool import QueueSpool


@pytest.fixture
def message(tmp_path):
    path = tmp_path / "message.eml"
    path.write_bytes(b"Subject: queued\r\n\r\nhello\r\n")
    return path


@pytest.fixture
def spool(tmp_path):
    return QueueSpool(tmp_path / "queue")


def test_enqueue_round_trip(spool, message, tmp_path):
    queue_id = spool.enqueue_file(
        message, "alice@example.org", ["bob@remote.example", "carol@other.example"], {"auth": "a"}
    )

    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]{16}", queue_id)
    assert spool.list_ids() == [queue_id]
    assert spool.message_path(queue_id).read_bytes() == message.read_bytes()
    assert spool.message_path(queue_id).stat().st_ino == message.stat().st_ino
    envelope = spool.load(queue_id)
    assert envelope["id"] == queue_id
    assert envelope["sender"] == "alice@example.org"
    assert envelope["metadata"] == {"auth": "a"}
    created = datetime.fromisoformat(envelope["created"])
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - created).total_seconds()) < 3600
    assert envelope["recipients"] == [
        {
            "address": address,
            "state": "pending",
            "attempts": 0,
            "next_attempt": envelope["created"],
            "last_response": None,
        }
        for address in ["bob@remote.example", "carol@other.example"]
    ]
    assert sorted(os.listdir(tmp_path / "queue")) == [f"{queue_id}.eml", f"{queue_id}.json"]


def test_null_sender_and_no_metadata(spool, message):
    queue_id = spool.enqueue_file(message, "", ["x@remote.example"])
    envelope = json.loads(spool.envelope_path(queue_id).read_text())
    assert envelope["sender"] == ""
    assert envelope["metadata"] == {}


def test_enqueue_needs_a_recipient(spool, message):
    with pytest.raises(ValueError):
        spool.enqueue_file(message, "a@b", [])
    assert spool.list_ids() == []


def test_copy_fallback_when_link_is_impossible(tmp_path, message):
    def exdev(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    spool = QueueSpool(tmp_path / "queue", link=exdev)
    queue_id = spool.enqueue_file(message, "a@b", ["c@d"])
    path = spool.message_path(queue_id)
    assert path.read_bytes() == message.read_bytes()
    assert path.stat().st_ino != message.stat().st_ino


def test_recover_removes_incomplete_entries_and_temp_files(spool, message, tmp_path):
    kept = spool.enqueue_file(message, "a@b", ["c@d"])
    incomplete = spool.enqueue_file(message, "a@b", ["c@d"])
    spool.envelope_path(incomplete).unlink()  # as if we crashed before the commit marker
    stray = tmp_path / "queue" / f".{kept}.json.abc123.tmp"
    stray.write_bytes(b"{half")

    assert spool.list_ids() == [kept]
    assert spool.recover() == [incomplete]
    assert sorted(os.listdir(tmp_path / "queue")) == [f"{kept}.eml", f"{kept}.json"]
    assert spool.recover() == []


def test_recover_and_list_on_a_missing_directory(tmp_path):
    spool = QueueSpool(tmp_path / "nothing-yet")
    assert spool.list_ids() == []
    assert spool.recover() == []


def test_ids_unique_across_threads_and_listed_in_order(spool, message):
    ids: list[str] = []

    def worker():
        for _ in range(25):
            ids.append(spool.enqueue_file(message, "a@b", ["c@d"]))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 200
    assert spool.list_ids() == sorted(ids)


@pytest.mark.parametrize("bad", ["../etc/passwd", "x", "0123456789ab-0123456789abcdef/..", ""])
def test_bad_ids_are_refused(spool, bad):
    with pytest.raises(ValueError):
        spool.load(bad)
    with pytest.raises(ValueError):
        spool.message_path(bad)
