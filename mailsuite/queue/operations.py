"""Queue operations for ``mailsuite-admin queue`` when no server runs (the admin holds the lock).

They mirror ``QueueScheduler.operate()``, which applies the same requests inside a running
server, and answer with the same ``{"ok": bool, "message": str}`` dictionaries.
"""

from __future__ import annotations

import time
from typing import Any

from mailsuite.queue.bounce import BounceSender
from mailsuite.queue.dsn import FAILED_ACTION
from mailsuite.queue.entry import QueueEntry
from mailsuite.queue.spool import QueueSpool

ADMIN_BOUNCE_TEXT = "message returned to the sender by the administrator"


class OfflineQueue:
    def __init__(self, spool: QueueSpool, bounces: BounceSender | None = None) -> None:
        self.spool = spool
        self.bounces = bounces

    def _load(self, queue_id: str) -> QueueEntry | None:
        try:
            return QueueEntry(self.spool.load(queue_id))
        except FileNotFoundError:
            return None

    def operate(self, operation: str, queue_id: str | None = None) -> dict[str, Any]:
        now = time.time()
        if operation == "flush":
            recipients = entries = 0
            for entry_id in self.spool.list_ids():
                entry = self._load(entry_id)
                if entry is not None and (count := entry.retry_now(now)):
                    self.spool.save(entry.id, entry.to_bytes())
                    recipients += count
                    entries += 1
            message = f"{recipients} recipient(s) in {entries} entr{'y' if entries == 1 else 'ies'}"
            message += " will be tried as soon as the server starts"
            return {"ok": True, "message": message, "recipients": recipients}
        entry = self._load(queue_id or "")
        if entry is None:
            return {"ok": False, "message": f"no queue entry {queue_id}"}
        if operation == "retry":
            count = entry.retry_now(now)
            if not count:
                return {"ok": False, "message": f"{entry.id}: nothing left to retry"}
            self.spool.save(entry.id, entry.to_bytes())
            return {"ok": True, "message": f"{entry.id}: {count} recipient(s) due now"}
        if operation == "delete":
            self.spool.delete(entry.id)
            return {"ok": True, "message": f"{entry.id}: deleted"}
        if operation == "bounce":
            count = entry.fail_all(now, ADMIN_BOUNCE_TEXT)
            self.spool.save(entry.id, entry.to_bytes())
            failures = entry.unnotified_failures()
            if failures and self.bounces is not None:
                self.bounces.notify(entry, FAILED_ACTION, failures, now)
                entry.mark_notified([r["address"] for r in failures])
                self.spool.save(entry.id, entry.to_bytes())
            if entry.finished():
                self.spool.delete(entry.id)
            return {"ok": True, "message": f"{entry.id}: {count} recipient(s) bounced"}
        return {"ok": False, "message": f"unknown operation {operation!r}"}
