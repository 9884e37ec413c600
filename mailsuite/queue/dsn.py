"""Delivery status notifications (RFC 3464) in a multipart/report (RFC 6522), built with ``email``.

Three parts: a human-readable explanation, the machine-readable ``message/delivery-status``
(Reporting-MTA, Arrival-Date; per recipient Final-Recipient, Action, Status, Remote-MTA,
Diagnostic-Code, Last-Attempt-Date), and the original message's header block as
``text/rfc822-headers``. Pure: the caller decides where the report goes (bounce.py).
"""

from __future__ import annotations

import quopri
import textwrap
import uuid
from collections.abc import Iterable
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import formatdate
from typing import Any

from mailsuite.queue.entry import epoch

FAILED_ACTION = "failed"
DELAYED_ACTION = "delayed"


def _printable(text: str) -> str:
    """One line of printable ASCII: remote replies and local errors go into header fields."""
    cleaned = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in " ".join(text.split()))
    return cleaned[:900]


def _address_type(address: str) -> str:
    """RFC 3464 address type; non-ASCII addresses use RFC 6533's utf-8 type."""
    return f"rfc822; {address}" if address.isascii() else f"utf-8; {address}"


def _human_line(record: dict[str, Any]) -> str:
    address = record["address"]
    response = record.get("last_response") or "unknown error"
    if record.get("smtp_reply") and record.get("remote_mta"):
        where = f"host {record['remote_mta']}[{record.get('remote_ip') or '?'}] said: "
        stage = f" (in reply to {record['stage']} command)" if record.get("stage") else ""
        return f"<{address}>: {where}{response}{stage}"
    if record.get("expired"):
        return f"<{address}>: delivery time expired; last error: {response}"
    return f"<{address}>: {response}"


def _human_text(
    reporting_mta: str, action: str, records: list[dict[str, Any]], lifetime: float
) -> str:
    if action == DELAYED_ACTION:
        intro = [
            "####################################################################",
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
            "####################################################################",
            "",
            f"This is the mail system at host {reporting_mta}.",
            "",
            "Your message could not be delivered yet to the recipients below.",
            f"It will be retried until it is {_duration(lifetime)} old.",
        ]
    else:
        intro = [
            f"This is the mail system at host {reporting_mta}.",
            "",
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients. It's attached below.",
        ]
    details = [textwrap.fill(_human_line(r), 76, break_long_words=False) for r in records]
    return "\n".join([*intro, "", *details, ""])


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} seconds"


def _field_block(fields: Iterable[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in fields:
        block[name] = value
    return block


def _status_part(
    reporting_mta: str,
    queue_id: str,
    arrival: float,
    action: str,
    records: list[dict[str, Any]],
    retry_until: float | None,
) -> Message:
    blocks = [
        _field_block(
            [
                ("Reporting-MTA", f"dns; {reporting_mta}"),
                ("X-Mailsuite-Queue-ID", queue_id),
                ("Arrival-Date", formatdate(arrival)),
            ]
        )
    ]
    for record in records:
        fields = [
            ("Final-Recipient", _address_type(record["address"])),
            ("Action", action),
            ("Status", record.get("status") or ("4.0.0" if action == DELAYED_ACTION else "5.0.0")),
        ]
        if record.get("remote_mta"):
            fields.append(("Remote-MTA", f"dns; {record['remote_mta']}"))
        response = _printable(record.get("last_response") or "")
        if response:
            kind = "smtp" if record.get("smtp_reply") else "X-mailsuite"
            fields.append(("Diagnostic-Code", f"{kind}; {response}"))
        if record.get("last_attempt"):
            fields.append(("Last-Attempt-Date", formatdate(epoch(record["last_attempt"]))))
        if action == DELAYED_ACTION and retry_until is not None:
            fields.append(("Will-Retry-Until", formatdate(retry_until)))
        blocks.append(_field_block(fields))
    part = Message()
    part["Content-Type"] = "message/delivery-status"
    part.set_payload(blocks)
    return part


def _headers_part(headers: bytes) -> Message:
    part = Message()
    part["Content-Type"] = "text/rfc822-headers"
    text = headers.replace(b"\r\n", b"\n")
    if text.isascii():
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(text.decode("ascii"))
    else:
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(quopri.encodestring(text).decode("ascii"))
    return part


def build_report(
    *,
    reporting_mta: str,
    recipient: str,
    queue_id: str,
    arrival: float,
    action: str,
    records: list[dict[str, Any]],
    original_headers: bytes,
    now: float,
    lifetime: float,
    retry_until: float | None = None,
) -> bytes:
    """The DSN as CRLF bytes, addressed to ``recipient`` (the original envelope sender)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    report["To"] = recipient
    if action == DELAYED_ACTION:
        report["Subject"] = "Delayed Mail (still being retried)"
    else:
        report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate(now, localtime=True)
    report["Message-ID"] = f"<{uuid.uuid4().hex}@{reporting_mta}>"
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: no vacation replies to this
    text = _human_text(reporting_mta, action, records, lifetime)
    report.attach(MIMEText(text, "plain", "us-ascii" if text.isascii() else "utf-8"))
    report.attach(_status_part(reporting_mta, queue_id, arrival, action, records, retry_until))
    report.attach(_headers_part(original_headers))
    # Values are kept on one line (at most ~900 characters, under RFC 5322's 998): refolding
    # would break Diagnostic-Code right after the colon. UTF-8 only for an SMTPUTF8 sender.
    policy = SMTP.clone(refold_source="none", utf8=not recipient.isascii())
    return report.as_bytes(policy=policy)
