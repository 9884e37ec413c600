"""The delivery status of an API message, recipient by recipient.

Local mailboxes were delivered at the commit (the 202 came after it). Remote recipients are
read from the queue entry while it exists (pending, deferred, delivered, failed, with the last
reply); once the queue has finished with the entry and removed it, what became of each is no
longer known here unless a ``history(queue_id, address)`` is given (a delivery log).

Blocking (reads the queue envelope): call it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailsuite.queue.entry import ACTIVE
from mailsuite.queue.spool import QueueSpool

NO_LONGER_QUEUED = "unknown (no longer queued)"

History = Callable[[str, str], "dict[str, Any] | None"]


def _queued(record: dict[str, Any]) -> dict[str, Any]:
    state = record.get("state")
    return {
        "recipient": record["address"],
        "state": state,
        "status": record.get("status"),
        "reply": record.get("last_response"),
        "attempts": record.get("attempts", 0),
        "last_attempt": record.get("last_attempt"),
        "next_attempt": record.get("next_attempt") if state in ACTIVE else None,
        "local": False,
    }


def delivery_status(
    sent: dict[str, Any], queue: QueueSpool, history: History | None = None
) -> dict[str, Any]:
    """The answer of GET /api/v1/messages/<id> for the stored record ``sent``."""
    recipients = [
        {"recipient": box, "state": "delivered", "status": "2.0.0", "local": True}
        for box in sent.get("local", [])
    ]
    queue_id = sent.get("queue_id")
    entries: dict[str, dict[str, Any]] = {}
    if queue_id:
        try:
            envelope = queue.load(queue_id)
        except (FileNotFoundError, ValueError):
            envelope = None
        if envelope is not None:
            entries = {r["address"]: r for r in envelope.get("recipients", [])}
    for address in sent.get("remote", []):
        if address in entries:
            recipients.append(_queued(entries[address]))
            continue
        known = history(queue_id, address) if history is not None and queue_id else None
        recipients.append(
            known
            if known is not None
            else {"recipient": address, "state": NO_LONGER_QUEUED, "local": False}
        )
    return {
        "id": sent["id"],
        "message_id": sent.get("message_id", ""),
        "queue_id": queue_id,
        "created": sent.get("created"),
        "recipients": recipients,
    }
