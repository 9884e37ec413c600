"""Folder names from clients: unsafe ones refused without touching the disk, Unicode ones round
trip. (Bad commands, literals, long lines and TOOBIG are transcripts: tests/scenarios/imap.)"""

from __future__ import annotations

from imap_helpers import imap


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
