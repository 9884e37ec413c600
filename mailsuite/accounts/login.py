"""The one login step every protocol takes: portal login, failure delay, failure counting.

SMTP AUTH, IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/AUTH each turn the ``LoginResult`` into
their own reply; how a password is checked, how failures from one address slow that address
down (``AuthThrottle``) and when a session has failed too often is decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import task
from twisted.logger import Logger

from mailsuite.accounts.cred import IMailUser
from mailsuite.accounts.throttle import AuthThrottle
from mailsuite.events import NO_EVENTS, Events

log = Logger(namespace="mailsuite.accounts")


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt came to. ``avatar`` is set on success; otherwise ``temporary``
    says the check itself failed (answer "try later"), and ``last`` that this failure was
    the session's last allowed one (answer, then close)."""

    avatar: Any = None
    logout: Callable[[], None] | None = None
    temporary: bool = False
    last: bool = False

    @property
    def ok(self) -> bool:
        return self.avatar is not None


class Authenticator:
    """Shared by every session of the process; ``failures`` is counted per session by the
    ``LoginAttempts`` each session keeps."""

    def __init__(
        self, portal: Portal, throttle: AuthThrottle, max_failures: int, events: Events = NO_EVENTS
    ) -> None:
        self.portal = portal
        self.throttle = throttle
        self.max_failures = max_failures
        self.events = events

    def attempts(self, protocol: str) -> LoginAttempts:
        """A session's own counter of failed attempts (``protocol`` names it in the log)."""
        return LoginAttempts(self, protocol)


class LoginAttempts:
    """One session's logins: each failure waits the throttle's delay for the client's address
    before it is answered; the session's ``max_failures``-th failure is its last."""

    def __init__(self, authenticator: Authenticator, protocol: str) -> None:
        self.auth = authenticator
        self.protocol = protocol
        self.failures = 0

    async def login(
        self, username: bytes, password: bytes, peer: str, interface: Any = IMailUser
    ) -> LoginResult:
        """Log in for the avatar ``interface`` the protocol works with (its store view)."""
        auth = self.auth
        try:
            _interface, avatar, logout = await auth.portal.login(
                UsernamePassword(username, password), None, interface
            )
        except UnauthorizedLogin:
            self.failures += 1
            auth.events.emit(
                "auth", protocol=self.protocol, user=_name(username), client=peer, ok=False
            )
            delay = auth.throttle.failure_delay(peer)
            log.info(
                "{protocol} auth failed client={client} delay={delay}s",
                protocol=self.protocol,
                client=peer,
                delay=delay,
            )
            from twisted.internet import reactor

            await task.deferLater(reactor, delay, lambda: None)
            return LoginResult(last=self.failures >= auth.max_failures)
        except Exception:
            log.failure("authentication backend error")
            return LoginResult(temporary=True)
        auth.throttle.success(peer)
        auth.events.emit("auth", protocol=self.protocol, user=_name(username), client=peer, ok=True)
        return LoginResult(avatar=avatar, logout=logout)


def _name(username: bytes) -> str:
    """The login name for an event (never the password): printable, bounded."""
    return username.decode("utf-8", "replace")[:320]
