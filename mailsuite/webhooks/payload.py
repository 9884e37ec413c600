"""From the event hub's events to webhook outcomes, and the JSON a receiver gets.

``delivery.attempt`` (the queue tried a remote recipient) gives one outcome: delivered,
deferred, or bounced (the queue's "failed": refused for good, or expired). ``message.accepted``
gives "delivered" for each local mailbox (the commit put it there). Attempts at delivering the
server's own delivery notices (bounces) are left out: nobody sent them.

The body, one JSON object::

    {"event": "delivered" | "deferred" | "bounced",
     "id": the server's id of the message (the send API's "id", the "id" of Received:),
     "event_id": unique per outcome (a retried call repeats it: receivers drop duplicates),
     "queue_id": its queue entry (null when it went to local mailboxes only),
     "message_id": its Message-ID header ("" when not known),
     "recipient": the address, "outcome": "delivered" | "deferred" | "failed",
     "status": the enhanced status code, "reply": the receiving server's reply (or ours),
     "time": when it happened (ISO 8601, UTC)}
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EVENT_OF_OUTCOME = {"delivered": "delivered", "deferred": "deferred", "failed": "bounced"}
LOCAL_REPLY = "delivered to the local mailbox"


@dataclass(frozen=True)
class MessageFacts:
    """What message.accepted told about a message, kept for its queue's later attempts."""

    id: str
    message_id: str
    user: str  # the authenticated sender ("": none, mail from the MX)


@dataclass(frozen=True)
class Outcome:
    event: str
    id: str
    queue_id: str | None
    message_id: str
    recipient: str
    outcome: str
    status: str | None
    reply: str | None
    time: float
    sender: str
    # Who sent it: a user, "" when nobody logged in (the MX), None when unknown here (the
    # message was queued before a restart: per-user webhooks ask who owns ``sender``).
    user: str | None
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def body(self) -> bytes:
        return json.dumps(
            {
                "event": self.event,
                "id": self.id,
                "event_id": self.event_id,
                "queue_id": self.queue_id,
                "message_id": self.message_id,
                "recipient": self.recipient,
                "outcome": self.outcome,
                "status": self.status,
                "reply": self.reply,
                "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds"),
            },
            ensure_ascii=False,
        ).encode("utf-8")


def from_accepted(fields: dict[str, Any], now: float) -> list[Outcome]:
    """A "delivered" per local mailbox of an accepted message."""
    return [
        Outcome(
            "delivered",
            fields.get("id", ""),
            fields.get("queue_id"),
            fields.get("message_id", ""),
            mailbox,
            "delivered",
            "2.0.0",
            LOCAL_REPLY,
            now,
            fields.get("sender", ""),
            fields.get("user") or "",
        )
        for mailbox in fields.get("local") or ()
    ]


def _looks_like_server_id(text: str) -> bool:
    return len(text) == 16 and all(ch in "0123456789ABCDEF" for ch in text)


def from_attempt(fields: dict[str, Any], facts: MessageFacts | None, now: float) -> list[Outcome]:
    """The outcome of one queue attempt (none for the server's own notices)."""
    event = EVENT_OF_OUTCOME.get(fields.get("outcome", ""))
    if event is None or fields.get("notification"):
        return []
    if facts is None:
        # Not seen accepted by this process (it was queued before a restart): the hub's
        # message_id is the queue's record of the message, the server id or a Message-ID.
        told = fields.get("message_id") or ""
        server_id = told if _looks_like_server_id(told) else ""
        return [_attempt(fields, event, server_id, "" if server_id else told, None, now)]
    return [_attempt(fields, event, facts.id, facts.message_id, facts.user, now)]


def _attempt(
    fields: dict[str, Any], event: str, ident: str, message_id: str, user: str | None, now: float
) -> Outcome:
    return Outcome(
        event,
        ident,
        fields.get("queue_id"),
        message_id,
        fields.get("recipient", ""),
        fields["outcome"],
        fields.get("status"),
        fields.get("reply"),
        now,
        fields.get("sender", ""),
        user,
    )
