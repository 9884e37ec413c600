"""Per-user connection limit and the idle timeout (IDLE included)."""

from __future__ import annotations

import imaplib

import pytest
from imap_helpers import imap


def test_per_user_connection_limit_and_idle_timeout(make_suite):
    suite = make_suite({"imap.max_connections_per_user": 1, "imap.idle_timeout": 0.5})
    suite.add_user("alice@example.com")
    first = imap(suite)
    with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
        imap(suite)
    first.select("INBOX")
    tag = first._new_tag()
    first.send(tag + b" IDLE\r\n")
    assert first.readline().startswith(b"+")
    # Silent for longer than the timeout: the server says BYE and closes, even in IDLE.
    assert first.readline().startswith(b"* BYE")
    first.shutdown()
    # The slot is free again once the session is gone.
    again = imap(suite)
    assert again.noop()[0] == "OK"
    again.logout()
