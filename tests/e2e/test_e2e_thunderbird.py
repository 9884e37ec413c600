"""A real Thunderbird (Debian's ``thunderbird``, headless, driven through Marionette) against
``twistd -n mailsuite``: what a person does with their mail client, checked on the server.

One Thunderbird and one server serve the whole module (starting Thunderbird costs seconds).
Three accounts, set up like the account wizard's manual configuration with "Normal password":
dana (IMAP with STARTTLS, sending through submission with STARTTLS), erin (IMAP and submission
over implicit TLS), finn (POP3 over implicit TLS). The server's generated self-signed
certificate is accepted as a per-port security exception, as a user would.
"""

from __future__ import annotations

import email
import imaplib
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from thunderbird_helpers import (
    SSL_TLS,
    STARTTLS,
    MailClient,
    MailServer,
    Thunderbird,
)

PASSWORD = "s3cret-pass"
DANA, ERIN, FINN = "dana@example.net", "erin@example.net", "finn@example.net"
DEADLINE = 30.0  # seconds; generous: a pass takes well under one
# nsImapMailFolder box flags, set only from LIST's special-use attributes (nsImapCore.h).
BOX_FLAGS = {"Drafts": 0x800, "Junk": 0x1000, "Sent": 0x2000, "Trash": 0x10000, "Archive": 0x400000}
FOLDER_FLAGS = {
    "Sent": "SentMail",
    "Drafts": "Drafts",
    "Trash": "Trash",
    "Junk": "Junk",
    "Archive": "Archive",
}


@dataclass
class Session:
    server: MailServer
    thunderbird: Thunderbird
    client: MailClient
    accounts: dict[str, str]  # address -> Thunderbird account key


@pytest.fixture(scope="module")
def session(thunderbird_binary, tmp_path_factory):
    server = MailServer(tmp_path_factory.mktemp("mailsuite"))
    server.start()
    thunderbird = Thunderbird(thunderbird_binary, tmp_path_factory.mktemp("thunderbird"))
    try:
        assert server.admin("domain", "add", "example.net").returncode == 0
        for address in (DANA, ERIN, FINN):
            added = server.admin("user", "add", address, "--password-stdin", stdin=PASSWORD)
            assert added.returncode == 0, added.stderr
        client = MailClient(thunderbird.start())
        ports = server.ports
        client.accept_certificate(
            server.certificate_base64(),
            "127.0.0.1",
            [ports[role] for role in ("imap", "imaps", "submission", "submissions", "pop3s")],
        )
        accounts = {
            DANA: client.add_account(
                DANA, PASSWORD, ("imap", ports["imap"], STARTTLS), (ports["submission"], STARTTLS)
            ),
            ERIN: client.add_account(
                ERIN, PASSWORD, ("imap", ports["imaps"], SSL_TLS), (ports["submissions"], SSL_TLS)
            ),
            FINN: client.add_account(
                FINN, PASSWORD, ("pop3", ports["pop3s"], SSL_TLS), (ports["submissions"], SSL_TLS)
            ),
        }
        yield Session(server, thunderbird, client, accounts)
    finally:
        thunderbird.stop()
        server.stop()


@pytest.fixture
def tb(session, thunderbird_version):
    # Shown with a failing test: which Thunderbird (thunderbird_binary and thunderbird_version
    # come from conftest.py), and its protocol logs (complete once it has quit).
    print(f"{thunderbird_version}, logs:", *session.thunderbird.log_files(), sep="\n  ")
    return session


