"""Logins in sandbox mode: the one capture login everywhere, or any login for SMTP submission.

The checker replaces the user database's (an application under test logs in with whatever its
configuration holds, and nothing it sends may reach a real mailbox anyway):

- the configured ``login``/``password`` is the capture mailbox: IMAP, POP3 and submission;
- with ``accept_any_login``, any other user name and password log in too, but only where the
  protocol asks for a plain mail user (SMTP AUTH): the realm refuses such a login the mailbox
  views of IMAP and POP3, which stay behind the configured password.

AUTH itself is unchanged: offered only over TLS, counted and slowed down on failure.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer
from zope.interface.interface import InterfaceClass

from mailsuite.accounts.cred import AvatarFactory, IMailUser, MailRealm, MailUser
from mailsuite.config import SandboxSection

MAX_NAME = 320  # an address's worth: the name goes into the Received: field and the log


class GuestLogin(str):
    """The avatar id of a login accepted by ``accept_any_login``: the user name as given.

    A type of its own, so the realm can never mistake a guest who typed the capture address as
    user name for the capture login itself."""


@implementer(ICredentialsChecker)
class SandboxChecker:
    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, settings: SandboxSection, capture_address: str) -> None:
        self._login = settings.login.encode("utf-8")
        self._password = settings.password.encode("utf-8")
        self._any = settings.accept_any_login
        self._capture = capture_address

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred:  # noqa: N802
        username, password = _bytes(credentials.username), _bytes(credentials.password)
        # Both compared every time, in constant time: the answer takes as long either way.
        login_ok = hmac.compare_digest(username, self._login)
        password_ok = hmac.compare_digest(password, self._password)
        if login_ok and password_ok:
            return succeed(self._capture)
        if self._any:
            name = _printable_name(username)
            if name is not None:
                return succeed(GuestLogin(name))
        return fail(UnauthorizedLogin("sandbox: wrong login or password"))


@implementer(IRealm)
class SandboxRealm:
    """The store's avatars for the capture login; only a plain mail user for a guest."""

    def __init__(self, factories: Mapping[InterfaceClass, AvatarFactory]) -> None:
        self._realm = MailRealm(factories)

    def requestAvatar(  # noqa: N802 - twisted's name
        self, avatarId: Any, mind: object, *interfaces: InterfaceClass
    ) -> tuple[InterfaceClass, Any, Callable[[], None]]:
        if isinstance(avatarId, GuestLogin):
            if IMailUser not in interfaces:
                raise UnauthorizedLogin("sandbox: mailboxes are read with the sandbox login")
            return IMailUser, MailUser(str(avatarId)), lambda: None
        return self._realm.requestAvatar(avatarId, mind, *interfaces)


def make_sandbox_portal(
    settings: SandboxSection,
    capture_address: str,
    factories: Mapping[InterfaceClass, AvatarFactory],
) -> Portal:
    """The Portal every protocol logs in through in sandbox mode (make_portal's counterpart)."""
    return Portal(SandboxRealm(factories), [SandboxChecker(settings, capture_address)])


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _printable_name(username: bytes) -> str | None:
    """The user name as text if it is safe in a header field and a log line, else None."""
    try:
        name = username.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return None
    return name
