"""The asynchronous face of the user database for the protocol servers.

Every query and any password hashing runs in a thread pool and returns a Deferred, so the
reactor never waits on the disk or on argon2. Routing answers (local domain? where does this
recipient go? may this user send as that address?) are cached, because every RCPT asks them and
a thread hop costs more than the query: the cache is valid only while the database's
``generation()`` token is unchanged, so a change made by the admin CLI is seen at the next lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from mailsuite.accounts.addresses import AddressError, normalize_mailbox
from mailsuite.accounts.database import IUserDatabase, MailboxDisabled, Resolution
from mailsuite.accounts.memory import release_free_memory
from mailsuite.accounts.passwords import dummy_verify, verify_password

_log = Logger()

# Seconds without a login before argon2's freed memory is handed back to the system.
TRIM_AFTER_IDLE = 5.0
# Entries in the routing cache before it is simply emptied (a crude bound on memory).
CACHE_SIZE = 20_000
# Failures that are answers ("disabled", "not an address") and so may be cached.
_CACHEABLE_ERRORS = (MailboxDisabled, AddressError)


class AccountService:
    """Deferred-returning wrapper of an IUserDatabase (see its methods for the semantics)."""

    def __init__(
        self,
        db: IUserDatabase,
        threadpool: ThreadPool | None = None,
        hash_pool: ThreadPool | None = None,
    ) -> None:
        """``hash_pool`` runs password verification (default: ``threadpool``). A small one of
        its own bounds how many argon2 computations, each holding its memory cost (19 MiB by
        default), run at once, and keeps that memory in a few threads instead of every one;
        it is returned to the system TRIM_AFTER_IDLE seconds after the last login."""
        # Imported here, not at module level, so importing this module never installs a reactor
        # (twistd picks the reactor before loading the application).
        from twisted.internet import reactor

        self.db = db
        self._reactor = reactor
        self._threadpool = threadpool if threadpool is not None else reactor.getThreadPool()
        self.hash_pool = hash_pool if hash_pool is not None else self._threadpool
        self._cache: dict[tuple, tuple[bool, Any]] = {}  # key -> (ok, result or exception)
        self._generation: object = None
        self._verifying = 0
        self._trim_call: Any = None

    def _verification_done(self, result: Any) -> Any:
        """After the last of a burst of logins, give argon2's memory back once all is quiet."""
        self._verifying -= 1
        if self._verifying == 0:
            if self._trim_call is not None and self._trim_call.active():
                self._trim_call.reset(TRIM_AFTER_IDLE)
            else:
                self._trim_call = self._reactor.callLater(TRIM_AFTER_IDLE, self._trim)
        return result

    def _trim(self) -> None:
        if self._verifying == 0 and getattr(self.hash_pool, "started", True):
            deferToThreadPool(self._reactor, self.hash_pool, release_free_memory).addErrback(
                lambda failure: _log.failure("malloc_trim failed", failure)
            )

    def _in_thread(self, func: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._threadpool, func, *args)

    def _cached(self, key: tuple, func: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``func(*args)`` in a thread, or its remembered answer if the database is unchanged.

        The token is read before the query, so an answer is stored under a token no newer than
        the data it saw: a change committed meanwhile makes the next lookup miss.
        """
        generation = self.db.generation()
        if generation != self._generation:
            self._cache.clear()
            self._generation = generation
        hit = self._cache.get(key)
        if hit is not None:
            ok, value = hit
            return succeed(value) if ok else fail(value)

        def remember(ok: bool, value: Any) -> None:
            if self._generation == generation:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = (ok, value)

        def answered(result: Any) -> Any:
            remember(True, result)
            return result

        def refused(failure: Failure) -> Failure:
            if failure.check(*_CACHEABLE_ERRORS):
                remember(False, failure.value)
            return failure

        return self._in_thread(func, *args).addCallbacks(answered, refused)

    def authenticate(self, username: str, password: str) -> Deferred[str | None]:
        """The canonical address if the password is right for an enabled user, else None.

        An unknown, disabled or malformed user costs one dummy verification, so response time
        does not reveal which accounts exist. A correct password stored with an outdated hash
        is re-hashed with the current parameters.
        """
        self._verifying += 1
        d = deferToThreadPool(self._reactor, self.hash_pool, self._authenticate, username, password)
        return d.addBoth(self._verification_done)

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
        return self._cached(("rcpt", address), self.db.resolve_recipient, address)

    def is_local_domain(self, domain: str) -> Deferred[bool]:
        return self._cached(("domain", domain), self.db.is_local_domain, domain)

    def owns_address(self, user: str, sender: str) -> Deferred[bool]:
        """Whether the authenticated ``user`` may use ``sender`` as its envelope/header sender."""
        return self._cached(("owns", user, sender), self.db.owns_address, user, sender)
