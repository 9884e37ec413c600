"""POST /api/v1/messages for real: JSON and raw messages, with urllib and curl, delivered to a
local Maildir (DKIM-signed) or queued for a remote domain, and GET of their delivery status."""

from __future__ import annotations

import base64
import email
import json
from email.policy import default as default_policy

import dkim
from api_client import ALICE, BOB, MESSAGES, admin, curl, new_key, send_json, status_of
from support.wait import wait_until

from mailsuite.authn.keys import DKIMKeyStore
from mailsuite.queue.spool import QueueSpool


def verify_dkim(message: bytes, keys) -> bool:
    records = {key.dns_name(): "".join(key.txt_strings()).encode() for key in keys}

    def dns(name, timeout=5):
        return records.get(name.decode().rstrip("."))

    return dkim.verify(message, dnsfunc=dns)


def test_a_json_message_reaches_a_local_mailbox_signed(suite):
    keys = [DKIMKeyStore(suite.config.dkim_dir).generate("example.com", "rsa")]
    key = new_key(suite, ALICE, "--name", "newsletter")
    report = b"%PDF-1.4 not really\n" * 50
    answer = send_json(
        suite,
        key,
        {
            "from": "Alice <alice@example.com>",
            "to": [f"Bob <{BOB}>"],
            "subject": "Grüße from the API",
            "text": "Hello Bob,\nthe report is attached.\n",
            "html": "<p>Hello Bob,<br>the report is attached.</p>",
            "attachments": [
                {
                    "filename": "report.pdf",
                    "content_type": "application/pdf",
                    "content": base64.b64encode(report).decode(),
                }
            ],
            "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
        },
    )
    assert answer.status == 202, answer.body
    sent = answer.json
    assert set(sent) == {"id", "message_id", "queue_id", "recipients"}
    assert sent["queue_id"] is None and sent["recipients"] == [BOB]
    assert answer.headers["location"] == f"{MESSAGES}/{sent['id']}"

    [stored] = suite.messages(BOB)  # the 202 came after the commit: no waiting
    assert stored.startswith(b"Return-Path: <alice@example.com>\r\nDKIM-Signature:")
    assert verify_dkim(stored, keys)
    assert f"with HTTP id {sent['id']}".encode() in stored
    assert b"(Authenticated sender: alice@example.com)" in stored
    parsed = email.message_from_bytes(stored, policy=default_policy)
    assert parsed["Subject"] == "Grüße from the API"
    assert parsed["Message-ID"] == sent["message_id"] and parsed["Date"]
    assert parsed["X-Campaign"] == "spring"
    text = parsed.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n") == "Hello Bob,\nthe report is attached.\n"
    assert "<p>Hello Bob" in parsed.get_body(("html",)).get_content()
    [attachment] = parsed.iter_attachments()
    assert attachment.get_filename() == "report.pdf" and attachment.get_content() == report
    assert all(len(line) <= 998 and line.isascii() for line in stored.split(b"\r\n"))

    status = status_of(suite, key, sent["id"])
    assert status.status == 200
    assert status.json["recipients"] == [
        {"recipient": BOB, "state": "delivered", "status": "2.0.0", "local": True}
    ]
    listed = json.loads(admin(suite, "apikey", "list", ALICE, "--json"))
    assert listed[0]["label"] == "newsletter" and listed[0]["last_used"]


def test_a_remote_recipient_is_queued_and_its_status_follows_the_queue(suite):
    key = new_key(suite)
    answer = send_json(
        suite,
        key,
        {
            "from": ALICE,
            "to": "carol@remote.example",
            "cc": [BOB],
            "bcc": ["dave@remote.example"],
            "subject": "out",
            "text": "to the world\n",
        },
    )
    assert answer.status == 202, answer.body
    sent = answer.json
    assert sent["recipients"] == ["carol@remote.example", BOB, "dave@remote.example"]
    queue = QueueSpool(suite.config.queue_dir)
    envelope = queue.load(sent["queue_id"])
    assert [r["address"] for r in envelope["recipients"]] == [
        "carol@remote.example",
        "dave@remote.example",
    ]
    queued = queue.message_path(sent["queue_id"]).read_bytes()
    assert b"dave@" not in queued and b"Bcc" not in queued  # Bcc: is never written
    [local] = suite.messages(BOB)
    assert b"dave@" not in local

    # The test DNS answers nothing: both remote recipients end up deferred, with a retry time.
    def deferred():
        recipients = status_of(suite, key, sent["id"]).json["recipients"]
        remote = [r for r in recipients if not r["local"]]
        return all(r["state"] == "deferred" for r in remote) and recipients

    recipients = wait_until(deferred, timeout=20, what="the remote recipients deferred")
    assert recipients[0] == {
        "recipient": BOB,
        "state": "delivered",
        "status": "2.0.0",
        "local": True,
    }
    carol = recipients[1]
    assert carol["recipient"] == "carol@remote.example" and carol["attempts"] >= 1
    assert carol["status"].startswith("4.") and carol["next_attempt"] and carol["reply"]

    admin(suite, "queue", "delete", sent["queue_id"])
    recipients = status_of(suite, key, sent["id"]).json["recipients"]
    assert [r["state"] for r in recipients] == [
        "delivered",
        "unknown (no longer queued)",
        "unknown (no longer queued)",
    ]


def test_a_raw_message_from_curl_goes_by_its_query_or_its_headers(suite):
    key = new_key(suite, BOB)
    url = f"http://127.0.0.1:{suite.port('http')}{MESSAGES}"
    raw = (
        b"From: Bob <bob@example.com>\n"  # bare LF line ends, as a script writes them
        b"To: Alice <alice@example.com>\n"
        b"Bcc: carol@remote.example\n"
        b"Subject: raw\n"
        b"\n"
        b"sent whole\n"
    )
    common = ["-H", f"Authorization: Bearer {key}", "-H", "Content-Type: message/rfc822"]
    code, sent = curl(*common, "--data-binary", "@-", url, stdin=raw)
    assert code == 202, sent
    assert sent["recipients"] == [ALICE, "carol@remote.example"] and sent["queue_id"]
    [stored] = suite.messages(ALICE)
    assert b"\r\nSubject: raw\r\n\r\nsent whole\r\n" in stored and b"Bcc" not in stored
    assert f"Message-ID: {sent['message_id']}".encode() in stored  # added, like submission

    code, sent = curl(*common, "--data-binary", "@-", f"{url}?to={ALICE}", stdin=raw)
    assert code == 202 and sent["recipients"] == [ALICE] and sent["queue_id"] is None
    assert len(suite.messages(ALICE)) == 2

    code, status = curl("-H", f"Authorization: Bearer {key}", f"{url}/{sent['id']}")
    assert code == 200 and status["recipients"][0]["state"] == "delivered"


def test_json_from_curl_and_an_alias_the_user_owns(suite):
    suite.db.add_alias("sales@example.com", ALICE)
    key = new_key(suite)
    url = f"http://127.0.0.1:{suite.port('http')}{MESSAGES}"
    fields = {"from": "Sales <sales@example.com>", "to": "team@example.com", "text": "hi"}
    suite.db.add_alias("team@example.com", BOB)
    code, sent = curl(
        "-H",
        f"Authorization: Bearer {key}",
        "-H",
        "Content-Type: application/json",
        "--data",
        json.dumps(fields),
        url,
    )
    assert code == 202, sent
    assert sent["recipients"] == ["team@example.com"]
    [stored] = suite.messages(BOB)  # the alias expanded, as RCPT does
    assert b"From: Sales <sales@example.com>" in stored
    assert b"Return-Path: <sales@example.com>" in stored
