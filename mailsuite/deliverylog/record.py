"""What one line of the delivery log holds, and the names of the daily files.

A line is a JSON object: ``time`` (ISO 8601 UTC, milliseconds, ``Z``), ``event`` (the hub's
kind) and the event's fields. Only the kinds in ``FIELDS`` are logged and only the listed
fields are copied, so a field an emitter adds later (a body, a credential) never reaches the
disk by accident. A final failure of a delivery attempt that is a timeout of the queue lifetime
(status 4.x.x, which entry.apply sets to 4.4.7) is written with outcome ``expired``, so a reader
can tell a bounce (the remote refused) from an expiry (nobody could be reached in time).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

PREFIX = "delivery-"
SUFFIX = ".jsonl"
_NAME = re.compile(r"delivery-(\d{4}-\d{2}-\d{2})\.jsonl")

ACCEPTED = "message.accepted"
REJECTED = "message.rejected"
ATTEMPT = "delivery.attempt"
NOTICE = "notice.sent"
REMOVED = "queue.removed"

FIELDS: dict[str, tuple[str, ...]] = {
    ACCEPTED: (
        "id",
        "message_id",
        "role",
        "client",
        "user",
        "sender",
        "recipients",
        "local",
        "queue_id",
        "size",
        "auth",
    ),
    REJECTED: (
        "id",
        "role",
        "client",
        "user",
        "sender",
        "recipients",
        "code",
        "enhanced",
        "reason",
    ),
    ATTEMPT: (
        "queue_id",
        "message_id",
        "sender",
        "recipient",
        "domain",
        "outcome",
        "status",
        "reply",
        "relay",
        "tls",
        "attempts",
        "age",
        "notification",
    ),
    NOTICE: ("queue_id", "message_id", "action", "to", "mailboxes", "queued"),
    REMOVED: ("queue_id", "message_id", "delivered", "failed"),
}
KINDS = frozenset(FIELDS)

# Outcomes of a delivery.attempt line.
DELIVERED = "delivered"
DEFERRED = "deferred"
FAILED = "failed"
EXPIRED = "expired"


def make_record(when: float, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The line for one event (``kind`` in KINDS) that happened at ``when`` (epoch seconds)."""
    record: dict[str, Any] = {"time": iso_utc(when), "event": kind}
    for name in FIELDS[kind]:
        if name in fields:
            record[name] = fields[name]
    if kind == ATTEMPT:
        if isinstance(record.get("age"), float):
            record["age"] = round(record["age"], 3)
        if is_expiry(record):
            record["outcome"] = EXPIRED
    return record


def is_expiry(attempt: dict[str, Any]) -> bool:
    """A final failure with a temporary status: the queue gave up after its lifetime."""
    status = attempt.get("status") or ""
    return attempt.get("outcome") == FAILED and str(status).startswith("4.")


def iso_utc(when: float) -> str:
    """``2026-12-08T10:15:02.123Z``: sorts as text in time order (the reader relies on it)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def day_of(when: float) -> date:
    return datetime.fromtimestamp(when, UTC).date()


def file_name(day: date) -> str:
    return f"{PREFIX}{day.isoformat()}{SUFFIX}"


def day_of_file(name: str) -> date | None:
    """The UTC day a log file covers, from its name; None for any other file."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def domain_of(address: str) -> str:
    """The domain of an address, lower case ("" for the null sender or a bare name)."""
    return address.rpartition("@")[2].lower() if "@" in address else ""
