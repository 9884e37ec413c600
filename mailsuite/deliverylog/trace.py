"""Following messages through the delivery log: which records belong to the one(s) asked for.

A message is found by our id (the 16 hex digits in Received and in ``message.accepted``), by
queue id, by Message-ID (with or without <>), or by an address it was from or to. One pass over
the records in time order: an ``accepted`` record that matches starts a message and ties its
queue id to it; every later record with that queue id joins it, and so does every record of the
notice sent for it (``notice.sent``'s ``queued``), so a bounce's own delivery shows in the same
trace. Queue records whose acceptance is older than the files read start a message of their own.

Message-IDs usually look like addresses: text with an @ and no <> is tried as a Message-ID
first, and only when no message has it, as an address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mailsuite.deliverylog.record import ACCEPTED, ATTEMPT, NOTICE, REJECTED, REMOVED
from mailsuite.queue.spool import is_queue_id

LIMIT = 20
_OUR_ID = re.compile(r"[0-9A-Fa-f]{16}")

BY_ID, BY_QUEUE_ID, BY_MESSAGE_ID, BY_ADDRESS = "id", "queue id", "Message-ID", "address"


@dataclass
class MessageTrace:
    """One message and its records, in time order."""

    matched_by: str
    id: str | None = None
    message_id: str = ""
    sender: str | None = None
    queue_ids: list[str] = field(default_factory=list)
    notice_queue_ids: list[str] = field(default_factory=list)  # the notices' own queue entries
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def started(self) -> str:
        return self.events[0]["time"] if self.events else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "sender": self.sender,
            "queue_ids": self.queue_ids,
            "notice_queue_ids": self.notice_queue_ids,
            "matched_by": self.matched_by,
            "events": self.events,
        }


class Query:
    """What ``text`` can be, and whether a record is about it."""

    def __init__(self, text: str) -> None:
        text = text.strip()
        bare = text[1:-1] if text.startswith("<") and text.endswith(">") else text
        self.text = text
        self.our_id = text.upper() if _OUR_ID.fullmatch(text) else None
        self.queue_id = text.lower() if is_queue_id(text.lower()) else None
        plain = bare == text
        self.address = bare.lower() if "@" in bare and plain else None
        self.message_id = bare if not plain or not (self.our_id or self.queue_id) else None

    def message(self, record: dict[str, Any]) -> str | None:
        """How an accepted or rejected record matches (BY_*), or None."""
        if self.our_id and str(record.get("id") or "").upper() == self.our_id:
            return BY_ID
        if self.queue_id and record.get("queue_id") == self.queue_id:
            return BY_QUEUE_ID
        if self.message_id and _bare(record.get("message_id")) == self.message_id:
            return BY_MESSAGE_ID
        if self.address and self.address in _addresses(record, "sender", "recipients", "local"):
            return BY_ADDRESS
        return None

    def queue_record(self, record: dict[str, Any]) -> str | None:
        """How a record of the queue (attempt, notice, removal) matches, or None."""
        if self.queue_id and self.queue_id in (record.get("queue_id"), record.get("queued")):
            return BY_QUEUE_ID
        reference = record.get("message_id")
        if reference:
            if self.our_id and str(reference).upper() == self.our_id:
                return BY_ID
            if self.message_id and _bare(reference) == self.message_id:
                return BY_MESSAGE_ID
        if self.address and self.address in _addresses(record, "sender", "recipient", "to"):
            return BY_ADDRESS
        return None


def trace(records: Iterable[dict[str, Any]], text: str, limit: int = LIMIT) -> list[MessageTrace]:
    """The messages ``text`` names, most recent first, at most ``limit`` of them."""
    query = Query(text)
    messages: list[MessageTrace] = []
    by_queue: dict[str, MessageTrace] = {}
    for record in records:
        event = record.get("event")
        queue_id = record.get("queue_id")
        if event in (ACCEPTED, REJECTED):
            how = query.message(record)
            if how is None:
                continue
            message = MessageTrace(
                how, record.get("id"), str(record.get("message_id") or ""), record.get("sender")
            )
            messages.append(message)
            if queue_id:
                message.queue_ids.append(queue_id)
                by_queue[queue_id] = message
        elif event in (ATTEMPT, NOTICE, REMOVED):
            message = by_queue.get(queue_id) if queue_id else None
            if message is None:
                how = query.queue_record(record)
                if how is None:
                    continue
                message = MessageTrace(how, sender=record.get("sender"))
                message.queue_ids.append(queue_id)
                messages.append(message)
                by_queue[queue_id] = message
            if event == NOTICE and record.get("queued"):
                message.notice_queue_ids.append(record["queued"])
                by_queue[record["queued"]] = message
        else:
            continue
        message.events.append(record)
    if any(m.matched_by == BY_MESSAGE_ID for m in messages):
        messages = [m for m in messages if m.matched_by != BY_ADDRESS]
    messages.sort(key=lambda m: m.started, reverse=True)
    return messages[:limit]


def describe(message: MessageTrace, record: dict[str, Any]) -> list[tuple[str, str]]:
    """What one record says, as (what happened, details) lines of text."""
    event = record.get("event")
    if event == ACCEPTED:
        parts = [f"{len(record.get('recipients') or [])} recipients, {record.get('size')} bytes"]
        parts.append(f"via {record.get('role')} from {record.get('client')}")
        if record.get("user"):
            parts.append(f"user {record['user']}")
        if record.get("queue_id"):
            parts.append(f"queue {record['queue_id']}")
        local = [("local", f"delivered to {box}") for box in record.get("local") or []]
        return [("accepted", ", ".join(parts)), *local]
    if event == REJECTED:
        text = f"{record.get('code')} {record.get('enhanced')} {record.get('reason')}"
        return [("rejected", f"{text} (from {record.get('client')})")]
    if event == ATTEMPT:
        label = str(record.get("outcome"))
        if record.get("queue_id") in message.notice_queue_ids:
            label = f"notice {label}"
        relay = f" via {record['relay']}" if record.get("relay") else ""
        tls = f" {record['tls']}" if record.get("tls") else ""
        detail = (
            f"{record.get('recipient')}{relay}{tls}: {record.get('status')} "
            f'"{record.get("reply")}" (attempt {record.get("attempts")}, '
            f"after {_seconds(record.get('age'))})"
        )
        return [(label, detail)]
    if event == NOTICE:
        where = []
        if record.get("mailboxes"):
            where.append("delivered to " + ", ".join(record["mailboxes"]))
        if record.get("queued"):
            where.append(f"queued as {record['queued']}")
        text = f"{record.get('action')} notice to <{record.get('to')}>"
        return [("notice", f"{text} ({'; '.join(where)})" if where else text)]
    if event == REMOVED:
        notice = record.get("queue_id") in message.notice_queue_ids
        label = "notice removed" if notice else "removed"
        counts = f"{record.get('delivered')} delivered, {record.get('failed')} failed"
        return [(label, f"from the queue ({record.get('queue_id')}): {counts}")]
    return [(str(event), "")]


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def _bare(value: Any) -> str:
    text = str(value or "").strip()
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text


def _addresses(record: dict[str, Any], *names: str) -> set[str]:
    found = set()
    for name in names:
        value = record.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item:
                found.add(item.lower())
    return found
