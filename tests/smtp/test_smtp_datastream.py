"""The DATA decoder against a line-by-line reference, under every way of chunking the input."""

import random

import pytest

from mailsuite.smtp.datastream import DataDecoder, LineEndingNormalizer


def reference_decode(stream: bytes) -> tuple[bytes, bytes]:
    """RFC 5321 §4.5.2 read one CRLF line at a time: the slow, obviously right version."""
    out = []
    pos = 0
    while True:
        end = stream.index(b"\r\n", pos)
        line = stream[pos:end]
        pos = end + 2
        if line == b".":
            return b"".join(out), stream[pos:]
        out.append((line[1:] if line.startswith(b".") else line) + b"\r\n")


def decode_in_chunks(stream: bytes, sizes: list[int]) -> tuple[bytes, bytes | None]:
    decoder = DataDecoder()
    content = []
    pos = 0
    for size in sizes:
        piece, rest = decoder.feed(stream[pos : pos + size])
        content.append(piece)
        pos += size
        if rest is not None:
            return b"".join(content), rest + stream[pos:]
    return b"".join(content), None


SAMPLES = [
    b".\r\n",
    b"Subject: x\r\n\r\nbody\r\n.\r\n",
    b"..leading dot\r\n...two\r\n.\r\nMAIL FROM:<a@b>\r\n",
    b"a\r\n..\r\n.\r\n",
    b"..\r\n.\r\n",
    b"x\n.\nMAIL FROM:<evil@x>\r\n.\r\n",  # <LF>.<LF> smuggling: content, not the end
    b"x\n.\r\nRCPT TO:<a@b>\r\n.\r\n",  # <LF>.<CR><LF>
    b"x\r.\r\nDATA\r\n.\r\n",  # <CR>.<CR><LF>
    b"x\r\n.\nstill data\r\n.\r\n",  # <CR><LF>.<LF>
    b"\r\n\r\n.\r\n",
    b"a\r\n.b\r\n.\r\n.\r\nafter",
]


@pytest.mark.parametrize("stream", SAMPLES)
def test_every_chunking_matches_reference(stream):
    expected = reference_decode(stream)
    for split in range(len(stream) + 1):
        assert decode_in_chunks(stream, [split, len(stream)]) == expected
    assert decode_in_chunks(stream, [1] * len(stream)) == expected


def test_random_messages_and_chunkings():
    rng = random.Random(1234)
    alphabet = [b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n.", b"..", b"x" * 50]
    for _ in range(400):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        stream = body + b"\r\n.\r\nQUIT\r\n"
        expected = reference_decode(stream)
        sizes = [rng.randint(1, 7) for _ in range(len(stream))]
        assert decode_in_chunks(stream, sizes) == expected


def test_unfinished_data_reports_no_end():
    content, rest = decode_in_chunks(b"hello\r\nworld\r\n", [5, 100])
    assert rest is None
    assert content == b"hello\r\nworld"  # the final CRLF is held until the next byte decides


@pytest.mark.parametrize(
    "chunks, expected",
    [
        ([b"a\nb\rc\r\nd"], b"a\r\nb\r\nc\r\nd"),
        ([b"a\r", b"\nb"], b"a\r\nb"),
        ([b"a\r", b"b"], b"a\r\nb"),
        ([b"a\r"], b"a\r\n"),
        ([b"\n\n"], b"\r\n\r\n"),
    ],
)
def test_line_endings_normalized_across_chunks(chunks, expected):
    normalizer = LineEndingNormalizer()
    out = b"".join(normalizer.feed(chunk) for chunk in chunks) + normalizer.flush()
    assert out == expected
