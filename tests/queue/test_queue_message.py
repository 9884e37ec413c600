"""DATA encoding (dot-stuffing, line endings, any chunking) and the pre-send message scan."""

from __future__ import annotations

import pytest

from mailsuite.queue.message import DotStuffer, inspect_message


def encode(data: bytes, size: int) -> bytes:
    stuffer = DotStuffer()
    out = b"".join(stuffer.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + stuffer.finish()


CASES = [
    (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
    (b".start\r\n", b"..start\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n..two\r\n", b"a\r\n...two\r\n.\r\n"),
    (b"no final newline", b"no final newline\r\n.\r\n"),
    (b"bare\nlf\rcr\r\n", b"bare\r\nlf\r\ncr\r\n.\r\n"),
    (b"x\r\n.\ny\r", b"x\r\n..\r\ny\r\n.\r\n"),
    (b"", b".\r\n"),
    (b"not.a.line.start\r\n", b"not.a.line.start\r\n.\r\n"),
]


@pytest.mark.parametrize("data, expected", CASES)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_dot_stuffing_whatever_the_chunks(data, expected, size):
    assert encode(data, size) == expected


def test_no_line_is_a_lone_dot_before_the_end():
    data = b"".join(b".\r\n" if i % 3 == 0 else b".x\r\n" for i in range(100)) + b"\r\n.\r\n"
    for size in (1, 5, 64):
        lines = encode(data, size).split(b"\r\n")
        assert lines.count(b".") == 1 and lines[-2] == b"."


def test_inspect_skips_the_offset_and_finds_hops_and_8bit(tmp_path):
    path = tmp_path / "m.eml"
    prefix = b"Return-Path: <a@b>\r\n"
    head = b"Received: from x\r\nreceived: from y\r\nSubject: s\r\n"
    path.write_bytes(prefix + head + b"\r\nbody \xc3\xa9\r\nReceived: not a header\r\n")
    info = inspect_message(path, len(prefix))
    assert info.headers == head
    assert info.hops == 2
    assert info.eight_bit is True
    assert info.size == path.stat().st_size - len(prefix)


def test_inspect_seven_bit_without_body(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(b"Subject: only headers\r\n")
    info = inspect_message(path, 0)
    assert (info.eight_bit, info.hops, info.headers) == (False, 0, b"Subject: only headers\r\n")
