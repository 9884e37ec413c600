"""POP3 over real sockets: the flow a mail client uses, what a session does to the Maildir, locks,
dropped connections. (Capabilities, login refusals, errors and pipelining are transcripts:
tests/scenarios/pop3.)"""

from __future__ import annotations

import poplib

import pytest
from conftest import PASSWORD
from pop3util import (
    ALICE,
    auth_plain,
    pop3s,
    raw_login,
    raw_pop3,
    wait_unlocked,
)
from support.maildir import maildir_files, put_message

from mailsuite.store.maildrop import Maildrop, WireSizeCache

HELLO = b"From: bob@example.com\r\nSubject: hello\r\n\r\nfirst line\r\nsecond line\r\n"


def send_by_smtp(suite, subject: str, body: str) -> None:
    with suite.smtp() as client:
        client.sendmail(
            "bob@remote.example", [ALICE], f"Subject: {subject}\r\n\r\n{body}\r\n".encode()
        )


def test_thunderbird_flow_over_stls_after_smtp_delivery(suite):
    """SMTP -> Maildir -> POP3: CAPA, STLS, CAPA, AUTH PLAIN, STAT, UIDL, LIST, RETR, DELE, QUIT."""
    send_by_smtp(suite, "one", "the first message")
    send_by_smtp(suite, "two", "the second message")
    stored = suite.messages(ALICE)
    client = poplib.POP3("127.0.0.1", suite.port("pop3"), timeout=10)
    assert client.getwelcome().startswith(b"+OK")
    # What CAPA lists in each state is pinned by tests/scenarios/pop3/001.
    assert "STLS" in client.capa()
    client.stls(context=suite.tls_context())
    assert client.capa()["SASL"] == ["PLAIN"]
    assert auth_plain(client, ALICE, initial=False).startswith(b"+OK")
    count, octets = client.stat()
    assert (count, octets) == (2, sum(len(m) for m in stored))
    uidls = client.uidl()[1]
    bases = sorted(maildir_files(suite, ALICE)["new"])
    assert [line.split()[1].decode() for line in uidls] == bases
    sizes = [int(line.split()[1]) for line in client.list()[1]]
    for number, (size, original) in enumerate(zip(sizes, stored, strict=True), start=1):
        _resp, lines, got = client.retr(number)
        assert b"\r\n".join(lines) + b"\r\n" == original
        assert got == size == len(original)
    assert client.dele(1).startswith(b"+OK")
    assert client.quit().startswith(b"+OK")
    # Message 1 is gone; message 2 was retrieved, so it moved to cur/ as seen (like Dovecot).
    assert maildir_files(suite, ALICE) == {"new": [], "cur": [f"{bases[1]}:2,S"]}


def test_pop3s_leave_on_server_uidl_stable(suite):
    put_message(suite, ALICE, HELLO)
    put_message(suite, ALICE, HELLO.replace(b"hello", b"again"))
    client = pop3s(suite, ALICE)
    first = client.uidl()[1]
    client.retr(1)
    client.quit()
    client = pop3s(suite, ALICE)
    assert client.uidl()[1] == first  # same ids after message 1 moved new/ -> cur/
    assert client.stat()[0] == 2
    client.quit()


def test_second_session_gets_in_use(suite):
    put_message(suite, ALICE, HELLO)
    holder = pop3s(suite, ALICE)
    other = pop3s(suite)
    other.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        other.pass_(PASSWORD)
    assert holder.dele(1).startswith(b"+OK")
    holder.quit()
    # The holder's UPDATE is complete before its QUIT reply: the lock is free now.
    other.user(ALICE)
    assert other.pass_(PASSWORD).startswith(b"+OK Logged in, maildrop has 0 messages")
    other.quit()


def test_dropped_connection_deletes_nothing(suite):
    put_message(suite, ALICE, HELLO)
    session = raw_pop3(suite)
    assert raw_login(session).startswith(b"+OK")
    session.send(b"DELE 1\r\n")
    assert session.line().startswith(b"+OK")
    session.close()  # no QUIT
    wait_unlocked(suite)
    client = pop3s(suite, ALICE)
    assert client.stat()[0] == 1
    client.quit()
    assert len(maildir_files(suite, ALICE)["new"]) == 1


