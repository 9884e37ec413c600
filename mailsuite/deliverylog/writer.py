"""Writing the delivery log: a hub listener that buffers, and a thread that writes and fsyncs.

The listener runs in whatever thread emits (the reactor, the commit thread, queue workers), so
it only copies the event into a list under a lock. The writer thread takes the list about once
a second (or as soon as ``batch`` events wait), appends the lines to the file of each event's
UTC day and fsyncs once per batch: a crash loses at most the last second. The buffer is
bounded: when the disk stops keeping up, new events are dropped and counted, and the count is
logged as a warning, so a dead disk never grows the server's memory.

Files are named by day, so rotation is opening the next name; when a new day's file is opened
(and at start) the files older than ``keep_days`` days before it are deleted.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from mailsuite.deliverylog.record import KINDS, day_of, day_of_file, file_name, make_record
from mailsuite.safeio import fsync_dir, makedirs_durable, write_all

log = Logger(namespace="mailsuite.deliverylog")

INTERVAL = 1.0  # seconds between batches: what a crash may lose
BATCH = 512  # events that wake the writer before the interval is up
MAX_BUFFERED = 100_000  # events held while the disk is slow; beyond, events are dropped
CLOSE_TIMEOUT = 30.0  # how long stopping waits for a stuck disk before giving up
FILE_MODE = 0o640  # addresses are personal data: not world-readable

_Event = tuple[float, str, dict[str, Any]]


class DeliveryLogWriter:
    """Subscribe the instance to the hub (it is the listener); ``start()`` with the server,
    ``close()`` (blocking: call it in a thread) when it stops, which writes every event first."""

    def __init__(
        self,
        directory: Path,
        keep_days: int,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
        max_buffered: int = MAX_BUFFERED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.keep_days = keep_days
        self.interval = interval
        self.batch = batch
        self.max_buffered = max_buffered
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Event] = []
        self._appended = 0  # events ever buffered
        self._done = 0  # of those, how many were written (or lost to a write error)
        self._flush_wanted = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.dropped = 0  # events refused because the buffer was full
        self._dropped_unreported = 0
        self.lost = 0  # events taken by the writer but not written (an I/O error)
        # The writer thread's own state.
        self._fd: int | None = None
        self._day: date | None = None

    @classmethod
    def from_config(cls, config: Any) -> DeliveryLogWriter:
        return cls(config.log_dir, config.log.keep_days)

    # --- the listener (any thread) ------------------------------------------------------------

    def __call__(self, kind: str, fields: dict[str, Any]) -> None:
        if kind not in KINDS:
            return
        event = (self._clock(), kind, dict(fields))
        with self._cond:
            if len(self._pending) >= self.max_buffered:
                self.dropped += 1
                self._dropped_unreported += 1
                return
            self._pending.append(event)
            self._appended += 1
            if len(self._pending) == self.batch:
                self._cond.notify_all()

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread (again, after a close: tests restart servers)."""
        if self.running:
            return
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mailsuite-deliverylog", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Write and fsync every event buffered so far; False if that took over ``timeout``."""
        with self._cond:
            target = self._appended
            self._flush_wanted = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write everything buffered, close the file, end the thread (blocks)."""
        thread = self._thread
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warn(
                "delivery log: the writer is stuck (a dead disk?); {count} events not written",
                count=len(self._pending),
            )

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._remove_old(day_of(self._clock()))
        except OSError:
            log.failure("delivery log: could not clean up {path}", path=str(self.directory))
        while True:
            with self._cond:
                self._cond.wait_for(self._wanted, self.interval)
                events, self._pending = self._pending, []
                dropped, self._dropped_unreported = self._dropped_unreported, 0
                stopping = self._stopping
                self._flush_wanted = False
                target = self._appended
            if dropped:
                log.warn(
                    "delivery log: dropped {count} events: the disk does not keep up "
                    "({total} dropped since start)",
                    count=dropped,
                    total=self.dropped,
                )
            if events:
                self._write(events)
            with self._cond:
                self._done = target
                self._cond.notify_all()
            if stopping:
                break
        self._close_file()

    def _wanted(self) -> bool:
        return self._stopping or self._flush_wanted or len(self._pending) >= self.batch

    def _write(self, events: list[_Event]) -> None:
        """Append the events to their days' files, then fsync each file written once."""
        written: list[int] = []
        try:
            chunk: list[bytes] = []
            day: date | None = None
            for when, kind, fields in events:
                event_day = day_of(when)
                if event_day != day and chunk:
                    written.append(self._append(day, b"".join(chunk)))
                    chunk = []
                day = event_day
                chunk.append(_line(make_record(when, kind, fields)))
            if chunk and day is not None:
                written.append(self._append(day, b"".join(chunk)))
            for fd in dict.fromkeys(written):
                if fd == self._fd:  # an older day's file was closed (and fsync'ed) already
                    os.fsync(fd)
        except Exception:  # a full or dead disk; never let it end the thread
            self.lost += len(events)
            log.failure(
                "delivery log: could not write {count} events to {path}",
                count=len(events),
                path=str(self.directory),
            )
            self._close_file()  # reopened (and repaired) with the next batch

    def _append(self, day: date, data: bytes) -> int:
        fd = self._file_for(day)
        write_all(fd, data)
        return fd

    def _file_for(self, day: date) -> int:
        """The open file of ``day``; a new day closes the old one and removes expired files."""
        if self._fd is not None and self._day == day:
            return self._fd
        self._close_file()
        makedirs_durable(self.directory)
        path = self.directory / file_name(day)
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            _end_torn_line(fd)
            if not existed:
                fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            raise
        newer = self._day is None or day > self._day
        self._fd, self._day = fd, day
        if newer and not existed:
            self._remove_old(day)
        return fd

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError:
            log.failure("delivery log: fsync failed on close")
        finally:
            os.close(fd)

    def _remove_old(self, today: date) -> None:
        removed = remove_old_files(self.directory, today, self.keep_days)
        if removed:
            log.info(
                "delivery log: removed {count} files older than {days} days",
                count=len(removed),
                days=self.keep_days,
            )


def remove_old_files(directory: Path, today: date, keep_days: int) -> list[Path]:
    """Delete the log files of days before ``today - keep_days``; returns them."""
    if not directory.is_dir():
        return []
    oldest = today - timedelta(days=keep_days)
    removed = []
    for path in directory.iterdir():
        day = day_of_file(path.name)
        if day is not None and day < oldest:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _line(record: dict[str, Any]) -> bytes:
    """One JSON line; text that is no valid UTF-8 (lone surrogates) falls back to \\u escapes."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":"), default=str).encode("ascii") + b"\n"


def _end_torn_line(fd: int) -> None:
    """A crash may have cut the file's last line: end it, so the next line parses."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        write_all(fd, b"\n")
