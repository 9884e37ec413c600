"""Is mail stuck: no queued message older than ``check.queue_age_hours``.

A message that stays in the queue for hours points at a problem of its own (a destination
refusing us, outbound port 25, DNS) long before its bounce tells the sender.
"""

from __future__ import annotations

import time

from mailsuite.doctor.result import CheckResult, passed, warned
from mailsuite.doctor.target import Target
from mailsuite.queue.entry import QueueEntry
from mailsuite.queue.spool import QueueSpool


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def check_queue(target: Target) -> list[CheckResult]:
    name = "queue"
    spool = QueueSpool(target.config.queue_dir)
    limit = target.config.check.queue_age_hours * 3600
    now = time.time()
    ages: list[tuple[float, str]] = []
    unreadable = []
    for queue_id in spool.list_ids():
        try:
            entry = QueueEntry(spool.load(queue_id))
            ages.append((now - entry.created, queue_id))
        except FileNotFoundError:
            continue  # delivered while we looked
        except (OSError, ValueError, KeyError):
            unreadable.append(queue_id)
    if unreadable:
        return [
            warned(
                name,
                f"{len(unreadable)} unreadable entries (e.g. {unreadable[0]})",
                f"look at {spool.envelope_path(unreadable[0])}; "
                "'mailsuite-admin queue delete ID' removes one",
            )
        ]
    if not ages:
        return [passed(name, "empty")]
    old = sorted((age, queue_id) for age, queue_id in ages if age > limit)
    oldest_age, oldest_id = max(ages)
    if old:
        return [
            warned(
                name,
                f"{len(old)} of {len(ages)} queued messages older than "
                f"{target.config.check.queue_age_hours:g} h (oldest {oldest_id}, "
                f"{_age(oldest_age)})",
                "see why with 'mailsuite-admin queue show ID'; "
                "'mailsuite-admin queue flush' retries now",
            )
        ]
    count = f"{len(ages)} message" + ("" if len(ages) == 1 else "s")
    return [passed(name, f"{count}, the oldest {_age(oldest_age)} old")]
