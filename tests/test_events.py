"""The event hub sees what happens to mail, from real sessions: connections, commands, logins,
accepted and refused messages, commits, queue attempts, IDLE, DNS lookups."""

from __future__ import annotations

import imaplib
import smtplib
import threading

from conftest import PASSWORD  # the suite fixture's users (alice@, bob@example.com) have it
from support.wait import wait_until

from mailsuite.events import Events


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, fields: dict) -> None:
        with self.lock:
            self.seen.append((kind, dict(fields)))

    def kinds(self, kind: str) -> list[dict]:
        with self.lock:
            return [fields for seen, fields in self.seen if seen == kind]


def test_a_failing_listener_never_stops_the_others():
    hub, seen = Events(), []

    def broken(kind, fields):
        raise RuntimeError("listener bug")

    hub.subscribe(broken)
    hub.subscribe(lambda kind, fields: seen.append(kind))
    hub.emit("x", a=1)
    assert seen == ["x"] and hub.active
    hub.unsubscribe(broken)
    hub.emit("y")
    assert seen == ["x", "y"]


def test_smtp_and_imap_sessions_tell_the_hub(suite):
    recorder = Recorder()
    suite.service.events.subscribe(recorder)
    with smtplib.SMTP("127.0.0.1", suite.port("smtp"), timeout=10) as client:
        client.sendmail(
            "bob@remote.example",
            ["alice@example.com"],
            b"Message-ID: <ev-1@remote.example>\r\nSubject: hi\r\n\r\nhello\r\n",
        )
        try:
            client.sendmail("bob@remote.example", ["nobody@elsewhere.example"], b"x\r\n")
        except smtplib.SMTPRecipientsRefused:
            pass
    [accepted] = wait_until(lambda: recorder.kinds("message.accepted"), what="accepted")
    assert accepted["role"] == "smtp" and accepted["message_id"] == "<ev-1@remote.example>"
    assert accepted["local"] == ["alice@example.com"] and accepted["queue_id"] is None
    assert accepted["size"] > 0 and accepted["client"] == "127.0.0.1"
    verbs = [fields["verb"] for fields in recorder.kinds("command") if fields["role"] == "smtp"]
    assert verbs[:4] == ["EHLO", "MAIL", "RCPT", "DATA"]
    assert recorder.kinds("commit") and recorder.kinds("commit")[0]["messages"] >= 1

    context = suite.tls_context()
    with imaplib.IMAP4_SSL("127.0.0.1", suite.port("imaps"), ssl_context=context) as imap:
        try:
            imap.login("alice@example.com", "wrong")
        except imaplib.IMAP4.error:
            pass
        imap.login("alice@example.com", PASSWORD)
        imap.select("INBOX")
        tag = imap._new_tag().decode()
        imap.send(f"{tag} IDLE\r\n".encode())
        assert imap.readline().startswith(b"+")
        wait_until(lambda: recorder.kinds("imap.idle"), what="IDLE started")
        imap.send(b"DONE\r\n")
        assert tag.encode() in imap.readline()
    auth = [(f["protocol"], f["ok"]) for f in recorder.kinds("auth")]
    assert ("imap", False) in [(p.lower(), ok) for p, ok in auth]
    assert ("imap", True) in [(p.lower(), ok) for p, ok in auth]
    assert [f["started"] for f in recorder.kinds("imap.idle")] == [True, False]
    opened = [f for f in recorder.kinds("session.opened") if f["role"] == "imaps"]
    assert opened and opened[0]["tls"] is True and opened[0]["protocol"] == "IMAP"
    wait_until(
        lambda: [f for f in recorder.kinds("session.closed") if f["role"] == "imaps"],
        what="the IMAP session's end",
    )
