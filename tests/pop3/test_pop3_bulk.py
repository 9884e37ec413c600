"""A 1,000-message maildrop: listing, retrieving and deleting everything in one session."""

from __future__ import annotations

import time

from pop3util import ALICE, pop3s
from support.maildir import maildir_files, put_message

COUNT = 1000


def test_thousand_message_maildrop(suite):
    expected = {}
    for i in range(COUNT):
        data = b"Subject: bulk %d\r\n\r\n%s\r\n.dot line %d\r\n" % (i, b"x" * (i % 300), i)
        expected[put_message(suite, ALICE, data)] = data
    started = time.perf_counter()
    client = pop3s(suite, ALICE)
    count, octets = client.stat()
    assert (count, octets) == (COUNT, sum(len(d) for d in expected.values()))
    uidls = [line.split()[1].decode() for line in client.uidl()[1]]
    assert sorted(uidls) == sorted(expected)  # unique, and the Maildir base names
    sizes = [int(line.split()[1]) for line in client.list()[1]]
    listed = time.perf_counter()
    for number, (uidl, size) in enumerate(zip(uidls, sizes, strict=True), start=1):
        _resp, lines, octets = client.retr(number)
        assert b"\r\n".join(lines) + b"\r\n" == expected[uidl]
        assert octets == size
        client.dele(number)
    retrieved = time.perf_counter()
    assert client.quit().endswith(b"(1000 messages deleted)")
    done = time.perf_counter()
    assert maildir_files(suite, ALICE) == {"new": [], "cur": []}
    # Informational only (run with -s to see): never asserted.
    print(
        f"\npop3s, {COUNT} messages: login+STAT+UIDL+LIST {listed - started:.3f}s, "
        f"RETR+DELE each {retrieved - listed:.3f}s, QUIT (unlink+fsync) {done - retrieved:.3f}s"
    )
