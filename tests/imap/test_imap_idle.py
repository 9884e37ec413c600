"""IDLE at scale: one poller per folder however many sessions idle on it (RFC 2177)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from imap_helpers import Raw, deliver

SESSIONS = 50


def _polled(suite) -> dict:
    hub = suite.service.imap_context.hub
    return {path.name: count for path, count in suite.reactor.call(hub.polled).items()}


def _idle(suite, tag: bytes) -> Raw:
    client = Raw(suite)
    assert client.command(tag + b"s SELECT INBOX")[-1].startswith(tag + b"s OK")
    client.send(tag + b" IDLE\r\n")
    assert client.line().startswith(b"+")
    return client


def _done(client: Raw, tag: bytes) -> list[bytes]:
    client.send(b"DONE\r\n")
    return client.until(tag)


def test_fifty_idle_sessions_share_one_poller_and_all_hear_one_delivery(make_suite):
    suite = make_suite({"imap.max_connections_per_user": SESSIONS + 5})
    suite.add_user("alice@example.com")
    inbox = suite.maildir("alice@example.com")
    tags = [b"t%d" % n for n in range(SESSIONS)]
    with ThreadPoolExecutor(10) as pool:
        clients = list(pool.map(lambda tag: _idle(suite, tag), tags))
    try:
        assert _polled(suite) == {inbox.name: SESSIONS}
        deliver(suite, subject="to everyone")
        for client in clients:
            assert client.line() == b"* 1 EXISTS\r\n"
        for client, tag in zip(clients, tags, strict=True):
            assert _done(client, tag)[-1].startswith(tag + b" OK")
        assert _polled(suite) == {}
    finally:
        for client in clients:
            client.close()


def test_files_dropped_in_by_another_program_wake_idle_sessions(suite):
    first, second = _idle(suite, b"a"), _idle(suite, b"b")
    new = suite.maildir("alice@example.com") / "new"
    (new / "tmpname").write_bytes(b"Subject: outside\r\n\r\nbody\r\n")
    (new / "tmpname").rename(new / "1700000000.outside.host")
    assert first.line() == b"* 1 EXISTS\r\n"
    assert second.line() == b"* 1 EXISTS\r\n"
    assert _done(first, b"a")[-1].startswith(b"a OK")
    assert _polled(suite) == {suite.maildir("alice@example.com").name: 1}
    assert _done(second, b"b")[-1].startswith(b"b OK")
    assert _polled(suite) == {}
    first.close()
    second.close()
