"""The sandbox HTTP API on the http role: list, one message as JSON, raw, delete one, clear all
(urllib and Debian's curl); and a server without sandbox mode: 404 there, and the normal rules."""

from __future__ import annotations

import smtplib
import subprocess
from email.message import EmailMessage

import pytest
from sandbox_clients import API, http, imaps, listing
from support.tools import tool_or_skip

pytest_plugins = ["sandbox_fixtures"]  # sandbox


def rich_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@app.example>"
    message["To"] = "Zoë <zoe@customer.example>"
    message["Subject"] = "Votre reçu — n° 42"
    message["Message-ID"] = "<receipt-42@app.example>"
    message.set_content("Merci, Zoë!\n")
    message.add_alternative("<p>Merci, <b>Zoë</b>!</p>\n", subtype="html")
    message.add_attachment(b"%PDF-1.4 fake\n" * 100, "application", "pdf", filename="reçu.pdf")
    return message


def send_rich(suite) -> None:
    with suite.submission("app", "key") as client:
        client.send_message(
            rich_message(),
            from_addr="bounces@app.example",
            to_addrs=["zoe@customer.example", "audit@hidden.example"],
        )


def test_list_and_detail(sandbox):
    send_rich(sandbox)
    [entry] = listing(sandbox)
    assert entry["envelope"] == {
        "sender": "bounces@app.example",
        "recipients": ["zoe@customer.example", "audit@hidden.example"],
    }
    assert entry["subject"] == "Votre reçu — n° 42"
    assert entry["from"] == "Shop <shop@app.example>"
    assert entry["to"] == "Zoë <zoe@customer.example>"
    assert entry["message_id"] == "<receipt-42@app.example>"
    assert entry["date"]  # added by submission (RFC 6409 §8)
    raw = http(sandbox, f"{API}/{entry['id']}/raw")
    assert raw.status == 200 and raw.headers["content-type"] == "message/rfc822"
    assert entry["size"] == len(raw.body)

    detail = http(sandbox, f"{API}/{entry['id']}").json()
    assert detail["envelope"] == entry["envelope"]
    names = [name for name, _ in detail["headers"]]
    assert names[:3] == ["Return-Path", "X-Sandbox-Envelope-From", "X-Sandbox-Envelope-To"]
    assert ["Subject", "Votre reçu — n° 42"] in detail["headers"]
    assert detail["text"] == "Merci, Zoë!\n"
    assert detail["html"] == "<p>Merci, <b>Zoë</b>!</p>\n"
    parts = {part["content_type"]: part for part in detail["parts"]}
    assert set(parts) == {"text/plain", "text/html", "application/pdf"}
    assert parts["text/plain"]["charset"] == "utf-8"
    assert parts["text/plain"]["text"] == "Merci, Zoë!\n"
    assert parts["application/pdf"]["filename"] == "reçu.pdf"
    assert parts["application/pdf"]["disposition"] == "attachment"
    assert parts["application/pdf"]["size"] == len(b"%PDF-1.4 fake\n" * 100)
    assert parts["application/pdf"]["text"] is None


def test_list_is_in_arrival_order_and_has_bcc(sandbox):
    with sandbox.smtp() as client:
        for n in range(3):
            client.sendmail("a@b.example", [f"r{n}@x.example"], f"Subject: {n}\r\n\r\n.\r\n")
    entries = listing(sandbox)
    assert [e["subject"] for e in entries] == ["0", "1", "2"]
    assert [e["envelope"]["recipients"] for e in entries] == [[f"r{n}@x.example"] for n in range(3)]
    assert entries[0]["to"] is None  # no To: field at all: only the envelope knows


def test_delete_one_and_clear_all(sandbox):
    with sandbox.smtp() as client:
        for n in range(3):
            client.sendmail("a@b.example", ["x@y.example"], f"Subject: {n}\r\n\r\n.\r\n")
    with imaps(sandbox) as imap:
        assert imap.select("INBOX") == ("OK", [b"3"])
        first, *_ = listing(sandbox)
        answer = http(sandbox, f"{API}/{first['id']}", method="DELETE")
        assert (answer.status, answer.body) == (204, b"")
        assert "content-length" not in answer.headers
        assert http(sandbox, f"{API}/{first['id']}").status == 404
        assert http(sandbox, f"{API}/{first['id']}", method="DELETE").status == 404
        assert [e["subject"] for e in listing(sandbox)] == ["1", "2"]
        assert http(sandbox, API, method="DELETE").status == 204
        assert listing(sandbox) == []
        imap.close()
        assert imap.select("INBOX") == ("OK", [b"0"])


def test_messages_seen_over_imap_are_still_listed(sandbox):
    with sandbox.smtp() as client:
        client.sendmail("a@b.example", ["x@y.example"], b"Subject: seen\r\n\r\n.\r\n")
    with imaps(sandbox) as imap:
        imap.select("INBOX")
        imap.store("1", "+FLAGS", "\\Seen")  # the file moves to cur/ with flags
        imap.close()
    [entry] = listing(sandbox)
    assert http(sandbox, f"{API}/{entry['id']}/raw").body.endswith(b"Subject: seen\r\n\r\n.\r\n")


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/",
        f"{API}/..",
        f"{API}/%2e%2e%2fmailsuite.db",
        f"{API}/..%2F..%2Fmailsuite.db",
        f"{API}/1234.M1P1Q1.host,S=1/other",
        f"{API}/1234.M1P1Q1.host,S=1/raw/more",
        f"{API}/.index",
        f"{API}x",
    ],
)
def test_bad_ids_are_404(sandbox, path):
    assert http(sandbox, path).status == 404


def test_curl(sandbox):
    curl = tool_or_skip("curl")
    with sandbox.smtp() as client:
        client.sendmail("a@b.example", ["c@d.example"], b"Subject: by curl\r\n\r\nhello\r\n")
    base = f"http://127.0.0.1:{sandbox.port('http')}{API}"
    listed = run([curl, "-sf", base])
    assert '"subject": "by curl"' in listed
    [entry] = listing(sandbox)
    raw = run([curl, "-sf", f"{base}/{entry['id']}/raw"])
    assert raw.endswith("Subject: by curl\r\n\r\nhello\r\n")
    status = run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", base])
    assert status == "204"
    assert run([curl, "-sf", base]).strip() == "[]"


def run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode("utf-8")


def test_without_sandbox_mode_the_api_is_404_and_the_rules_hold(suite):
    assert http(suite, API).status == 404
    assert http(suite, API, method="DELETE").status == 404
    assert http(suite, f"{API}/x/raw").status == 404
    with suite.smtp() as client:
        client.ehlo()
        client.mail("a@b.example")
        assert client.rcpt("someone@random.example")[0] == 554  # no open relay
        assert client.rcpt("nobody@example.com")[0] == 550  # user unknown
        assert client.rcpt("reject-x@example.com")[0] == 550
        assert client.rcpt("alice@example.com")[0] == 250
    with pytest.raises(smtplib.SMTPAuthenticationError):
        suite.submission("whatever", "anything")
    assert not (suite.config.mail_dir / "sandbox.invalid").exists()
