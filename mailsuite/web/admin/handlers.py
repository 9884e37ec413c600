"""The admin page's routes: login (password or one-time link), the dashboard, a captured message.

Only users flagged admin (``mailsuite-admin user admin ADDRESS``) get in; a wrong password and a
non-admin get the same answer. Every answer carries a strict Content-Security-Policy and is
never cached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import threads
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.web.server import Request

from mailsuite.web.admin import pages
from mailsuite.web.admin.sessions import COOKIE, AdminSessions
from mailsuite.web.reply import NOT_FOUND, Reply

HTML = b"text/html; charset=utf-8"
PREFIX = b"/admin"
_SECURITY = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self';"
        b" form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


@dataclass
class AdminBackend:
    """What the page shows, from the running server (all callables reactor-safe)."""

    authenticate: Callable[[str, str], Deferred]  # -> canonical address or None
    is_admin: Callable[[str], Deferred]  # -> bool
    queue: Callable[[], list[dict[str, Any]]]
    report: Callable[[], Deferred] | None = None  # -> summary dict (None: no delivery log)
    captures: Callable[[], Deferred] | None = None  # sandbox only: -> list of dicts
    capture: Callable[[str], Deferred] | None = None  # sandbox only: -> dict or None


def _html(code: int, body: bytes, *headers: tuple[bytes, bytes]) -> Reply:
    return Reply(code, body, HTML, (*_SECURITY, *headers))


def _redirect(where: bytes, *headers: tuple[bytes, bytes]) -> Reply:
    return Reply(303, b"", HTML, (*_SECURITY, (b"location", where), *headers))


class AdminPages:
    def __init__(self, backend: AdminBackend, sessions: AdminSessions) -> None:
        self.backend = backend
        self.sessions = sessions

    def routes(self, router) -> None:
        router.route(PREFIX, {b"GET": self.dashboard})
        router.route(PREFIX + b"/", {b"GET": self.dashboard})
        router.route(PREFIX + b"/login", {b"GET": self.login_form, b"POST": self.login})
        router.route(PREFIX + b"/logout", {b"POST": self.logout})
        router.route_prefix(PREFIX + b"/sandbox/", {b"GET": self.message})

    def _user(self, request: Request) -> str | None:
        token = request.getCookie(COOKIE)
        return self.sessions.user(token.decode("ascii", "replace") if token else None)

    def _cookie(self, request: Request, token: str, max_age: int) -> tuple[bytes, bytes]:
        secure = b"; Secure" if request.isSecure() else b""
        value = b"%s=%s; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=%d%s" % (
            COOKIE,
            token.encode("ascii"),
            max_age,
            secure,
        )
        return (b"set-cookie", value)

    # --- login ----------------------------------------------------------------------------------

    def login_form(self, request: Request) -> Reply | Deferred[Reply]:
        once = request.args.get(b"once", [b""])[0].decode("ascii", "replace")
        if not once:
            return _html(200, pages.login_form())
        d = threads.deferToThread(self.sessions.redeem_link, once)
        return d.addCallback(self._opened, request, "This link is not valid (any more).")

    def login(self, request: Request) -> Deferred[Reply]:
        form = parse_qs(request.content.read(16384).decode("utf-8", "replace"))
        user = (form.get("user") or [""])[0][:320]
        password = (form.get("password") or [""])[0][:1024]
        return self._check(user, password).addCallback(
            self._opened, request, "Wrong address or password, or not an administrator."
        )

    @inlineCallbacks
    def _check(self, user: str, password: str):
        address = yield self.backend.authenticate(user, password)
        if address is None:
            return None
        admin = yield self.backend.is_admin(address)
        return address if admin else None

    @inlineCallbacks
    def _opened(self, user: str | None, request: Request, refusal: str):
        if user is not None:
            admin = yield self.backend.is_admin(user)  # a link's user may have lost the flag
            if admin:
                token = self.sessions.open(user)
                return _redirect(PREFIX, self._cookie(request, token, 8 * 3600))
        return _html(403, pages.login_form(refusal))

    def logout(self, request: Request) -> Reply:
        token = request.getCookie(COOKIE)
        self.sessions.close(token.decode("ascii", "replace") if token else None)
        return _redirect(PREFIX + b"/login", self._cookie(request, "", 0))

    # --- pages ----------------------------------------------------------------------------------

    @inlineCallbacks
    def dashboard(self, request: Request):
        user = self._user(request)
        if user is None:
            return _redirect(PREFIX + b"/login")
        report = yield (self.backend.report() if self.backend.report else succeed(None))
        captures = yield (self.backend.captures() if self.backend.captures else succeed(None))
        body = (
            pages.queue_section(self.backend.queue())
            + pages.report_section(report)
            + pages.captures_section(captures)
        )
        return _html(200, pages.page("admin", body, user))

    @inlineCallbacks
    def message(self, request: Request):
        user = self._user(request)
        if user is None:
            return _redirect(PREFIX + b"/login")
        if self.backend.capture is None:
            return NOT_FOUND
        ident = request.path[len(PREFIX + b"/sandbox/") :].decode("ascii", "replace")
        if not ident or "/" in ident or len(ident) > 200:
            return NOT_FOUND
        message = yield self.backend.capture(ident)
        if message is None:
            return NOT_FOUND
        return _html(200, pages.message_page(message, user))
