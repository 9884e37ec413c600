"""One server's metrics: its registry, fed by its event hub, read by its ``metrics`` listener.

A registry per server rather than prometheus_client's global one: tests (and any embedding)
run several servers in one process, and each must report its own traffic only.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from twisted.web.server import Site

from mailsuite.events import Events
from mailsuite.metrics.queue import QueueCollector, scheduler_entries
from mailsuite.metrics.recorder import EventMetrics
from mailsuite.metrics.site import make_metrics_site


class ServerMetrics:
    """Subscribes to ``events`` at once; ``site()`` is what the ``metrics`` role serves."""

    def __init__(self, events: Events, scheduler: Any = None) -> None:
        self.registry = CollectorRegistry()
        self.events = EventMetrics(self.registry)
        events.subscribe(self.events)
        if scheduler is not None:
            self.registry.register(QueueCollector(scheduler_entries(scheduler)))
        # process_* (CPU, resident memory, open files): read from /proc, cheap, no global state.
        ProcessCollector(registry=self.registry)

    def site(self) -> Site:
        return make_metrics_site(self.registry)
