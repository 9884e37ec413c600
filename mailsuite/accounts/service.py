"""The asynchronous face of the user database for the protocol servers.

Every call runs the SQLite query and any password hashing in a thread pool and returns a
Deferred, so the reactor never waits on the disk or on argon2. Nothing is cached: the admin CLI
changes the database while the server runs, and the next lookup must see it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from mailsuite.accounts.addresses import AddressError, normalize_mailbox
from mailsuite.accounts.database import IUserDatabase, Resolution
from mailsuite.accounts.passwords import dummy_verify, verify_password

_log = Logger()


class AccountService:
    """Deferred-returning wrapper of an IUserDatabase (see its methods for the semantics)."""

    def __init__(self, db: IUserDatabase, threadpool: ThreadPool | None = None) -> None:
        # Imported here, not at module level, so importing this module never installs a reactor
        # (twistd picks the reactor before loading the application).
        from twisted.internet import reactor

        self.db = db
        self._reactor = reactor
        self._threadpool = threadpool if threadpool is not None else reactor.getThreadPool()

    def _in_thread(self, func: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._threadpool, func, *args)

    def authenticate(self, username: str, password: str) -> Deferred[str | None]:
        """The canonical address if the password is right for an enabled user, else None.

        An unknown, disabled or malformed user costs one dummy verification, so response time
        does not reveal which accounts exist. A correct password stored with an outdated hash
        is re-hashed with the current parameters.
        """
        return self._in_thread(self._authenticate, username, password)

    def _authenticate(self, username: str, password: str) -> str | None:
        try:
            address = normalize_mailbox(username)
        except AddressError:
            address = None
        user = None if address is None else self.db.get_user(address)
        if user is None or not user.enabled:
            dummy_verify()
            return None
        ok, new_hash = verify_password(password, user.password_hash)
        if not ok:
            return None
        if new_hash is not None:
            try:
                self.db.set_password_hash(user.address, new_hash)
            except Exception:
                # The password was right; failing to store the upgrade must not refuse the login.
                _log.failure("could not store the upgraded password hash of {user}", user=address)
        return user.address

    def resolve_recipient(self, address: str) -> Deferred[Resolution | None]:
        """See IUserDatabase.resolve_recipient; MailboxDisabled and AddressError are failures."""
        return self._in_thread(self.db.resolve_recipient, address)

    def is_local_domain(self, domain: str) -> Deferred[bool]:
        return self._in_thread(self.db.is_local_domain, domain)

    def owns_address(self, user: str, sender: str) -> Deferred[bool]:
        """Whether the authenticated ``user`` may use ``sender`` as its envelope/header sender."""
        return self._in_thread(self.db.owns_address, user, sender)
