"""The delivery log's writer on its own: daily files, retention, what survives a crash or a stop,
the bounded buffer, and what never reaches the disk."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from support.wait import wait_until

from mailsuite.deliverylog.reader import LogReader
from mailsuite.deliverylog.record import file_name
from mailsuite.deliverylog.writer import DeliveryLogWriter

DAY = 86400.0
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def accepted(n: int, **extra) -> dict:
    return {
        "role": "smtp",
        "id": f"{n:016X}",
        "message_id": f"<m{n}@test>",
        "sender": "a@a.test",
        "recipients": ["b@b.test"],
        "local": [],
        "queue_id": None,
        "size": 10,
        "client": "127.0.0.1",
        "user": None,
        "auth": "",
        **extra,
    }


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_file_per_utc_day_and_old_days_removed(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    stale = log_dir / file_name(date(2026, 10, 1))  # 61 days before START
    stale.write_text("{}\n")
    unrelated = log_dir / "notes.txt"
    unrelated.write_text("kept")
    clock = Clock()
    writer = DeliveryLogWriter(log_dir, keep_days=3, interval=0.05, clock=clock)
    writer.start()
    wait_until(lambda: not stale.exists(), what="the start-up clean-up")
    for day in range(3):
        clock.now = START + day * DAY
        writer("message.accepted", accepted(day))
        assert writer.flush(10)
    names = sorted(p.name for p in log_dir.glob("delivery-*"))
    assert names == [
        "delivery-2026-12-01.jsonl",
        "delivery-2026-12-02.jsonl",
        "delivery-2026-12-03.jsonl",
    ]
    assert [r["id"] for r in lines(log_dir / names[1])] == [f"{1:016X}"]

    clock.now = START + 5 * DAY  # 2026-12-06: keep 12-03 .. 12-06
    writer("message.accepted", accepted(5))
    writer.close()
    names = sorted(p.name for p in log_dir.glob("delivery-*"))
    assert names == ["delivery-2026-12-03.jsonl", "delivery-2026-12-06.jsonl"]
    assert unrelated.read_text() == "kept"


def test_lines_are_on_disk_within_the_interval_without_a_stop(tmp_path):
    """A crash (the process gone without close) loses nothing older than the interval."""
    writer = DeliveryLogWriter(tmp_path, keep_days=30, interval=0.05)
    writer.start()
    for n in range(300):
        writer("message.accepted", accepted(n))
    [path] = wait_until(lambda: list(tmp_path.glob("delivery-*.jsonl")), what="the file")
    wait_until(lambda: len(path.read_bytes().splitlines()) == 300, what="every line")
    records = lines(path)  # every line is one complete JSON object
    assert [r["id"] for r in records] == [f"{n:016X}" for n in range(300)]
    assert all(r["event"] == "message.accepted" and r["time"].endswith("Z") for r in records)
    writer.close()


def test_a_torn_last_line_is_skipped_and_the_next_start_writes_clean_lines(tmp_path):
    clock = Clock()
    path = tmp_path / file_name(date(2026, 12, 1))
    path.write_text('{"time":"2026-12-01T11:00:00.000Z","event":"message.accepted","id":"X"}\n{"ti')
    writer = DeliveryLogWriter(tmp_path, keep_days=30, interval=60, clock=clock)
    writer.start()
    writer("message.accepted", accepted(7))
    writer.close()
    reader = LogReader(tmp_path)
    assert [r["id"] for r in reader.records()] == ["X", f"{7:016X}"]
    assert reader.bad_lines == 1


def test_close_writes_everything_and_the_writer_restarts(tmp_path):
    writer = DeliveryLogWriter(tmp_path, keep_days=30, interval=3600)  # only close writes
    writer.start()
    for n in range(10):
        writer("message.accepted", accepted(n))
    writer.close()
    writer("message.accepted", accepted(10))  # between a stop and a start: kept in memory
    writer.start()
    writer.close()
    [path] = tmp_path.glob("delivery-*.jsonl")
    assert len(lines(path)) == 11


def test_a_full_buffer_drops_and_counts_instead_of_growing(tmp_path):
    writer = DeliveryLogWriter(tmp_path, keep_days=30, max_buffered=5)  # not started: a stuck disk
    for n in range(12):
        writer("message.accepted", accepted(n))
    assert writer.dropped == 7
    writer.start()
    writer.close()
    [path] = tmp_path.glob("delivery-*.jsonl")
    assert [r["id"] for r in lines(path)] == [f"{n:016X}" for n in range(5)]


def test_only_message_events_and_their_listed_fields_are_written(tmp_path):
    writer = DeliveryLogWriter(tmp_path, keep_days=30, interval=60)
    writer.start()
    writer("auth", {"protocol": "SMTP", "user": "a@a.test", "ok": True})
    writer("command", {"verb": "DATA"})
    writer("message.accepted", accepted(1, password="hunter2", body="secret text"))
    attempt = {
        "queue_id": "q",
        "recipient": "b@b.test",
        "domain": "b.test",
        "outcome": "failed",
        "status": "4.4.7",
        "reply": "connection refused",
        "age": 3601.123456,
    }
    writer("delivery.attempt", attempt)
    writer("delivery.attempt", {**attempt, "status": "5.1.1", "reply": "550 5.1.1 unknown"})
    writer.close()
    [path] = tmp_path.glob("delivery-*.jsonl")
    text = path.read_text()
    assert "hunter2" not in text and "secret text" not in text
    records = lines(path)
    assert [r["event"] for r in records] == ["message.accepted", *["delivery.attempt"] * 2]
    assert [r["outcome"] for r in records[1:]] == ["expired", "failed"]
    assert records[1]["age"] == 3601.123
    assert list(records[0])[:2] == ["time", "event"]
