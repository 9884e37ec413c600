"""twisted.cred glue: one checker over the user database and one realm for every protocol.

SMTP AUTH, IMAP and POP3 all log in through the Portal from make_portal(), so a password works
the same everywhere. The avatar id is the user's canonical address (str).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail
from zope.interface import Attribute, Interface, implementer
from zope.interface.interface import InterfaceClass

from mailsuite.accounts.service import AccountService

AvatarFactory = Callable[[str], Any]


class IMailUser(Interface):
    """The minimal avatar: an authenticated mail user (used by SMTP submission)."""

    address = Attribute("The user's canonical address, e.g. 'bob@example.com' (str).")


@implementer(IMailUser)
class MailUser:
    def __init__(self, address: str) -> None:
        self.address = address

    def __repr__(self) -> str:
        return f"MailUser({self.address!r})"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@implementer(ICredentialsChecker)
class UserDatabaseChecker:
    """Checks IUsernamePassword credentials against the user database.

    A wrong password, unknown or disabled user fails with UnauthorizedLogin; any other error
    (say, an unreadable database) propagates, so a protocol can answer "try later" instead of
    "wrong password".
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:
        try:
            username = _text(credentials.username)
            password = _text(credentials.password)
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin("credentials are not valid UTF-8"))
        d = self.accounts.authenticate(username, password)
        d.addCallback(self._checked)
        return d

    @staticmethod
    def _checked(address: str | None) -> str:
        if address is None:
            raise UnauthorizedLogin("authentication failed")
        return address


@implementer(IRealm)
class MailRealm:
    """Builds one avatar per requested interface from a table interface -> factory(address).

    A protocol adds its avatar with one entry (e.g. IMAP: ``{IAccount: make_imap_account}``).
    If an avatar has a ``logout()`` method, it is the logout callable the portal returns.
    """

    default_factories: Mapping[InterfaceClass, AvatarFactory] = {IMailUser: MailUser}

    def __init__(self, factories: Mapping[InterfaceClass, AvatarFactory] | None = None) -> None:
        self.factories: dict[InterfaceClass, AvatarFactory] = dict(self.default_factories)
        if factories:
            self.factories.update(factories)

    def requestAvatar(
        self, avatarId: bytes | str, mind: object, *interfaces: InterfaceClass
    ) -> tuple[InterfaceClass, Any, Callable[[], None]]:
        address = _text(avatarId)
        for interface in interfaces:
            factory = self.factories.get(interface)
            if factory is not None:
                avatar = factory(address)
                return interface, avatar, getattr(avatar, "logout", _no_logout)
        raise NotImplementedError(f"no avatar for any of {interfaces!r}")


def _no_logout() -> None:
    pass


def make_portal(
    accounts: AccountService, factories: Mapping[InterfaceClass, AvatarFactory] | None = None
) -> Portal:
    """The one Portal every protocol logs in through."""
    return Portal(MailRealm(factories), [UserDatabaseChecker(accounts)])