def wait_until(what: str, probe: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    end = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def deliver(server: MailServer, to: str, subject: str, message_id: str, body: str) -> None:
    """Mail from the outside world, through the MX port."""
    message = (
        f"From: Bob <bob@remote.example>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail("bob@remote.example", [to], message.encode())


def files_with(server: MailServer, address: str, folder: str, message_id: str) -> list[Path]:
    needle = f"Message-ID: <{message_id}>".encode()
    for _attempt in range(5):
        try:
            return [p for p in server.maildir_files(address, folder) if needle in p.read_bytes()]
        except FileNotFoundError:
            continue  # the server renamed it (new/ -> cur/, a flag) after the listing: list again
    raise AssertionError(f"{address} {folder!r}: files kept moving while being read")


def maildir_flags(path: Path) -> str:
    return path.name.rpartition(":2,")[2] if ":2," in path.name else ""


def imap_flags(server: MailServer, address: str, folder: str, message_id: str) -> str:
    """The message's FLAGS as another IMAP client (imaplib, STARTTLS) sees them."""
    context = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10) as imap:
        imap.starttls(ssl_context=context)
        imap.login(address, PASSWORD)
        assert imap.select(folder, readonly=True)[0] == "OK"
        _, [found] = imap.search(None, "HEADER", "Message-ID", message_id)
        [number] = found.split()
        _, data = imap.fetch(number, "(FLAGS)")
        return data[0].decode()


def test_imap_starttls_login_finds_the_special_use_folders(tb):
    dana = tb.accounts[DANA]
    assert tb.client.update_folder(dana) == 0  # log in, open INBOX
    # Then LIST, asked for as expanding the account does: opening INBOX alone need not.
    folders = tb.client.folders(dana, expect=["INBOX", *FOLDER_FLAGS], timeout=DEADLINE)
    assert "Inbox" in folders["INBOX"]["flags"]
    for name, flag in FOLDER_FLAGS.items():
        assert flag in folders[name]["flags"], (name, folders[name])
    for name, bit in BOX_FLAGS.items():  # recognised from SPECIAL-USE, not from the name
        assert folders[name]["boxFlags"] & bit, (name, folders[name])


def test_mx_mail_is_pushed_read_flagged_and_deleted_to_trash(tb):
    dana, client, server = tb.accounts[DANA], tb.client, tb.server
    assert client.update_folder(dana) == 0  # INBOX open: Thunderbird then waits in IDLE
    client.folders(dana, expect=["Trash"], timeout=DEADLINE)  # where Delete moves messages
    deliver(server, DANA, "pushed by IDLE", "idle-1@remote.example", "Hello from the MX.")
    # No folder update from here on: biff is off, so only the server's push can bring it.
    seen = client.wait_for_message(dana, "idle-1@remote.example", DEADLINE)
    assert seen["subject"] == "pushed by IDLE" and seen["author"] == "Bob <bob@remote.example>"
    assert not seen["read"] and not seen["flagged"]
    assert "Hello from the MX." in client.message_text(dana, "idle-1@remote.example")

    marked = client.mark_read_and_flag(dana, "idle-1@remote.example")
    assert marked["read"] and marked["flagged"]
    wait_until(
        "\\Seen and \\Flagged in the Maildir file name",
        lambda: [
            p
            for p in files_with(server, DANA, "", "idle-1@remote.example")
            if maildir_flags(p) == "FS"
        ],
    )
    flags = imap_flags(server, DANA, "INBOX", "idle-1@remote.example")
    assert "\\Seen" in flags and "\\Flagged" in flags

    assert client.delete(dana, "idle-1@remote.example") == 0
    [trashed] = wait_until(
        "the message in .Trash", lambda: files_with(server, DANA, "Trash", "idle-1@remote.example")
    )
    assert maildir_flags(trashed) == "FS"
    # MOVE links the file into .Trash, then expunges it from INBOX.
    wait_until(
        "the message gone from INBOX",
        lambda: files_with(server, DANA, "", "idle-1@remote.example") == [],
    )
    flags = imap_flags(server, DANA, "Trash", "idle-1@remote.example")
    assert "\\Seen" in flags and "\\Flagged" in flags


def test_send_through_submission_starttls_keeps_a_copy_in_sent(tb):
    dana, client, server = tb.accounts[DANA], tb.client, tb.server
    client.folders(dana, expect=["Sent"], timeout=DEADLINE)  # where the copy goes
    events = client.send(
        dana, "Erin <erin@example.net>", "from Thunderbird", "Hi Erin,\r\n", "tb-1@example.net"
    )
    assert events == ["sent 0", "copied 0"]
    [delivered] = wait_until(
        "delivery to erin", lambda: files_with(server, ERIN, "", "tb-1@example.net")
    )
    message = email.message_from_bytes(delivered.read_bytes())
    assert message["Subject"] == "from Thunderbird"
    assert message["From"] == "dana <dana@example.net>"
    received = message["Received"]
    assert "ESMTPSA" in received and "(Authenticated sender: dana@example.net)" in received
    assert "(using TLSv1." in received  # STARTTLS happened before AUTH
    assert "Hi Erin," in message.get_payload()

    [copy] = wait_until(
        "the copy in Sent", lambda: files_with(server, DANA, "Sent", "tb-1@example.net")
    )
    assert "S" in maildir_flags(copy)
    assert "\\Seen" in imap_flags(server, DANA, "Sent", "tb-1@example.net")


def test_imaps_account_reads_and_sends_over_implicit_tls(tb):
    erin, client, server = tb.accounts[ERIN], tb.client, tb.server
    deliver(server, ERIN, "for erin", "imaps-1@remote.example", "Over port 993.")
    assert client.update_folder(erin) == 0
    seen = client.wait_for_message(erin, "imaps-1@remote.example", DEADLINE)
    assert seen["subject"] == "for erin"
    assert "Over port 993." in client.message_text(erin, "imaps-1@remote.example")
    assert "SentMail" in client.folders(erin, expect=["Sent"], timeout=DEADLINE)["Sent"]["flags"]

    events = client.send(erin, DANA, "over 465", "Implicit TLS.\r\n", "tb-465@example.net")
    assert events == ["sent 0", "copied 0"]
    [delivered] = wait_until(
        "delivery to dana", lambda: files_with(server, DANA, "", "tb-465@example.net")
    )
    assert b"(Authenticated sender: erin@example.net)" in delivered.read_bytes()
    wait_until(
        "erin's copy in Sent", lambda: files_with(server, ERIN, "Sent", "tb-465@example.net")
    )


def test_pop3s_account_downloads_and_leaves_the_message_on_the_server(tb):
    finn, client, server = tb.accounts[FINN], tb.client, tb.server
    deliver(server, FINN, "for pop", "pop-1@remote.example", "Downloaded over POP3S.")
    assert client.pop3_get_new_messages(finn) == 0
    seen = client.wait_for_message(finn, "pop-1@remote.example", DEADLINE)
    assert seen["subject"] == "for pop"
    assert "Downloaded over POP3S." in client.message_text(finn, "pop-1@remote.example")
    # "Leave messages on server" (the wizard's default): still there, now marked as read.
    [kept] = files_with(server, FINN, "", "pop-1@remote.example")
    assert maildir_flags(kept) == "S"
