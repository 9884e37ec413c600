"""The resource tree served on the ``http`` and ``https`` roles."""

from __future__ import annotations

from twisted.web import resource, server


class Health(resource.Resource):
    """``/healthz``: the process is up and its reactor answers."""

    isLeaf = True

    def render_GET(self, request) -> bytes:  # noqa: N802 - twisted's name
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok\n"


def make_site(config, database, dkim_keys) -> server.Site:
    """The Site for both HTTP roles (``database``: which domains are local; ``dkim_keys``: for
    pages that show DNS records)."""
    root = resource.Resource()
    root.putChild(b"healthz", Health())
    site = server.Site(root)
    site.displayTracebacks = False
    return site
