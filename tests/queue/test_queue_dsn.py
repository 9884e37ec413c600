"""Delivery status notifications parse with the email package and carry what RFC 3464 asks."""

from __future__ import annotations

from queue_helpers import parse_report

from mailsuite.queue.dsn import DELAYED_ACTION, FAILED_ACTION, build_report

T0 = 1_700_000_000.0


def record(**extra):
    base = {
        "address": "bob@b.test",
        "status": "5.1.1",
        "last_response": "550 5.1.1 <bob@b.test>: unknown",
        "smtp_reply": True,
        "remote_mta": "mx.b.test",
        "remote_ip": "192.0.2.1",
        "stage": "RCPT TO",
        "last_attempt": "2023-11-14T22:13:20.000+00:00",
    }
    return {**base, **extra}


def build(action=FAILED_ACTION, records=None, headers=b"Subject: hi\r\nFrom: a@a.test\r\n"):
    return build_report(
        reporting_mta="mx.a.test",
        recipient="alice@a.test",
        queue_id="q1",
        arrival=T0,
        action=action,
        records=records or [record()],
        original_headers=headers,
        now=T0 + 10,
        lifetime=432000,
        retry_until=T0 + 432000 if action == DELAYED_ACTION else None,
    )


def test_failure_report_structure():
    raw = build()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    report, parts, [block] = parse_report(raw)
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report.get_param("report-type") == "delivery-status"
    human = " ".join(parts[0].get_content().split())
    assert "host mx.b.test[192.0.2.1] said: 550 5.1.1 <bob@b.test>: unknown" in human
    assert "(in reply to RCPT TO command)" in human
    assert parts[1].get_payload()[0]["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 -0000"
    assert dict(block.items()) == {
        "Final-Recipient": "rfc822; bob@b.test",
        "Action": "failed",
        "Status": "5.1.1",
        "Remote-MTA": "dns; mx.b.test",
        "Diagnostic-Code": "smtp; 550 5.1.1 <bob@b.test>: unknown",
        "Last-Attempt-Date": "Tue, 14 Nov 2023 22:13:20 -0000",
    }
    assert parts[2].get_payload(decode=True) == b"Subject: hi\r\nFrom: a@a.test\r\n"


def test_local_errors_and_several_recipients():
    local = record(
        address="c@c.test",
        status="4.4.7",
        last_response="connect to mx[192.0.2.9]:25: Connection refused",
        smtp_reply=False,
        remote_mta=None,
        expired=True,
    )
    _, parts, blocks = parse_report(build(records=[record(), local]))
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; bob@b.test", "rfc822; c@c.test"]
    assert blocks[1]["Diagnostic-Code"].startswith("X-mailsuite; connect to")
    assert blocks[1]["Remote-MTA"] is None
    assert "delivery time expired" in parts[0].get_content()


def test_delay_report():
    report, parts, [block] = parse_report(build(DELAYED_ACTION, [record(status="4.7.1")]))
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert "THIS IS A WARNING ONLY" in parts[0].get_content()
    assert "5 days" in parts[0].get_content()
    assert (block["Action"], block["Status"]) == ("delayed", "4.7.1")
    assert block["Will-Retry-Until"] == "Sun, 19 Nov 2023 22:13:20 -0000"


def test_eight_bit_headers_and_long_replies_stay_safe():
    long_reply = "550 5.7.1 " + "x" * 5000 + "\x07\u00e9"
    raw = build(records=[record(last_response=long_reply)], headers="Subject: é\r\n".encode())
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    _, parts, [block] = parse_report(raw)
    assert parts[2].get_payload(decode=True) == "Subject: é\r\n".encode()
    assert block["Diagnostic-Code"].startswith("smtp; 550 5.7.1 xxx")
