"""Reading the delivery log back: the records of a time window, from only the files it covers.

Files are named by UTC day, so a window opens only the files of its days; within a file the
lines are in time order and ``time`` sorts as text, so the window's edges are string
comparisons. A line that does not parse (one a crash cut short) is skipped and counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from mailsuite.deliverylog.record import day_of_file, iso_utc

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` (also ``90s``, ``2w``) as a timedelta; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def log_files(directory: Path, since: date | None = None, until: date | None = None) -> list[Path]:
    """The log files of the days from ``since`` to ``until`` (both included), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        day = day_of_file(path.name)
        if day is None or (since and day < since) or (until and day > until):
            continue
        found.append((day, path))
    return [path for _, path in sorted(found)]


@dataclass
class LogReader:
    """The records of ``directory``; ``bad_lines`` counts what could not be read."""

    directory: Path
    bad_lines: int = 0
    files: list[Path] = field(default_factory=list)

    def records(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record with ``since <= time <= until``, in time order."""
        low = iso_utc(since.timestamp()) if since else None
        high = iso_utc(until.timestamp()) if until else None
        self.files = log_files(
            self.directory,
            since.astimezone(UTC).date() if since else None,
            until.astimezone(UTC).date() if until else None,
        )
        for path in self.files:
            yield from self._read(path, low, high)

    def _read(self, path: Path, low: str | None, high: str | None) -> Iterator[dict[str, Any]]:
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # removed by the server's clean-up meanwhile
            return
        with handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    self.bad_lines += 1
                    continue
                when = record.get("time") if isinstance(record, dict) else None
                if not isinstance(when, str) or "event" not in record:
                    self.bad_lines += 1
                    continue
                if (low and when < low) or (high and when > high):
                    continue
                yield record
