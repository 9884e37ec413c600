"""The delivery state of one queue entry and the rules that change it; no I/O, no Twisted.

An entry's envelope (the ``.json`` of the spool) holds one record per recipient:

- ``pending``: never tried; ``deferred``: failed temporarily, ``next_attempt`` says when to retry;
- ``delivered``: a remote server accepted it; ``failed``: permanently refused, or expired.

Attempt details (``last_response``, ``status``, ``remote_mta``...) are kept for ``mailsuite-admin
queue`` and for the delivery status notification. ``notified`` marks failures already reported
to the sender, so a restart never reports them twice. The scheduler and the admin command both
change entries only through these methods, then save the whole envelope atomically.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailsuite.queue.spool import encode_envelope

PENDING = "pending"
DEFERRED = "deferred"
DELIVERED = "delivered"
FAILED = "failed"
STATES = (PENDING, DEFERRED, DELIVERED, FAILED)
ACTIVE = (PENDING, DEFERRED)

# RFC 3463: "delivery time expired".
EXPIRED_STATUS = "4.4.7"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt for one recipient."""

    state: str  # DELIVERED, DEFERRED or FAILED
    status: str  # enhanced status code (RFC 3463), e.g. "5.1.1"
    response: str  # the remote reply ("550 5.1.1 <x>: unknown") or what went wrong locally
    smtp_reply: bool = False  # ``response`` is the remote server's reply (Diagnostic-Code: smtp)
    remote_mta: str | None = None  # host name of the server that answered
    remote_ip: str | None = None
    stage: str | None = None  # the command the reply answered, e.g. "RCPT TO"
    tls: str | None = None  # TLS version of the session, None for plaintext

    @classmethod
    def temporary(cls, status: str, response: str, **details: Any) -> Outcome:
        return cls(DEFERRED, status, response, **details)

    @classmethod
    def permanent(cls, status: str, response: str, **details: Any) -> Outcome:
        return cls(FAILED, status, response, **details)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry ``schedule[n-1]`` seconds after the n-th failed attempt (then the last value), until
    ``lifetime`` seconds after the message arrived; a ``delay_warning`` of 0 sends no notice."""

    schedule: tuple[float, ...] = (60, 300, 900, 1800, 3600)
    lifetime: float = 5 * 86400
    delay_warning: float = 4 * 3600

    def delay(self, failures: int) -> float:
        return self.schedule[min(max(failures, 1), len(self.schedule)) - 1]


class QueueEntry:
    """One envelope, as loaded from the spool, with the operations that change it."""

    def __init__(self, envelope: dict[str, Any]) -> None:
        self.envelope = envelope
        self._by_address = {record["address"]: record for record in envelope["recipients"]}

    @property
    def id(self) -> str:
        return self.envelope["id"]

    @property
    def sender(self) -> str:
        return self.envelope["sender"]

    @property
    def created(self) -> float:
        return epoch(self.envelope["created"])

    @property
    def metadata(self) -> dict[str, Any]:
        return self.envelope.get("metadata") or {}

    @property
    def body_offset(self) -> int:
        """Bytes at the start of the message file (a Return-Path) that are not relayed."""
        return int(self.metadata.get("body_offset", 0))

    @property
    def recipients(self) -> list[dict[str, Any]]:
        return self.envelope["recipients"]

    def record(self, address: str) -> dict[str, Any]:
        return self._by_address[address]

    def expires(self, policy: RetryPolicy) -> float:
        return self.created + policy.lifetime

    def to_bytes(self) -> bytes:
        return encode_envelope(self.envelope)

    def counts(self) -> Counter[str]:
        return Counter(record["state"] for record in self.recipients)

    # --- scheduling ---------------------------------------------------------------------------

    def active(self) -> list[dict[str, Any]]:
        return [r for r in self.recipients if r["state"] in ACTIVE]

    def due(self, now: float) -> list[str]:
        """Addresses whose next attempt has come."""
        return [r["address"] for r in self.active() if epoch(r["next_attempt"]) <= now]

    def next_due(self) -> float | None:
        times = [epoch(r["next_attempt"]) for r in self.active()]
        return min(times) if times else None

    def apply(self, address: str, outcome: Outcome, now: float, policy: RetryPolicy) -> None:
        """Record one attempt. A temporary failure after the lifetime becomes a failure."""
        record = self._by_address[address]
        record["attempts"] = record.get("attempts", 0) + 1
        record["last_attempt"] = iso(now)
        record["last_response"] = outcome.response
        record["status"] = outcome.status
        record["smtp_reply"] = outcome.smtp_reply
        record["remote_mta"] = outcome.remote_mta
        record["remote_ip"] = outcome.remote_ip
        record["stage"] = outcome.stage
        record["tls"] = outcome.tls
        state = outcome.state
        if state == DEFERRED:
            expires = self.expires(policy)
            if now >= expires:
                state = FAILED
                record["status"] = EXPIRED_STATUS
                record["expired"] = True
            else:
                wait = policy.delay(record["attempts"])
                record["next_attempt"] = iso(min(now + wait, expires))
        record["state"] = state

    def retry_now(self, now: float) -> int:
        """Make every pending or deferred recipient due at once; returns how many."""
        active = self.active()
        for record in active:
            record["next_attempt"] = iso(now)
        return len(active)

    def fail_all(self, now: float, response: str, status: str = "5.0.0") -> int:
        """Fail every recipient not yet delivered or failed (an operator's bounce)."""
        active = self.active()
        for record in active:
            record.update(
                state=FAILED,
                status=status,
                last_response=response,
                last_attempt=iso(now),
                smtp_reply=False,
                remote_mta=None,
                stage=None,
            )
        return len(active)

    # --- notifications --------------------------------------------------------------------------

    def unnotified_failures(self) -> list[dict[str, Any]]:
        """Failed recipients the sender has not been told about (never for a null sender)."""
        if not self.sender:
            return []
        return [r for r in self.recipients if r["state"] == FAILED and not r.get("notified")]

    def mark_notified(self, addresses: list[str]) -> None:
        for address in addresses:
            self._by_address[address]["notified"] = True

    def delay_notice_due(self, now: float, policy: RetryPolicy) -> list[dict[str, Any]]:
        """Deferred recipients to mention in the one "delayed" notice, when it is time for it."""
        if (
            not self.sender
            or policy.delay_warning <= 0
            or self.envelope.get("delay_notified")
            or now < self.created + policy.delay_warning
        ):
            return []
        return [r for r in self.recipients if r["state"] == DEFERRED]

    def mark_delay_notified(self) -> None:
        self.envelope["delay_notified"] = True

    def finished(self) -> bool:
        """Nothing left to try and nothing left to report: the entry can be removed."""
        return not self.active() and not self.unnotified_failures()
