"""The durable outbound queue on disk: one message file and one envelope per entry.

Layout in ``queue_dir``: ``<id>.eml`` (the message, hard-linked from the incoming spool when
possible) and ``<id>.json`` (envelope and per-recipient delivery state). The envelope is written
last, atomically, and is the commit marker: an ``.eml`` without its ``.json`` is an entry whose
enqueue never finished (never acknowledged), and ``recover()`` deletes it.

Every later change of delivery state rewrites the whole envelope with ``save()`` (temp file,
fsync, rename, directory fsync), so a crash leaves either the old state or the new one. A finished
entry is removed envelope first: a leftover ``.eml`` is then recognised by ``recover()``.
All methods block on the disk: the server calls them in worker threads.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailsuite.safeio import (
    copy_file_synced,
    fsync_dir,
    makedirs_durable,
    write_file_atomic,
)

_ID_RE = re.compile(r"[0-9a-f]{12}-[0-9a-f]{16}")
_NO_LINK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}

LinkFunction = Callable[[Path, Path], None]


def new_queue_id() -> str:
    """``<unix ms, 12 hex>-<64 random bits>``: sorts by creation time, safe as a file name."""
    return f"{time.time_ns() // 1_000_000:012x}-{secrets.token_hex(8)}"


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """The on-disk form of an envelope (UTF-8 JSON); cheap enough for the reactor thread."""
    return json.dumps(envelope, indent=1, ensure_ascii=False).encode() + b"\n"


def is_queue_id(text: str) -> bool:
    return _ID_RE.fullmatch(text) is not None


def _check_id(queue_id: str) -> str:
    if not _ID_RE.fullmatch(queue_id):
        raise ValueError(f"not a queue id: {queue_id!r}")
    return queue_id


class QueueSpool:
    """Durable storage of queue entries; safe to share between threads."""

    def __init__(self, queue_dir: Path, *, link: LinkFunction = os.link) -> None:
        """``link`` exists so tests can force the copy fallback without patching ``os``."""
        self._dir = Path(queue_dir)
        self._link = link
        self._dir_ready = False

    @property
    def queue_dir(self) -> Path:
        return self._dir

    def _ensure_dir(self) -> None:
        if not self._dir_ready:
            makedirs_durable(self._dir)
            self._dir_ready = True

    def message_path(self, queue_id: str) -> Path:
        return self._dir / f"{_check_id(queue_id)}.eml"

    def envelope_path(self, queue_id: str) -> Path:
        return self._dir / f"{_check_id(queue_id)}.json"

    def enqueue_file(
        self,
        source: Path,
        sender: str,
        recipients: list[str],
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Queue the fsync'ed file ``source`` for ``recipients``; durable on return. Returns the id.

        ``sender`` may be "" (a bounce). Runs in a worker thread: it fsyncs.
        """
        if not recipients:
            raise ValueError("enqueue_file() needs at least one recipient")
        self._ensure_dir()
        now = datetime.now(UTC)
        queue_id = new_queue_id()
        message = self.message_path(queue_id)
        try:
            self._link(source, message)
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            copy_file_synced(source, message)
        try:
            # The message's name must be durable before the envelope that points to it can be.
            fsync_dir(self._dir)
            created = now.isoformat(timespec="milliseconds")
            envelope = {
                "id": queue_id,
                "sender": sender,
                "created": created,
                "metadata": metadata or {},
                "recipients": [
                    {
                        "address": address,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt": created,
                        "last_response": None,
                    }
                    for address in recipients
                ],
            }
            write_file_atomic(self.envelope_path(queue_id), encode_envelope(envelope))
        except BaseException:
            self.envelope_path(queue_id).unlink(missing_ok=True)
            message.unlink(missing_ok=True)
            raise
        return queue_id

    def list_ids(self) -> list[str]:
        """Ids of committed entries (those with an envelope), oldest first."""
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return sorted(
            name[:-5] for name in names if name.endswith(".json") and _ID_RE.fullmatch(name[:-5])
        )

    def load(self, queue_id: str) -> dict[str, Any]:
        """The envelope of entry ``queue_id``."""
        with open(self.envelope_path(queue_id), "rb") as fh:
            return json.load(fh)

    def save(self, queue_id: str, data: bytes) -> bool:
        """Atomically replace the envelope of ``queue_id`` with ``data`` (see encode_envelope).

        Returns False, writing nothing, when the entry no longer exists (it was deleted): a late
        state change must never resurrect an envelope whose message is gone.
        """
        if not self.message_path(queue_id).exists():
            return False
        write_file_atomic(self.envelope_path(queue_id), data)
        return True

    def delete(self, queue_id: str) -> bool:
        """Remove entry ``queue_id`` durably; False if it did not exist."""
        envelope = self.envelope_path(queue_id)
        try:
            envelope.unlink()
        except FileNotFoundError:
            existed = False
        else:
            existed = True
        self.message_path(queue_id).unlink(missing_ok=True)
        if existed:
            fsync_dir(self._dir)
        return existed

    def recover(self) -> list[str]:
        """Delete what an interrupted enqueue left behind; returns the ids of removed entries.

        Call at startup, before anything enqueues: a message without its envelope was never
        acknowledged, and hidden ``*.tmp`` files are unfinished envelope writes.
        """
        try:
            names = set(os.listdir(self._dir))
        except FileNotFoundError:
            return []
        removed: list[str] = []
        for name in sorted(names):
            path = self._dir / name
            if name.startswith(".") and name.endswith(".tmp"):
                path.unlink(missing_ok=True)
            elif name.endswith(".eml") and f"{name[:-4]}.json" not in names:
                path.unlink(missing_ok=True)
                removed.append(name[:-4])
        if removed:
            fsync_dir(self._dir)
        return removed
