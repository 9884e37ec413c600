"""Prometheus metrics of one server: what the event hub tells, counted, served at GET /metrics.

Each server has its own ``CollectorRegistry`` (tests run several servers in one process, so the
global default registry would mix them). ``ServerMetrics`` builds it: the event listener
(recorder.py), the queue collector read at scrape time (queue.py) and the process collector; the
``metrics`` listener role serves it (site.py).
"""

from __future__ import annotations

from mailsuite.metrics.server import ServerMetrics

__all__ = ["ServerMetrics"]
