"""What the SMTP server asks in sandbox mode (its hooks in smtp/server.py say "sandbox").

- RCPT: every address at every domain is taken (no relay check, no "user unknown") and routed
  to the capture mailbox, unless its local part asks for a simulated refusal (outcomes.py);
- DATA: the envelope is written in front of the message (envelope.py);
- after the 250: a notice for each ``bounce-`` recipient is captured too (bounces.py).

Remote recipients never reach the envelope, so the router queues nothing: the capture mailbox
is the message's only destination, made durable before the 250 like any local delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsuite.sandbox.bounces import CaptureBounces
from mailsuite.sandbox.envelope import envelope_headers
from mailsuite.sandbox.outcomes import BOUNCE, Refusal, outcome, refusal
from mailsuite.smtp.delivery import CommitResult, Envelope
from mailsuite.smtp.envelope import Path

log = Logger(namespace="mailsuite.sandbox")

Observer = Callable[[tuple[str, ...]], None]


class SandboxSMTP:
    def __init__(
        self,
        capture_address: str,
        bounces: CaptureBounces,
        observers: list[Observer] | None = None,
        in_thread: Callable[..., Deferred] = threads.deferToThread,
    ) -> None:
        """``observers``: told of deliveries made here (the router's list: IMAP IDLE wakes)."""
        self.capture_address = capture_address
        self.bounces = bounces
        self.observers: list[Observer] = observers if observers is not None else []
        self._in_thread = in_thread

    def route(self, envelope: Envelope, path: Path) -> Refusal | None:
        """Route the recipient ``path`` into the capture, or return its simulated refusal."""
        refused = refusal(path.address)
        if refused is None:
            envelope.add_mailbox(self.capture_address)
        return refused

    def envelope_headers(self, sender: str, recipients: list[str]) -> bytes:
        return envelope_headers(sender, recipients)

    def accepted(
        self, message_id: str, sender: str, recipients: list[str], result: CommitResult
    ) -> Deferred | None:
        """The message is captured (250 sent): capture the notices its bounce- recipients get."""
        bounced = [address for address in recipients if outcome(address) == BOUNCE]
        if not bounced or not sender or not result.maildir_keys:
            return None
        key, arrival = result.maildir_keys[0], time.time()
        d = self._in_thread(self.bounces.send, message_id, sender, bounced, key, arrival)

        def sent(notice: str | None) -> None:
            log.info(
                "sandbox: message {id}: bounce for {rcpts} captured as {key}",
                id=message_id,
                rcpts=",".join(f"<{address}>" for address in bounced),
                key=notice,
            )
            self.notify()

        d.addCallback(sent)
        d.addErrback(
            lambda f: log.failure("sandbox: message {id}: bounce failed", f, id=message_id)
        )
        return d

    def notify(self) -> None:
        """Tell the observers of a delivery into the capture made here, not by the router."""
        for observer in self.observers:
            try:
                observer((self.capture_address,))
            except Exception:
                log.failure("delivery observer failed")
