"""Real peers from Debian: curl lists and fetches over imaps; mbsync syncs both ways."""

from __future__ import annotations

import subprocess

from conftest import PASSWORD
from imap_helpers import deliver, imap
from support.tools import tool_or_skip


def test_curl_lists_and_fetches_over_imaps(suite):
    curl = tool_or_skip("curl")
    deliver(suite, subject="for curl", body="fetched by curl\r\n")
    base = f"imaps://127.0.0.1:{suite.port('imaps')}"
    common = [curl, "-sS", "--cacert", str(suite.cert_path), "-u", f"alice@example.com:{PASSWORD}"]
    listing = subprocess.run([*common, f"{base}/"], capture_output=True, timeout=30, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "\\Sent" in listing.stdout and "INBOX" in listing.stdout
    fetched = subprocess.run(
        [*common, f"{base}/INBOX;UID=1"], capture_output=True, timeout=30, text=True
    )
    assert fetched.returncode == 0, fetched.stderr
    assert "Subject: for curl" in fetched.stdout and "fetched by curl" in fetched.stdout


def test_mbsync_syncs_a_folder_both_ways_with_flags(suite, tmp_path):
    mbsync = tool_or_skip("mbsync")
    deliver(suite, subject="from server")
    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount test
Host 127.0.0.1
Port {suite.port("imaps")}
User alice@example.com
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {suite.cert_path}

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
"""
    )

    def run() -> None:
        result = subprocess.run(
            [mbsync, "-c", str(config), "-a"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr

    run()
    cur_new = list((local / "INBOX" / "new").iterdir()) + list((local / "INBOX" / "cur").iterdir())
    assert len(cur_new) == 1 and b"from server" in cur_new[0].read_bytes()
    # Mark it seen locally and add a local message; both reach the server.
    message = cur_new[0]
    message.rename(local / "INBOX" / "cur" / (message.name.split(":2,")[0] + ":2,S"))
    (local / "INBOX" / "new" / "1.local.host").write_bytes(
        b"From: alice@example.com\r\nSubject: from local\r\n\r\nx\r\n"
    )
    run()
    client = imap(suite)
    client.select("INBOX")
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b" ".join(
        part for item in data for part in (item if isinstance(item, tuple) else (item,))
    )
    assert b"from local" in text and b"\\Seen" in text
    client.logout()
