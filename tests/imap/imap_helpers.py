"""Shared helpers for the IMAP tests: log in with imaplib or imapclient over STARTTLS/TLS."""

from __future__ import annotations

import imaplib
import socket
import ssl

from conftest import PASSWORD


def imap(suite, user: str | None = "alice@example.com", password: str = PASSWORD):
    """An imaplib session on the 143 role, after STARTTLS (and LOGIN if ``user``)."""
    client = imaplib.IMAP4("127.0.0.1", suite.port("imap"), timeout=10)
    client.starttls(ssl_context=suite.tls_context())
    if user is not None:
        client.login(user, password)
    return client


def imaps(suite, user: str | None = "alice@example.com", password: str = PASSWORD):
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", suite.port("imaps"), ssl_context=suite.tls_context(), timeout=10
    )
    if user is not None:
        client.login(user, password)
    return client


def imapclient_session(suite, user: str = "alice@example.com", password: str = PASSWORD):
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=suite.port("imap"), ssl=False, timeout=10)
    client.starttls(suite.tls_context())
    client.login(user, password)
    return client


def deliver(
    suite,
    to: str = "alice@example.com",
    subject: str = "hello",
    body: str = "Hi.\r\n",
    sender: str = "bob@example.net",
    extra: str = "",
) -> None:
    """Deliver a message through the MX listener (a real SMTP transaction)."""
    message = (
        f"From: Bob <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 7 Feb 2022 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n"
        f"{extra}\r\n{body}"
    )
    with suite.smtp() as client:
        client.sendmail(sender, [to], message.encode("utf-8"))


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
        """Close the connection (the socket's reader holds it open until it is closed too)."""
        for closable in (self.file, self.sock):
            try:
                closable.close()
            except (OSError, ssl.SSLError):
                pass
