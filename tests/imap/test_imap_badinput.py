"""Bad input and limits: BAD and carry on, bounded literals and lines, TOOBIG, folder names."""

from __future__ import annotations

import socket
import ssl

from conftest import PASSWORD
from imap_helpers import imap


class Raw:
    """A line-level IMAP client over implicit TLS, for input imaplib refuses to send."""

    def __init__(self, suite, login: bool = True) -> None:
        raw = socket.create_connection(("127.0.0.1", suite.port("imaps")), timeout=10)
        self.sock = suite.tls_context().wrap_socket(raw, server_hostname="mx.test.example")
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")
        if login:
            assert self.command(b"l LOGIN alice@example.com " + f'"{PASSWORD}"'.encode())[
                -1
            ].startswith(b"l OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: bytes) -> list[bytes]:
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.file.readline()
            assert line, lines
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def close(self) -> None:
        try:
            self.sock.close()
        except (OSError, ssl.SSLError):
            pass


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
    reply = client.file.readline()
    assert reply.startswith(b"b1 NO [TOOBIG]")
    client.send(b"b2 LOGIN {4294967295}\r\n")
    assert client.file.readline().startswith(b"b2 BAD")
    assert client.command(b"b3 NOOP")[-1].startswith(b"b3 OK")
    # A non-synchronising one over the limit ends the session (the bytes would follow).
    client.send(b"b4 APPEND INBOX {4294967295+}\r\n")
    assert client.file.readline().startswith(b"b4 NO [TOOBIG]")
    client.close()
    # The server keeps serving others.
    other = imap(suite)
    assert other.noop()[0] == "OK"
    other.logout()


def test_append_over_limit_is_toobig_and_stores_nothing(suite):
    client = Raw(suite)
    size = 1_000_001  # limits.message_size in the test settings is 1,000,000
    client.send(b"c1 APPEND INBOX {%d}\r\n" % size)
    assert client.file.readline().startswith(b"c1 NO [TOOBIG]")
    assert client.command(b"c2 STATUS INBOX (MESSAGES)")[0].endswith(b" (MESSAGES 0)\r\n")
    client.close()


def test_literal_plus_and_long_lines(suite):
    client = Raw(suite)
    message = b"Subject: plus\r\n\r\nbody\r\n"
    client.send(b"d1 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(message) + message + b"\r\n")
    assert b"APPENDUID" in client.until(b"d1")[-1]
    client.send(b"d2 NOOP " + b"x" * 70000 + b"\r\n")
    assert client.file.readline().startswith(b"* BAD")
    assert client.command(b"d3 NOOP")[-1].startswith(b"d3 OK")
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
