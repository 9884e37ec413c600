"""``/healthz``: the process is up and its reactor answers (for monitors and load balancers)."""

from __future__ import annotations

from twisted.web.server import Request

from mailsuite.web.reply import Reply

OK = Reply(200, b"ok\n")


def healthz(request: Request) -> Reply:
    return OK
