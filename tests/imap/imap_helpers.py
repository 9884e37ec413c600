"""Shared helpers for the IMAP tests: log in with imaplib or imapclient over STARTTLS/TLS, or
with a raw client (``Raw``); deliver a message over SMTP."""

from __future__ import annotations

import imaplib

from support import PASSWORD
from support.wire import RawClient


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


class Raw(RawClient):
    """A RawClient of the IMAP role over implicit TLS (imaps), past the greeting, logged in as
    alice unless ``login`` is false."""

    def __init__(self, suite, login: bool = True) -> None:
        super().__init__(suite.port("imaps"), suite.tls_context())
        assert self.line().startswith(b"* OK")
        if login:
            assert self.command(b"l LOGIN alice@example.com " + f'"{PASSWORD}"'.encode())[
                -1
            ].startswith(b"l OK")
