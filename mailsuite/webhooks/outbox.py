"""Webhook calls not yet made, one file each, under ``<data>/webhooks/outbox/``.

A file holds the exact JSON body to POST; its name says the rest: ``<event time in ms>-<webhook
id>-<random>.json``, so a restart lists the outbox without reading it. A file is written once
(atomically; the directory is synced once per batch) and removed when the receiver has answered
2xx, when the call is given up, or when its webhook is gone. Retry times are not stored: after a
restart every call is tried again at once, and the backoff starts over.

Blocking (fsync, directory listing): call it in a worker thread.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mailsuite.safeio import fsync_dir, makedirs_durable, write_file_atomic

_NAME = re.compile(r"(\d{13})-(\d+)-[0-9a-f]{16}\.json\Z")


@dataclass
class OutboxItem:
    """One pending call; ``attempts`` and ``due`` live in memory only."""

    name: str
    webhook: int
    created: float  # the event's time, seconds
    attempts: int = 0
    due: float = 0.0


def parse_name(name: str) -> OutboxItem | None:
    match = _NAME.match(name)
    if match is None:
        return None
    return OutboxItem(name, int(match[2]), int(match[1]) / 1000)


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            makedirs_durable(self.directory)
            self._ready = True

    def add(self, webhook: int, body: bytes, created: float) -> OutboxItem:
        """Write one call (durable once ``sync()`` has run)."""
        self._ensure()
        name = f"{int(created * 1000):013d}-{webhook}-{secrets.token_hex(8)}.json"
        write_file_atomic(self.directory / name, body, sync_dir=False)
        return OutboxItem(name, webhook, int(created * 1000) / 1000)

    def sync(self) -> None:
        """Make the names of the calls added so far durable (one fsync for a batch)."""
        if self._ready:
            fsync_dir(self.directory)

    def scan(self) -> list[OutboxItem]:
        """Every call in the outbox, oldest first (at start-up)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        for name in names:  # a write a crash interrupted (never a call: renamed only when whole)
            if name.startswith(".") and name.endswith(".tmp"):
                (self.directory / name).unlink(missing_ok=True)
        items = [item for item in map(parse_name, names) if item is not None]
        return sorted(items, key=lambda item: item.name)

    def body(self, name: str) -> bytes | None:
        """The body of a call, None if it is gone."""
        if parse_name(name) is None:
            raise ValueError(f"not an outbox name: {name!r}")
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        if parse_name(name) is None:
            raise ValueError(f"not an outbox name: {name!r}")
        (self.directory / name).unlink(missing_ok=True)
