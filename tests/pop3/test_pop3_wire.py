"""Byte transforms of POP3 responses, fed at every possible chunk split."""

from __future__ import annotations

import io

import pytest

from mailsuite.pop3.sender import MessageSender
from mailsuite.pop3.wire import DotStuffer, TopFilter
from mailsuite.store.maildrop import CRLFNormalizer

MESSAGE = b"Subject: x\r\n\r\n.\r\n..two\r\nplain\r\n.\r\nend.\r\n"
STUFFED = b"Subject: x\r\n\r\n..\r\n...two\r\nplain\r\n..\r\nend.\r\n"


def run(transform, chunks: list[bytes], finish: bool = False) -> bytes:
    out = b"".join(transform.feed(chunk) for chunk in chunks)
    return out + (transform.finish() if finish else b"")


def splits(data: bytes):
    """Every way to cut ``data`` into two chunks, plus one byte at a time."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def test_dot_stuffing_at_every_chunk_boundary():
    for chunks in splits(MESSAGE):
        assert run(DotStuffer(), chunks) == STUFFED, chunks


def test_dot_stuffing_leaves_dots_inside_lines_alone():
    assert DotStuffer().feed(b"a.b\r\n a\r\n") == b"a.b\r\n a\r\n"


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\r\nb", b"a\r\nb\r\n"),  # a final line break is added
        (b"a\rb\r\n", b"a\rb\r\n"),  # a bare CR inside a line stays
        (b"a\r\r\n", b"a\r\r\n"),
        (b"a\r", b"a\r\r\n"),
        (b"\n\n", b"\r\n\r\n"),
        (b"", b""),
    ],
)
def test_crlf_normalizer_at_every_chunk_boundary(stored, wire):
    for chunks in splits(stored):
        assert run(CRLFNormalizer(), chunks, finish=True) == wire, chunks


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (0, b"A: 1\r\nB: 2\r\n\r\n"),
        (1, b"A: 1\r\nB: 2\r\n\r\nl1\r\n"),
        (3, b"A: 1\r\nB: 2\r\n\r\nl1\r\n\r\nl3\r\n"),
        (99, b"A: 1\r\nB: 2\r\n\r\nl1\r\n\r\nl3\r\nl4\r\n"),
    ],
)
def test_top_filter_at_every_chunk_boundary(lines, expected):
    message = b"A: 1\r\nB: 2\r\n\r\nl1\r\n\r\nl3\r\nl4\r\n"
    for chunks in splits(message):
        assert run(TopFilter(lines), chunks) == expected, chunks


def test_top_filter_headers_only_message_passes_whole():
    assert TopFilter(0).feed(b"A: 1\r\nB: 2\r\n") == b"A: 1\r\nB: 2\r\n"


class CollectingConsumer:
    """An IConsumer that pulls until its producer unregisters (what a transport does)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.producer = None

    def registerProducer(self, producer, streaming: bool) -> None:
        assert streaming is False
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.data += data

    def drain(self) -> None:
        while self.producer is not None:
            self.producer.resumeProducing()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 4096])
def test_message_sender_streams_normalized_stuffed_and_terminated(chunk_size):
    stored = b"Subject: s\n\n.a\n..\nz"
    consumer = CollectingConsumer()
    sent = []
    sender = MessageSender(io.BytesIO(stored), chunk_size=chunk_size)
    sender.send(consumer).addCallback(sent.append)
    consumer.drain()
    assert bytes(consumer.data) == b"Subject: s\r\n\r\n..a\r\n...\r\nz\r\n.\r\n"
    assert sent == [len(consumer.data) - 3]


def test_message_sender_top_stops_reading_early():
    stored = io.BytesIO(b"A: 1\r\n\r\nl1\r\nl2\r\n" + b"x" * 100_000)
    consumer = CollectingConsumer()
    MessageSender(stored, top_lines=1, chunk_size=8).send(consumer)
    consumer.drain()
    assert bytes(consumer.data) == b"A: 1\r\n\r\nl1\r\n.\r\n"
    assert stored.closed
