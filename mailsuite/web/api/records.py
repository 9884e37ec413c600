"""What the API remembers of each message it accepted, for ``GET /api/v1/messages/<id>``.

One small JSON file per message under ``<data>/api/messages/``: whose it is (only that user's
keys may ask), its queue entry, where it was delivered locally. The queue keeps the delivery
state while an entry lives; this record is what is left to look it up by. Records older than
KEEP_DAYS are deleted, at most once an hour, by the thread that writes a new one.

Blocking (fsync): call it in a worker thread.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from mailsuite.safeio import makedirs_durable, write_file_atomic

KEEP_DAYS = 30
PRUNE_EVERY = 3600.0
_ID = re.compile(r"[0-9A-F]{16}\Z")

log = Logger(namespace="mailsuite.api")


def is_message_id(text: str) -> bool:
    return _ID.match(text) is not None


class SentRecords:
    def __init__(self, directory: Path, keep_days: float = KEEP_DAYS) -> None:
        self.directory = Path(directory)
        self.keep = keep_days * 86400
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._ready = False

    def _path(self, message_id: str) -> Path:
        if not is_message_id(message_id):
            raise ValueError(f"not a message id: {message_id!r}")
        return self.directory / f"{message_id}.json"

    def save(self, record: dict[str, Any]) -> None:
        if not self._ready:
            makedirs_durable(self.directory)
            self._ready = True
        data = json.dumps(record, ensure_ascii=False).encode("utf-8")
        write_file_atomic(self._path(record["id"]), data)
        self._maybe_prune()

    def load(self, message_id: str) -> dict[str, Any] | None:
        if not is_message_id(message_id):
            return None
        try:
            with open(self._path(message_id), "rb") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None

    def _maybe_prune(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_prune < PRUNE_EVERY:
                return
            self._last_prune = now
        try:
            removed = self.prune(now)
        except OSError:
            log.failure("pruning old API message records failed")
            return
        if removed:
            log.info(
                "removed {count} API message records past {days} days",
                count=removed,
                days=self.keep / 86400,
            )

    def prune(self, now: float) -> int:
        """Delete records older than the keep time; returns how many."""
        removed = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if not entry.name.endswith(".json"):
                    continue
                try:
                    if now - entry.stat().st_mtime > self.keep:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed
