"""CPU time and memory of a server's whole process tree, read from /proc.

Postfix is a dozen short-lived processes, mailsuite one process with threads: summing over the
tree (and over reaped children, which /proc books to their parent's cutime/cstime) is the only
way the two are comparable.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def tree(roots: Iterable[int]) -> list[int]:
    """``roots`` and all their living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid for pid in roots if os.path.exists(f"/proc/{pid}")]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_times(roots: Iterable[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the tree, including children it has already reaped."""
    user = system = 0
    for pid in tree(roots):
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 of stat(5); fields[0] is field 3.
            utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
            user += utime + cutime
            system += stime + cstime
    return user / _TICKS, system / _TICKS


def cpu_seconds(roots: Iterable[int]) -> float:
    """User + system CPU of the tree."""
    return sum(cpu_times(roots))


def pss_bytes(roots: Iterable[int]) -> int:
    """Proportional set size of the tree (shared pages split between their users)."""
    total = 0
    for pid in tree(roots):
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue  # the process exited between the scan and the read
    return total


class PeakPSS:
    """Samples the tree's PSS in a background thread until stopped; keeps the peak."""

    def __init__(self, roots: Iterable[int], interval: float = 0.25) -> None:
        self._roots = list(roots)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakPSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        self.peak = max(self.peak, pss_bytes(self._roots))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._sample()
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
