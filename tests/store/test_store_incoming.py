"""IncomingMessage: memory first, spool file past the limit, durable file on finalize()."""

from __future__ import annotations

import stat
import threading

import pytest

from mailsuite.store.incoming import IncomingMessage, clean_spool


def spool_files(spool_dir):
    return sorted(spool_dir.iterdir()) if spool_dir.exists() else []


def test_small_message_stays_in_memory_until_finalize(tmp_path):
    spool = tmp_path / "spool"
    msg = IncomingMessage(spool, memory_limit=100)
    msg.write(b"Subject: hi\r\n\r\n")
    msg.write(b"body\r\n")
    assert msg.size == 21
    assert spool_files(spool) == []

    path = msg.finalize()

    assert path.read_bytes() == b"Subject: hi\r\n\r\nbody\r\n"
    assert path.parent == spool
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700


def test_exactly_the_limit_stays_in_memory(tmp_path):
    msg = IncomingMessage(tmp_path, memory_limit=10)
    msg.write(b"x" * 10)
    assert spool_files(tmp_path) == []
    msg.write(b"y")
    assert len(spool_files(tmp_path)) == 1
    msg.discard()
    assert spool_files(tmp_path) == []


def test_large_message_spills_to_file_and_keeps_every_byte(tmp_path):
    chunks = [bytes([i]) * 1000 for i in range(50)]
    msg = IncomingMessage(tmp_path, memory_limit=4096)
    for chunk in chunks[:5]:
        msg.write(chunk)
    spilled = spool_files(tmp_path)
    assert len(spilled) == 1
    for chunk in chunks[5:]:
        msg.write(chunk)

    path = msg.finalize()

    assert [path] == spilled
    assert path.read_bytes() == b"".join(chunks)
    assert msg.size == 50_000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_finalize_is_idempotent_and_write_after_it_fails(tmp_path):
    msg = IncomingMessage(tmp_path)
    msg.write(b"data")
    first = msg.finalize()
    assert msg.finalize() == first
    with pytest.raises(RuntimeError):
        msg.write(b"more")
    assert first.read_bytes() == b"data"


def test_empty_message_finalizes_to_an_empty_file(tmp_path):
    path = IncomingMessage(tmp_path).finalize()
    assert path.read_bytes() == b""


def test_remove_unlinks_and_is_safe_twice(tmp_path):
    msg = IncomingMessage(tmp_path)
    msg.write(b"data")
    path = msg.finalize()
    msg.remove()
    msg.remove()
    assert not path.exists()
    with pytest.raises(RuntimeError):
        msg.finalize()


def test_discard_drops_a_spilled_file_and_later_data(tmp_path):
    msg = IncomingMessage(tmp_path, memory_limit=10)
    msg.write(b"x" * 100)
    assert len(spool_files(tmp_path)) == 1
    msg.discard()
    msg.discard()
    msg.write(b"more after the abort")
    assert spool_files(tmp_path) == []
    with pytest.raises(RuntimeError):
        msg.finalize()


def test_discard_after_finalize_leaves_the_file_to_the_delivery_job(tmp_path):
    msg = IncomingMessage(tmp_path)
    msg.write(b"data")
    path = msg.finalize()
    msg.discard()  # e.g. the connection dropped while the worker delivers
    assert path.read_bytes() == b"data"
    msg.remove()
    assert not path.exists()


def test_finalize_in_another_thread_after_writes_on_this_one(tmp_path):
    msg = IncomingMessage(tmp_path, memory_limit=1000)
    payload = b"line of text\r\n" * 500
    msg.write(payload)
    result = []
    worker = threading.Thread(target=lambda: result.append(msg.finalize()))
    worker.start()
    worker.join()
    assert result[0].read_bytes() == payload


def test_unique_spool_names(tmp_path):
    paths = set()
    for _ in range(50):
        msg = IncomingMessage(tmp_path)
        msg.write(b"x")
        paths.add(msg.finalize())
    assert len(paths) == 50


def test_clean_spool_removes_leftovers(tmp_path):
    for _ in range(3):
        msg = IncomingMessage(tmp_path)
        msg.write(b"x")
        msg.finalize()  # then "crash": never removed
    other = tmp_path / "README"
    other.write_text("not a spool file")

    assert clean_spool(tmp_path) == 3
    assert spool_files(tmp_path) == [other]
    assert clean_spool(tmp_path / "missing") == 0
