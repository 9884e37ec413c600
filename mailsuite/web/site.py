"""The Site served on the ``http`` and ``https`` roles: what answers at which path.

Both roles serve the same tree; the MTA-STS policy checks for itself that it is asked over TLS.
Every path is exact (see router.py); everything else is a short 404.
"""

from __future__ import annotations

from typing import Any

from twisted.web import server

from mailsuite.config import Config
from mailsuite.web import acme_challenge, autoconfig, autodiscover, mta_sts, sandbox_api
from mailsuite.web.domains import LocalDomains
from mailsuite.web.health import healthz
from mailsuite.web.limits import IDLE_TIMEOUT, BoundedChannel
from mailsuite.web.mailservers import ListeningPort
from mailsuite.web.request import WebRequest
from mailsuite.web.router import Router


class WebSite(server.Site):
    """BoundedChannel connections (HTTP/1.x only: twisted's default protocol would also switch
    to HTTP/2 by ALPN, past every limit of limits.py), WebRequest requests, IDLE_TIMEOUT, and
    no tracebacks in error pages."""

    protocol = BoundedChannel  # type: ignore[assignment]
    displayTracebacks = False

    def __init__(self, root: Any) -> None:
        super().__init__(root, requestFactory=WebRequest, timeout=IDLE_TIMEOUT)


def make_router(
    config: Config, database: object, listening_port: ListeningPort | None = None
) -> Router:
    domains = LocalDomains(database)
    router = Router()
    router.route(b"/healthz", {b"GET": healthz})
    config_file = autoconfig.Autoconfig(config, domains, listening_port)
    for path in autoconfig.PATHS:
        router.route(path, {b"GET": config_file.get})
    discover = autodiscover.Autodiscover(config, domains, listening_port)
    router.route(autodiscover.PATH, {b"POST": discover.post}, any_case=True)
    router.route(mta_sts.PATH, {b"GET": mta_sts.MTASTSPolicy(config, domains).get})
    router.route_prefix(acme_challenge.PREFIX, {b"GET": acme_challenge.ACMEChallenge(config).get})
    sandbox_api.register(router, config)  # /api/v1/sandbox/...: only in sandbox mode
    return router


def make_site(
    config: Config,
    database: object,
    dkim_keys: object,
    listening_port: ListeningPort | None = None,
) -> server.Site:
    """The Site for both HTTP roles. ``database``: which domains are local; ``dkim_keys``: for
    pages that will show DNS records; ``listening_port(role)``: the bound port of a listener
    configured on port 0 (MailSuite.listening_port), asked when a client asks."""
    return WebSite(make_router(config, database, listening_port))