def test_dele_rset_and_update(suite):
    bases = [put_message(suite, ALICE, HELLO + str(i).encode() + b"\r\n") for i in range(3)]
    client = pop3s(suite, ALICE)
    client.dele(1)
    client.dele(2)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.dele(2)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(1)
    assert client.stat()[0] == 1
    assert [line.split()[0] for line in client.list()[1]] == [b"3"]
    assert client.rset() == b"+OK Maildrop has 3 messages (%d octets)" % (3 * (len(HELLO) + 3))
    client.dele(3)
    assert client.quit() == b"+OK mx.test.example POP3 mailsuite signing off (1 messages deleted)"
    assert maildir_files(suite, ALICE)["new"] == sorted(bases[:2])


def test_top_sends_header_and_n_body_lines_and_marks_nothing(suite):
    put_message(suite, ALICE, HELLO)
    client = pop3s(suite, ALICE)
    assert client.top(1, 0)[1] == [b"From: bob@example.com", b"Subject: hello", b""]
    assert client.top(1, 1)[1][-2:] == [b"", b"first line"]
    assert client.top(1, 99)[1][-1] == b"second line"
    client.quit()
    assert maildir_files(suite, ALICE)["cur"] == []  # TOP does not count as reading


def test_byte_stuffing_round_trip(suite):
    body = b".\r\n..\r\n.leading dot\r\nmiddle . dot\r\n.\r\n"
    # A "." line starting exactly at the 64 KiB read-chunk boundary of the server.
    filler = b"Subject: dots\r\n\r\n" + b"x" * 100 + b"\r\n"
    filler += b"y" * (65536 - len(filler) - 2) + b"\r\n"
    message = filler + body
    assert message[65536:65537] == b"."
    put_message(suite, ALICE, message)
    session = raw_pop3(suite)
    raw_login(session)
    session.send(b"RETR 1\r\n")
    assert session.line() == b"+OK %d octets\r\n" % len(message)
    raw = b"".join(session.multiline())
    assert raw.endswith(b"..\r\n...\r\n..leading dot\r\nmiddle . dot\r\n..\r\n")
    unstuffed = b"".join(
        line[1:] if line.startswith(b".") else line for line in raw.splitlines(True)
    )
    assert unstuffed == message
    session.close()


def test_sizes_from_file_names_are_the_octets_retr_sends(suite):
    """LIST/STAT sizes come from the names (our MDA's S=, Dovecot's W=) without reading files,
    or from reading files whose names say nothing; each is what RETR sends."""
    crlf = b"Subject: ours\r\n\r\nline\r\n"
    bare = b"Subject: theirs\nX: y\n\nline\n"
    wire_size = len(bare) + bare.count(b"\n")
    root = suite.service.store.ensure_maildir(ALICE)
    put_message(suite, ALICE, crlf)  # via SMTP DATA our MDA writes exactly such files
    (root / "new" / f"1700000001.M1P9.elsewhere,S={len(bare)},W={wire_size}").write_bytes(bare)
    (root / "cur" / "1700000002.M2P9V1I1.elsewhere:2,S").write_bytes(bare)  # no size in name
    client = pop3s(suite, ALICE)
    listed = [int(line.split()[1]) for line in client.list()[1]]
    sent = [client.retr(n)[2] for n in (1, 2, 3)]
    assert listed == sent
    assert sorted(sent) == [len(crlf), wire_size, wire_size]
    client.quit()
    cache = WireSizeCache()
    assert [m.size for m in Maildrop.scan(root, cache).messages] == listed
    assert len(cache) == 1  # only the file whose name gives no size was read


def test_bare_lf_message_is_sent_with_crlf_and_sized_so(suite):
    put_message(suite, ALICE, b"Subject: unix\n\nline one\n.dot\nno final newline")
    client = pop3s(suite, ALICE)
    [listed] = client.list()[1]
    size = int(listed.split()[1])
    _resp, lines, octets = client.retr(1)
    assert lines == [b"Subject: unix", b"", b"line one", b".dot", b"no final newline"]
    assert octets == size == sum(len(line) + 2 for line in lines)
    assert client.stat()[1] == size
    client.quit()


