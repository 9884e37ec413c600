"""Listeners and login: STARTTLS, implicit TLS, LOGINDISABLED before TLS, failures."""

from __future__ import annotations

import imaplib
import socket

import pytest
from imap_helpers import imap, imaps


def test_plaintext_advertises_logindisabled_and_refuses_login(suite):
    client = imaplib.IMAP4("127.0.0.1", suite.port("imap"), timeout=10)
    try:
        assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
        typ, data = client._simple_command("LOGIN", "alice@example.com", '"x"')
        assert typ == "NO"
        typ, _ = client._simple_command("AUTHENTICATE", "PLAIN", "AGFsaWNlAHg=")
        assert typ == "NO"
    finally:
        client.shutdown()


def test_starttls_then_login(suite):
    client = imap(suite, user=None)
    assert "AUTH=PLAIN" in client.capabilities and "LOGINDISABLED" not in client.capabilities
    typ, _ = client.login("alice@example.com", "correct horse battery staple")
    assert typ == "OK"
    typ, data = client.list()
    names = [line.decode() for line in data]
    assert any("\\Sent" in n and '"Sent"' in n for n in names), names
    assert any("\\Trash" in n for n in names)
    client.logout()


def test_implicit_tls_and_authenticate_plain_with_initial_response(suite):
    client = imaps(suite, user=None)
    typ, data = client.authenticate(
        "PLAIN", lambda _: b"\0alice@example.com\0correct horse battery staple"
    )
    assert typ == "OK"
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"0"]
    client.logout()


def test_wrong_password_gets_authenticationfailed(suite):
    client = imap(suite, user=None)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login("alice@example.com", "wrong")
    client.shutdown()


def test_starttls_injection_is_dropped(suite):
    with socket.create_connection(("127.0.0.1", suite.port("imap")), timeout=10) as raw:
        raw.recv(4096)
        raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
        reply = b""
        while b"a OK" not in reply:
            reply += raw.recv(4096)
        assert b"b OK" not in reply and b"* CAPABILITY" not in reply
