"""Cached label children, and label values kept few.

``metric.labels(...)`` takes a lock and builds a key on every call; the listener runs for every
command of every session, so each metric keeps a dict from the raw label values to the child,
and only a miss pays for ``labels()`` and for the cleaning that keeps the series bounded (a
malformed status code or DNS type becomes "other"). The dict itself is capped, so raw values
that all clean to "other" cannot grow it without end either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MAX_CACHED = 1024  # raw label tuples remembered per metric; past it a miss is recomputed
OTHER = "other"

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,23}")

Cleaner = Callable[..., tuple[str, ...]]


def as_text(value: Any) -> str:
    """A label value from an event field: booleans as "true"/"false", None as "none"."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def word(value: Any) -> str:
    """Role, protocol, verb, DNS type, outcome: a short word as given, else "other"."""
    text = as_text(value)
    return text if _WORD.fullmatch(text) else OTHER


def enhanced_status(value: Any) -> str:
    """An RFC 3463 status code such as "5.7.1", else "other" (no free text in a label)."""
    text = as_text(value)
    return text if _ENHANCED.fullmatch(text) else OTHER


def words(*values: Any) -> tuple[str, ...]:
    return tuple(word(value) for value in values)


class Children:
    """``children(*raw)`` is the child of ``metric`` for those label values, cached."""

    __slots__ = ("_metric", "_clean", "_cache")

    def __init__(self, metric: Any, clean: Cleaner = words) -> None:
        self._metric = metric
        self._clean = clean
        self._cache: dict[tuple[Any, ...], Any] = {}

    def __call__(self, *raw: Any) -> Any:
        child = self._cache.get(raw)
        if child is None:
            # Two threads may both miss: labels() hands both the same child, so no harm.
            child = self._metric.labels(*self._clean(*raw))
            if len(self._cache) < MAX_CACHED:
                self._cache[raw] = child
        return child
