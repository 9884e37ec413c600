"""The root resource: exact paths (and one prefix) to handlers, one method table per path.

twisted.web's resource tree walks path segments one by one, so ``/mail//config-v1.1.xml``,
``/healthz/`` and ``/healthz/anything`` all need thought in every resource. Everything served
here lives at a fixed, well-known path, so one leaf resource matches the raw (still
percent-encoded) path exactly and answers everything else with a short 404 or 405; nothing is
decoded into a path, so ``%2e%2e`` stays three literal characters that match nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from mailsuite.web.limits import BodyAllowance
from mailsuite.web.reply import INTERNAL_ERROR, NOT_FOUND, Reply, apply, send_later
from mailsuite.web.request import origin_form

Handler = Callable[[Request], "Reply | Deferred[Reply]"]
Methods = Mapping[bytes, Handler]  # b"GET" also answers HEAD

_log = Logger()


class Router(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._exact: dict[bytes, Methods] = {}
        self._folded: dict[bytes, Methods] = {}  # lower-cased paths matched in any case
        self._prefixes: list[tuple[bytes, Methods]] = []
        self._allowances: list[tuple[bytes, BodyAllowance]] = []

    def route(self, path: bytes, methods: Methods, *, any_case: bool = False) -> None:
        """Serve ``path`` exactly (``any_case``: in any upper/lower case)."""
        if any_case:
            self._folded[path.lower()] = methods
        else:
            self._exact[path] = methods

    def route_prefix(self, prefix: bytes, methods: Methods) -> None:
        """Serve every path that starts with ``prefix`` (the handler checks the rest)."""
        self._prefixes.append((prefix, methods))

    def allow_bodies(self, prefix: bytes, allowance: BodyAllowance) -> None:
        """Requests to paths starting with ``prefix`` get ``allowance`` (see limits.py)."""
        self._allowances.append((prefix, allowance))

    def allowance(self, target: bytes) -> BodyAllowance | None:
        """The allowance of a request target (asked by the channel before reading a body)."""
        path = origin_form(target)[1].split(b"?", 1)[0]
        for prefix, allowance in self._allowances:
            if path.startswith(prefix):
                return allowance
        return None

    def _find(self, path: bytes) -> Methods | None:
        found = self._exact.get(path) or self._folded.get(path.lower())
        if found is not None:
            return found
        for prefix, methods in self._prefixes:
            if path.startswith(prefix):
                return methods
        return None

    def render(self, request: Request) -> bytes | int:
        methods = self._find(request.path)
        if methods is None:
            return apply(request, NOT_FOUND)
        method = b"GET" if request.method == b"HEAD" else request.method
        handler = methods.get(method)
        if handler is None:
            allowed = b", ".join(sorted({*methods, *([b"HEAD"] if b"GET" in methods else [])}))
            refusal = Reply(405, b"method not allowed\n", headers=((b"allow", allowed),))
            return apply(request, refusal)
        try:
            answer = handler(request)
        except Exception:
            _log.failure("HTTP {method} {path} failed", method=request.method, path=request.path)
            return apply(request, INTERNAL_ERROR)
        if isinstance(answer, Deferred):
            return send_later(request, answer)
        return apply(request, answer)
