"""Helpers for the POP3 tests: put messages into a Maildir, open poplib sessions, raw sockets."""

from __future__ import annotations

import base64
import poplib
import socket
import time
from pathlib import Path

from conftest import PASSWORD

ALICE = "alice@example.com"


def put_message(suite, address: str, data: bytes, subdir: str = "new", flags: str = "") -> str:
    """Drop a message file straight into the Maildir, as the MDA would; returns its base name.

    Not fsync'ed (tests do not crash the machine); named by the store like real deliveries when
    our MDA could have written ``data`` (CRLF line ends only, ending with one), else like a file
    delivered by another program (Courier's form), whose ,S= says nothing about CRLF.
    """
    store = suite.service.store
    root = store.ensure_maildir(address)
    base = store.unique_name(len(data))
    if not mda_could_write(data):
        base = base.replace("Q", "V1I", 1)
    name = base if subdir == "new" else f"{base}:2,{flags}"
    (root / subdir / name).write_bytes(data)
    return base


def mda_could_write(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    ends = not data or data.endswith(b"\r\n")
    return ends and data.count(b"\n") == crlf and data.count(b"\r") == crlf


def maildir_files(suite, address: str) -> dict[str, list[str]]:
    root: Path = suite.maildir(address)
    return {
        sub: sorted(p.name for p in (root / sub).iterdir()) if (root / sub).is_dir() else []
        for sub in ("new", "cur")
    }


def pop3s(suite, user: str | None = None, password: str = PASSWORD) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(
        "127.0.0.1", suite.port("pop3s"), context=suite.tls_context(), timeout=10
    )
    if user is not None:
        client.user(user)
        client.pass_(password)
    return client


def pop3_stls(suite, user: str | None = None, password: str = PASSWORD) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", suite.port("pop3"), timeout=10)
    client.stls(context=suite.tls_context())
    if user is not None:
        client.user(user)
        client.pass_(password)
    return client


def auth_plain(client: poplib.POP3, user: str, password: str = PASSWORD, initial: bool = True):
    """AUTH PLAIN (RFC 5034), with an initial response or after the "+ " continuation."""
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    if initial:
        return client._shortcmd(f"AUTH PLAIN {token}")
    client._putcmd("AUTH PLAIN")
    line, _ = client._getline()
    assert line.startswith(b"+")
    return client._shortcmd(token)


def wait_unlocked(suite, address: str = ALICE, deadline: float = 5.0) -> None:
    """Wait until the server has noticed a dropped session and released its maildrop lock."""
    locks = suite.service.pop3_context.locks
    end = time.monotonic() + deadline
    while suite.reactor.call(lambda: address in locks):
        assert time.monotonic() < end, "maildrop lock never released"
        time.sleep(0.01)


class RawSession:
    """A line-level POP3 client over a plain or TLS socket, for what poplib hides."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    @classmethod
    def connect(cls, suite, role: str = "pop3s") -> RawSession:
        sock = socket.create_connection(("127.0.0.1", suite.port(role)), timeout=10)
        if role == "pop3s":
            sock = suite.tls_context().wrap_socket(sock, server_hostname="127.0.0.1")
        session = cls(sock)
        assert session.line().startswith(b"+OK")
        return session

    def starttls(self, suite, pipelined: bytes = b"") -> None:
        self.send(b"STLS\r\n" + pipelined)
        assert self.line().startswith(b"+OK")
        self.file.close()
        self.sock = suite.tls_context().wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def multiline(self) -> list[bytes]:
        """The lines of a multi-line body up to (not including) the "." line, still stuffed."""
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line)
        return lines

    def login(self, user: str = ALICE, password: str = PASSWORD) -> bytes:
        self.send(f"USER {user}\r\n".encode())
        assert self.line().startswith(b"+OK")
        self.send(f"PASS {password}\r\n".encode())
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()
