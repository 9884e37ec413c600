"""How ``mailsuite-admin queue`` and a running server share the queue without a conflict.

A running server owns its queue: it holds an exclusive ``flock`` on ``<queue>/control/lock`` and
is the only writer of entries. The admin command tries the same lock:

- it gets it: no server runs; the command changes the spool itself, holding the lock;
- it does not: it drops a request file into ``<queue>/control/`` (written atomically) and waits
  for the server's answer file. The server polls that directory a few times a second, applies
  the request between deliveries, and answers once the change is durable.

Read-only commands (``list``, ``show``) just read the envelopes: they are replaced atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from mailsuite.safeio import write_file_atomic

CONTROL_DIR = "control"
REQUEST_SUFFIX = ".request"
ANSWER_SUFFIX = ".answer"
# Answers nobody collected (the admin command gave up waiting) are removed after this long.
STALE_ANSWER_SECONDS = 3600.0


class QueueLocked(Exception):
    """Another process (a running server) holds the queue."""


class QueueLock:
    """The exclusive lock of a queue directory; held by a running server for its lifetime."""

    def __init__(self, queue_dir: Path) -> None:
        self.path = Path(queue_dir) / CONTROL_DIR / "lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process has it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire_waiting(self, timeout: float, interval: float = 0.05) -> bool:
        """Retry for up to ``timeout`` seconds (an admin command may hold it briefly)."""
        deadline = time.monotonic() + timeout
        while not self.acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None


class ControlChannel:
    """Request and answer files under ``<queue>/control/``."""

    def __init__(self, queue_dir: Path) -> None:
        self.dir = Path(queue_dir) / CONTROL_DIR

    # --- the admin side -----------------------------------------------------------------------

    def request(
        self, operation: str, queue_id: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Ask the running server to do ``operation``; its answer, or TimeoutError."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():x}-{secrets.token_hex(6)}"
        body = json.dumps({"operation": operation, "id": queue_id}).encode()
        write_file_atomic(self.dir / (name + REQUEST_SUFFIX), body, sync_dir=False)
        answer = self.dir / (name + ANSWER_SUFFIX)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = answer.read_bytes()
            except FileNotFoundError:
                time.sleep(0.02)
                continue
            answer.unlink(missing_ok=True)
            return json.loads(data)
        (self.dir / (name + REQUEST_SUFFIX)).unlink(missing_ok=True)
        raise TimeoutError(
            f"the running server did not answer within {timeout:g} seconds "
            "(it applies the request as soon as it can, unless the request was withdrawn)"
        )

    # --- the server side ----------------------------------------------------------------------

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """Requests waiting, oldest first, as (name, request); unreadable ones are answered."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        requests = []
        now = time.time()
        for filename in names:
            path = self.dir / filename
            if filename.endswith(ANSWER_SUFFIX):
                try:
                    if now - path.stat().st_mtime > STALE_ANSWER_SECONDS:
                        path.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                continue
            if not filename.endswith(REQUEST_SUFFIX) or filename.startswith("."):
                continue
            name = filename[: -len(REQUEST_SUFFIX)]
            try:
                request = json.loads(path.read_bytes())
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except FileNotFoundError:
                continue  # withdrawn
            except ValueError as exc:
                self.answer(name, {"ok": False, "message": f"unreadable request: {exc}"})
                continue
            requests.append((name, request))
        return requests

    def answer(self, name: str, result: dict[str, Any]) -> None:
        write_file_atomic(
            self.dir / (name + ANSWER_SUFFIX), json.dumps(result).encode(), sync_dir=False
        )
        (self.dir / (name + REQUEST_SUFFIX)).unlink(missing_ok=True)
