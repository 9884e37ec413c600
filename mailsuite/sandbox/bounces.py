"""The delivery status notification a ``bounce-...`` recipient produces (RFC 3464).

A real MTA would send it to the envelope sender; in the sandbox the sender's domain is usually
not real and nothing may leave, so the notice is captured like any other message: from
MAILER-DAEMON, with the null reverse-path (``Return-Path: <>``, ``X-Sandbox-Envelope-From: <>``),
addressed to the original sender. The report itself is the queue's (queue/dsn.py), so what an
application sees here is what it would get from this server in production.

Blocking (reads the captured message, fsyncs the notice): run ``send`` in a thread.
"""

from __future__ import annotations

import time
from typing import Any

from mailsuite.queue.bounce import NULL_RETURN_PATH
from mailsuite.queue.dsn import FAILED_ACTION, build_report
from mailsuite.queue.entry import iso
from mailsuite.sandbox.capture import CaptureMailbox
from mailsuite.sandbox.envelope import envelope_headers
from mailsuite.sandbox.intake import CaptureWriter
from mailsuite.sandbox.outcomes import bounce_diagnostic


class CaptureBounces:
    def __init__(
        self, writer: CaptureWriter, mailbox: CaptureMailbox, hostname: str, lifetime: float
    ) -> None:
        """``lifetime``: queue.lifetime, which the report's human part mentions for delays."""
        self.writer = writer
        self.mailbox = mailbox
        self.hostname = hostname
        self.lifetime = lifetime

    def send(
        self, message_id: str, sender: str, bounced: list[str], captured_key: str, arrival: float
    ) -> str | None:
        """Capture the failure notice for ``bounced`` recipients of the message captured as
        ``captured_key``; returns the notice's key (None: a null sender is never bounced)."""
        if not sender or not bounced:
            return None
        now = time.time()
        records: list[dict[str, Any]] = [
            {
                "address": address,
                "status": "5.1.1",
                "last_response": bounce_diagnostic(address),
                "smtp_reply": True,
                "last_attempt": iso(now),
            }
            for address in dict.fromkeys(bounced)
        ]
        report = build_report(
            reporting_mta=self.hostname,
            recipient=sender,
            queue_id=message_id,
            arrival=arrival,
            action=FAILED_ACTION,
            records=records,
            original_headers=self._original_headers(captured_key),
            now=now,
            lifetime=self.lifetime,
        )
        return self.writer.deliver([NULL_RETURN_PATH, envelope_headers("", [sender]), report])

    def _original_headers(self, key: str) -> bytes:
        """The captured message's header block without the Return-Path our delivery added."""
        block = self.mailbox.header_block(key)
        if block is None:  # deleted already (a fast DELETE): the report says less, that is all
            return b""
        if block[:12].lower() == b"return-path:":
            block = block[block.find(b"\r\n") + 2 :]
        return block.removesuffix(b"\r\n")
