"""Slowing down password guessing, per client address, without slowing anybody else.

Each failure from an address doubles the delay before that address's next failure reply (up to a
cap); the delay is a reactor timer, so only the guessing connection waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class AuthThrottle:
    """Remembers recent authentication failures per client address."""

    FORGET_AFTER = 900.0  # seconds without a failure after which an address starts afresh
    MAX_TRACKED = 100_000

    def __init__(
        self, base_delay: float, max_delay: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._base = base_delay
        self._max = max_delay
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}

    def failure_delay(self, address: str) -> float:
        """Record one failure from ``address``; return how long to wait before answering it."""
        now = self._clock()
        count, last = self._failures.get(address, (0, now))
        if now - last > self.FORGET_AFTER:
            count = 0
        count += 1
        if len(self._failures) >= self.MAX_TRACKED:
            self._forget_old(now)
        self._failures[address] = (count, now)
        return min(self._base * 2 ** (count - 1), self._max)

    def success(self, address: str) -> None:
        self._failures.pop(address, None)

    def _forget_old(self, now: float) -> None:
        stale = [a for a, (_, last) in self._failures.items() if now - last > self.FORGET_AFTER]
        for address in stale:
            del self._failures[address]
        if len(self._failures) >= self.MAX_TRACKED:
            self._failures.clear()
