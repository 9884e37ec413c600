"""The Site of the ``metrics`` listener role: ``GET /metrics`` in the Prometheus text format.

Its own Site on its own port (loopback by default), not a path of the public HTTP listener:
the figures tell about users' traffic and need no exposure to the Internet. It stands on the
web listener's Site and Router for their limits, exact paths and short error pages. The body is
rendered on the reactor thread: the queue collector reads the scheduler's memory there, and
``generate_latest`` over a few hundred series takes well under a millisecond.
(prometheus_client.twisted.MetricsResource would render in the reactor's thread pool instead.)
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.server import Request, Site

from mailsuite.web.reply import Reply
from mailsuite.web.router import Router
from mailsuite.web.site import WebSite

PATH = b"/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode("ascii")


def make_metrics_site(registry: CollectorRegistry) -> Site:
    """A Site answering ``GET /metrics`` (and HEAD) from ``registry``; 404 elsewhere."""

    def scrape(request: Request) -> Reply:
        return Reply(200, generate_latest(registry), CONTENT_TYPE)

    router = Router()
    router.route(PATH, {b"GET": scrape})
    return WebSite(router)
