"""Helpers for the POP3 tests: poplib sessions, AUTH PLAIN, raw sessions, the maildrop lock."""

from __future__ import annotations

import base64
import poplib

from support import PASSWORD
from support.wait import wait_until
from support.wire import RawClient

ALICE = "alice@example.com"


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
    wait_until(
        lambda: not suite.reactor.call(lambda: address in locks), deadline, "the maildrop lock"
    )


def raw_pop3(suite, role: str = "pop3s") -> RawClient:
    """A RawClient of the POP3 ``role``, past the server's +OK greeting."""
    client = RawClient.connect(suite, role)
    assert client.line().startswith(b"+OK")
    return client


def raw_login(client: RawClient, user: str = ALICE, password: str = PASSWORD) -> bytes:
    """USER and PASS on a RawClient; the answer to PASS."""
    client.send(f"USER {user}\r\n".encode())
    assert client.line().startswith(b"+OK")
    client.send(f"PASS {password}\r\n".encode())
    return client.line()