def test_new_mail_waits_for_the_next_session(suite):
    put_message(suite, ALICE, HELLO)
    client = pop3s(suite, ALICE)
    send_by_smtp(suite, "late", "arrived during the session")
    assert client.stat()[0] == 1
    assert len(client.uidl()[1]) == 1
    client.quit()
    client = pop3s(suite, ALICE)
    assert client.stat()[0] == 2
    client.quit()


def test_retr_marks_seen_keeping_other_flags(suite):
    in_cur = put_message(suite, ALICE, HELLO, subdir="cur", flags="F")
    in_new = put_message(suite, ALICE, HELLO)
    client = pop3s(suite, ALICE)
    client.retr(1)
    client.retr(2)
    client.quit()
    assert maildir_files(suite, ALICE) == {
        "new": [],
        "cur": sorted([f"{in_cur}:2,FS", f"{in_new}:2,S"]),
    }


def test_messages_moved_or_expunged_by_another_session(suite):
    """An IMAP session may rename (flags) or delete files while POP3 holds its snapshot."""
    moved = put_message(suite, ALICE, HELLO)
    expunged = put_message(suite, ALICE, HELLO)
    root = suite.maildir(ALICE)
    client = pop3s(suite, ALICE)
    (root / "new" / moved).rename(root / "cur" / f"{moved}:2,F")
    (root / "new" / expunged).unlink()
    assert b"\r\n".join(client.retr(1)[1]) + b"\r\n" == HELLO
    with pytest.raises(poplib.error_proto, match="removed by another session"):
        client.retr(2)
    client.dele(1)
    client.dele(2)
    assert client.quit().startswith(b"+OK")
    assert maildir_files(suite, ALICE) == {"new": [], "cur": []}


def test_idle_timeout_closes_without_update(suite):
    """RFC 1939 §3: the autologout timer ends the session without entering UPDATE."""
    from dataclasses import replace

    from twisted.internet.endpoints import TCP4ServerEndpoint

    from mailsuite.pop3.server import POP3Factory

    shared = suite.service.pop3_context
    context = replace(shared, limits=replace(shared.limits, idle_timeout=0.3))
    reactor = suite.reactor.reactor
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = suite.reactor.call(endpoint.listen, POP3Factory(context, False))
    try:
        put_message(suite, ALICE, HELLO)
        client = poplib.POP3("127.0.0.1", port.getHost().port, timeout=10)
        client.stls(context=suite.tls_context())
        client.user(ALICE)
        client.pass_(PASSWORD)
        client.dele(1)
        assert client._getline()[0] == b"-ERR Disconnected for inactivity"
        with pytest.raises(poplib.error_proto, match="EOF"):
            client._getline()
        client.close()
    finally:
        suite.reactor.call(port.stopListening)
    wait_unlocked(suite)
    assert len(maildir_files(suite, ALICE)["new"]) == 1


def test_uidls_survive_a_restart(make_suite, reactor_thread):
    first = make_suite({})
    first.add_user(ALICE)
    put_message(first, ALICE, HELLO)
    client = pop3s(first, ALICE)
    client.retr(1)  # moved to cur/ at QUIT: the id must not change with the file name
    before = client.uidl()[1]
    client.quit()
    reactor_thread.call(first.service.stopService)
    second = make_suite({})  # same data directory, new process state
    client = pop3s(second, ALICE)
    assert client.uidl()[1] == before
    client.quit()


def test_connection_dropped_during_retr(suite):
    big = b"Subject: big\r\n\r\n" + b"z" * 998 + b"\r\n"
    big = big * 4000  # about 4 MB: far more than the socket buffers hold
    put_message(suite, ALICE, big)
    session = raw_pop3(suite)
    raw_login(session)
    session.send(b"RETR 1\r\n")
    assert session.line() == b"+OK %d octets\r\n" % len(big)
    session.close()  # mid-transfer
    wait_unlocked(suite)
    client = pop3s(suite, ALICE)
    assert client.stat() == (1, len(big))
    client.quit()
    assert maildir_files(suite, ALICE)["cur"] == []  # never sent whole: not marked seen
