"""The queue's delivery agent in sandbox mode: whatever reaches the outbound queue is captured.

In sandbox mode the SMTP roles never queue anything (smtp.py), but the queue may hold entries
from before the switch, and other producers (a send API, an operator's tool) may add some: the
scheduler still runs them, with this agent in place of the SMTP relay client (queue/transport.py)
so nothing ever leaves the machine. Recipients get the simulated outcomes of outcomes.py, so a
``bounce-``/``reject-`` recipient makes the queue send its ordinary DSN (captured in turn, its
sender's domain being remote) and a ``defer-`` recipient is retried on the queue's schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsuite.queue.bounce import NULL_RETURN_PATH
from mailsuite.queue.entry import DELIVERED, Outcome
from mailsuite.queue.transport import Attempt, DeliveryRequest
from mailsuite.sandbox.envelope import envelope_headers
from mailsuite.sandbox.intake import CaptureWriter
from mailsuite.sandbox.outcomes import ACCEPT, BOUNCE, DEFER, bounce_diagnostic, outcome
from mailsuite.sandbox.settings import CAPTURE_DOMAIN

log = Logger(namespace="mailsuite.sandbox")

_CHUNK = 64 * 1024


class CaptureAgent:
    """Has the DeliveryAgent's ``deliver``; never raises, one Outcome per recipient."""

    def __init__(
        self,
        writer: CaptureWriter,
        notify: Callable[[], None] = lambda: None,
        in_thread: Callable[..., Deferred] = threads.deferToThread,
    ) -> None:
        """``notify``: called on the reactor thread after each capture (IMAP IDLE wakes)."""
        self.writer = writer
        self.notify = notify
        self._in_thread = in_thread

    async def deliver(self, request: DeliveryRequest, attempt: Attempt) -> dict[str, Outcome]:
        captured = [r for r in request.recipients if outcome(r) in (ACCEPT, BOUNCE)]
        if captured:
            try:
                await self._in_thread(self._capture, request, captured)
            except Exception as exc:
                log.failure("sandbox: capturing a queued message failed")
                text = f"sandbox: could not capture the message: {exc}"
                return {r: Outcome.temporary("4.3.0", text) for r in request.recipients}
            self.notify()
        return {r: _outcome(r) for r in request.recipients}

    def _capture(self, request: DeliveryRequest, recipients: list[str]) -> str:
        prefix = (
            f"Return-Path: <{request.sender}>\r\n".encode() if request.sender else NULL_RETURN_PATH
        )
        head = prefix + envelope_headers(request.sender, recipients)
        return self.writer.deliver(_chunks(head, request.message.path, request.message.offset))


def _chunks(head: bytes, path: Path, offset: int) -> Iterator[bytes]:
    yield head
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(_CHUNK):
            yield chunk


def _outcome(address: str) -> Outcome:
    kind = outcome(address)
    if kind == ACCEPT:
        reply = "250 2.0.0 Ok: captured by the sandbox"
        return Outcome(DELIVERED, "2.0.0", reply, smtp_reply=True, remote_mta=CAPTURE_DOMAIN)
    if kind == DEFER:
        reply = f"450 4.2.0 <{address}>: mailbox busy (sandbox: simulated deferral)"
        return Outcome.temporary("4.2.0", reply, smtp_reply=True, stage="RCPT TO")
    return Outcome.permanent("5.1.1", bounce_diagnostic(address), smtp_reply=True, stage="RCPT TO")
