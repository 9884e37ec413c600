"""When a failed webhook call is tried again, and when it is given up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``first`` seconds after the first failure, doubling up to ``maximum``; a call whose
    event is older than ``give_up`` seconds is dropped instead."""

    first: float = 10.0
    maximum: float = 3600.0
    give_up: float = 86400.0

    def delay(self, failures: int) -> float:
        return min(self.first * 2 ** min(max(failures - 1, 0), 60), self.maximum)

    def expired(self, created: float, now: float) -> bool:
        return now - created >= self.give_up

    @classmethod
    def from_config(cls, config) -> Backoff:
        section = config.webhooks
        return cls(section.first_retry, section.max_retry, section.give_up)
