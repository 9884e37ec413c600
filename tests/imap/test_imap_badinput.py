"""Bad input and limits: BAD and carry on, bounded literals and lines, TOOBIG, folder names."""

from __future__ import annotations

from imap_helpers import Raw, imap


def test_syntax_errors_and_unknown_commands_get_bad_and_session_continues(suite):
    client = Raw(suite)
    assert client.command(b"a1 FROBNICATE")[-1].startswith(b"a1 BAD")
    assert client.command(b"a2 SELECT")[-1].startswith(b"a2 BAD")
    assert client.command(b"a3 FETCH 1 (FLAGS)")[-1].startswith(b"a3 BAD")  # not selected
    assert client.command(b"a4 SELECT INBOX")[-1].startswith(b"a4 OK")
    assert client.command(b"a5 FETCH 1:* (NOSUCHITEM)")[-1].startswith(b"a5 BAD")
    assert client.command(b"a6 SEARCH ((((((((((((((((((((ALL))))))))))))))))))))")[-1].startswith(
        b"a6 BAD"
    )
    assert client.command(b"a7 NOOP")[-1].startswith(b"a7 OK")
    client.close()


def test_absurd_literal_is_refused_without_reading_it(suite):
    client = Raw(suite)
    client.send(b"b1 APPEND INBOX {4294967295}\r\n")
    reply = client.line()
    assert reply.startswith(b"b1 NO [TOOBIG]")
    client.send(b"b2 LOGIN {4294967295}\r\n")
    assert client.line().startswith(b"b2 BAD")
    assert client.command(b"b3 NOOP")[-1].startswith(b"b3 OK")
    # A non-synchronising one over the limit ends the session (the bytes would follow).
    client.send(b"b4 APPEND INBOX {4294967295+}\r\n")
    assert client.line().startswith(b"b4 NO [TOOBIG]")
    client.close()
    # The server keeps serving others.
    other = imap(suite)
    assert other.noop()[0] == "OK"
    other.logout()


def test_append_over_limit_is_toobig_and_stores_nothing(suite):
    client = Raw(suite)
    size = 1_000_001  # limits.message_size in the test settings is 1,000,000
    client.send(b"c1 APPEND INBOX {%d}\r\n" % size)
    assert client.line().startswith(b"c1 NO [TOOBIG]")
    assert client.command(b"c2 STATUS INBOX (MESSAGES)")[0].endswith(b" (MESSAGES 0)\r\n")
    client.close()


def test_literal_plus_and_long_lines(suite):
    client = Raw(suite)
    message = b"Subject: plus\r\n\r\nbody\r\n"
    client.send(b"d1 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(message) + message + b"\r\n")
    assert b"APPENDUID" in client.until(b"d1")[-1]
    # Overlong: answered with its tag (a client waiting for d2 would hang on an untagged BAD),
    # and the rest of the line is never read as commands.
    client.send(b"d2 NOOP " + b"x" * 70000 + b"\r\n")
    assert client.line() == b"d2 BAD Command line too long\r\n"
    assert client.command(b"d3 NOOP")[-1].startswith(b"d3 OK")
    # The same when the line has not even ended yet (the limit is reached mid-line).
    client.send(b"d4 NOOP " + b"y" * 70000)
    assert client.line() == b"d4 BAD Command line too long\r\n"
    client.send(b"d5 NOOP\r\nd6 NOOP\r\n")  # "d5 NOOP" ends the overlong line: skipped
    assert client.until(b"d6")[-1].startswith(b"d6 OK")
    client.close()


def test_unsafe_folder_names_are_refused(suite):
    client = imap(suite)
    for name in ("../../etc", "a/../b", "tmp", "new", "Sent/cur", "/abs", "a//b", ".."):
        typ, data = client.create(f'"{name}"')
        assert typ == "NO", name
    assert not any(p.name.startswith("..") for p in suite.maildir("alice@example.com").iterdir())
    client.logout()


def test_unicode_folder_names_round_trip(suite):
    client = imap(suite)
    wire_name = "Entw&APw-rfe/&ZeVnLIqe-"  # "Entwürfe/日本語" in modified UTF-7
    assert client.create(wire_name)[0] == "OK"
    typ, data = client.list('""', "*")
    assert any(wire_name.encode() in line for line in data)
    assert any(b"\\HasChildren" in line and b'"Entw&APw-rfe"' in line for line in data)
    assert client.select(wire_name)[0] == "OK"
    client.logout()
    folders = [p.name for p in suite.maildir("alice@example.com").iterdir()]
    assert ".Entw&APw-rfe.&ZeVnLIqe-" in folders


def test_binary_fetch_items_are_bad_since_binary_is_not_advertised(suite):
    client = Raw(suite)
    capability = client.command(b"e0 CAPABILITY")[0]
    assert b"BINARY" not in capability
    assert client.command(b"e1 APPEND INBOX {20+}\r\nSubject: b\r\n\r\nbody\r\n")[-1].startswith(
        b"e1 OK"
    )
    assert client.command(b"e2 SELECT INBOX")[-1].startswith(b"e2 OK")
    for n, item in enumerate((b"BINARY[1]", b"BINARY.PEEK[]", b"BINARY.SIZE[1]", b"BINARY[]<0.5>")):
        reply = client.command(b"e3%d FETCH 1 (%s)" % (n, item))
        assert len(reply) == 1 and reply[0].startswith(b"e3%d BAD" % n), reply
    reply = client.command(b"e4 FETCH 1 (BODY.PEEK[1])")
    assert reply[0] == b"* 1 FETCH (BODY[1] {6}\r\n" and reply[-1].startswith(b"e4 OK")
    client.close()


def test_store_answers_only_messages_whose_flags_changed(suite):
    client = Raw(suite)
    for flags in (b"(\\Seen)", b"()", b"(\\Seen)"):
        message = b"Subject: s\r\n\r\nbody\r\n"
        client.send(b"a APPEND INBOX %s {%d+}\r\n" % (flags, len(message)) + message + b"\r\n")
        client.until(b"a")
    client.command(b"s1 SELECT INBOX")
    lines = client.command(b"s2 STORE 1:3 +FLAGS (\\Seen)")
    assert [line for line in lines if b"FETCH" in line] == [
        b"* 2 FETCH (FLAGS (\\Recent \\Seen))\r\n"
    ]
    assert lines[-1].startswith(b"s2 OK")
    assert [ln for ln in client.command(b"s3 STORE 1:3 +FLAGS (\\Seen)") if b"FETCH" in ln] == []
    lines = client.command(b"s4 STORE 1:3 (UNCHANGEDSINCE 999999) +FLAGS (\\Flagged)")
    fetches = [line for line in lines if b"FETCH" in line]
    assert len(fetches) == 3 and all(b"MODSEQ (" in line for line in fetches)
    lines = client.command(b"s5 UID STORE 1:3 (UNCHANGEDSINCE 999999) -FLAGS (\\Seen)")
    fetches = [line for line in lines if b"FETCH" in line]
    assert len(fetches) == 3 and all(b"UID " in ln and b"MODSEQ" in ln for ln in fetches)
    lines = client.command(b"s6 STORE 1:3 -FLAGS.SILENT (\\Seen)")  # CONDSTORE on, no change
    assert [line for line in lines if b"FETCH" in line] == []
    client.close()
