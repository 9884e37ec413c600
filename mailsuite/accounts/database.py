"""The user database: domains, users with password hashes, aliases; and recipient resolution.

The API is synchronous and thread-safe: the server calls it from a thread pool (see service.py)
and the admin CLI calls it directly, possibly at the same time from another process. Every
committed change also appends a byte to a small "changes" file beside the database, so a running
server can tell with one stat() that its cached lookups are stale (``generation()``): a change
made by the CLI is seen by the server at its next lookup.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from twisted.logger import Logger
from zope.interface import Interface, implementer

from mailsuite.accounts.addresses import (
    AddressError,
    normalize_catchall,
    normalize_domain,
    normalize_mailbox,
    normalize_remote_address,
    split_address,
)
from mailsuite.accounts.apikeys import APIKeyTable, IAPIKeys
from mailsuite.accounts.errors import (
    AccountsError,
    AliasExists,
    DatabaseClosed,
    DomainExists,
    DomainNotEmpty,
    MailboxDisabled,
    SchemaTooNew,
    UnknownAlias,
    UnknownDomain,
    UnknownUser,
    UserExists,
)
from mailsuite.accounts.schema import migrate
from mailsuite.accounts.webhooks import IWebhooks, WebhookTable

__all__ = [
    "AccountsError",
    "AddressError",
    "Alias",
    "AliasExists",
    "DatabaseClosed",
    "DomainExists",
    "DomainNotEmpty",
    "IUserDatabase",
    "MailboxDisabled",
    "Resolution",
    "SQLiteUserDatabase",
    "SchemaTooNew",
    "UnknownAlias",
    "UnknownDomain",
    "UnknownUser",
    "User",
    "UserExists",
]

_log = Logger()

# Alias expansion stops following a branch this many aliases deep (Postfix uses 1000 for the
# whole expansion and 100 for depth; a hand-written alias table never comes near these).
MAX_ALIAS_DEPTH = 10
MAX_ALIAS_LOOKUPS = 1000
# The changes file grows by one byte per committed change; past this size it is replaced by a
# fresh (empty) file, whose new inode still tells readers that something changed.
_CHANGES_FILE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class User:
    address: str
    password_hash: str
    enabled: bool
    created: str


@dataclass(frozen=True)
class Alias:
    source: str
    target: str


@dataclass(frozen=True)
class Resolution:
    """Where mail for one recipient goes: local mailboxes (user addresses) and remote addresses."""

    mailboxes: tuple[str, ...]
    remote: tuple[str, ...]


class IUserDatabase(Interface):
    """Synchronous, thread-safe user database. Every method normalizes its own arguments and
    raises AddressError for bad syntax and an AccountsError subclass for a refused change."""

    def close() -> None:
        """Release the database; no method may be called afterwards."""

    def add_domain(name: str) -> None:
        """Add a local domain (DomainExists)."""

    def delete_domain(name: str) -> None:
        """Delete a domain without users or aliases (UnknownDomain, DomainNotEmpty)."""

    def list_domains() -> list[str]:
        """All local domains, sorted."""

    def has_domain(name: str) -> bool:
        """Whether ``name`` is a local domain."""

    def is_local_domain(domain: str) -> bool:
        """Like has_domain, but invalid syntax is simply not local."""

    def add_user(address: str, password_hash: str) -> None:
        """Add an enabled user (UnknownDomain, UserExists)."""

    def set_password_hash(address: str, password_hash: str) -> None:
        """Replace a user's password hash (UnknownUser)."""

    def delete_user(address: str) -> None:
        """Delete a user (UnknownUser); aliases pointing to it stay."""

    def set_enabled(address: str, enabled: bool) -> None:
        """Enable or disable login and delivery for a user (UnknownUser)."""

    def set_admin(address: str, admin: bool) -> None:
        """Flag a user as administrator of the admin page, or not (UnknownUser)."""

    def is_admin(address: str) -> bool:
        """Whether an enabled user is flagged administrator (False for unknown users)."""

    def get_user(address: str) -> User | None:
        """The user, or None."""

    def list_users(domain: str | None = None) -> list[User]:
        """Users of one domain (UnknownDomain) or of all, sorted by address."""

    def add_alias(source: str, target: str) -> Alias:
        """Add ``source -> target`` (AliasExists); source is a mailbox or '@domain' of a local
        domain (UnknownDomain). Returns the alias as stored (normalized)."""

    def delete_alias(source: str, target: str | None = None) -> None:
        """Delete one target of ``source``, or all of them (UnknownAlias)."""

    def list_aliases(domain: str | None = None) -> list[Alias]:
        """Aliases whose source is in ``domain`` (UnknownDomain) or all; targets in added order."""

    def resolve_recipient(address: str) -> Resolution | None:
        """Where mail to ``address`` goes; None if nobody (MailboxDisabled if only disabled)."""

    def owns_address(user: str, sender: str) -> bool:
        """Whether ``user`` may send as ``sender``: its own address or an alias reaching it."""

    def generation() -> object:
        """A token that changes whenever a committed change may alter a lookup's answer.

        Cheap and non-blocking (safe on the reactor thread): callers cache answers under it.
        """


@dataclass
class _Expansion:
    """Accumulates one alias expansion; dicts keep first-seen order and drop duplicates."""

    mailboxes: dict[str, None] = field(default_factory=dict)
    remote: dict[str, None] = field(default_factory=dict)
    disabled: bool = False
    lookups: int = 0
    local_domains: dict[str, bool] = field(default_factory=dict)

    def deliver(self, address: str, enabled: bool) -> None:
        if enabled:
            self.mailboxes[address] = None
        else:
            self.disabled = True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def _normalize_source(text: str) -> str:
    return normalize_catchall(text) if text.startswith("@") else normalize_mailbox(text)


@implementer(IUserDatabase, IAPIKeys, IWebhooks)
class SQLiteUserDatabase(APIKeyTable, WebhookTable):
    """IUserDatabase in one SQLite file (WAL), one connection per thread; the send API's keys
    and the webhooks live in it too (apikeys.py, webhooks.py)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._changes = self.path.with_name(self.path.name + "-changes")
        self._wal = self.path.with_name(self.path.name + "-wal")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file private before SQLite does: its -wal and -shm files copy these modes.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            migrate(self._connection(), self.path)
        except BaseException:
            self.close()
            raise

    # --- connections and transactions ------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise DatabaseClosed()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() can close every thread's connection;
            # each connection is still used by its own thread alone.
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA journal_mode = WAL")
            except BaseException:
                conn.close()
                raise
            with self._lock:
                if self._closed:
                    conn.close()
                    raise DatabaseClosed()
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """A write (IMMEDIATE) or consistent-snapshot read (DEFERRED) transaction."""
        conn = self._connection()
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if mode == "IMMEDIATE":
            self._note_change()

    def _note_change(self) -> None:
        """Tell readers' caches (generation()) that a change was committed; never fails."""
        try:
            fd = os.open(self._changes, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b".")
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > _CHANGES_FILE_LIMIT:
                fresh = self._changes.with_name(self._changes.name + ".new")
                fresh.unlink(missing_ok=True)
                os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                os.replace(fresh, self._changes)
        except OSError as exc:
            # A cache-invalidation hint only (the change itself is committed): the WAL's own
            # size and time in generation() still catch most changes.
            _log.warn("could not record a change in {path}: {error}", path=self._changes, error=exc)

    def generation(self) -> object:
        """Identity, size and time of the changes file and of the WAL: two stat() calls."""
        token: list[object] = []
        for path in (self._changes, self._wal):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                token.append(None)
            except OSError:
                return object()  # unknown: equal to nothing, so nothing is served from cache
            else:
                token.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(token)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # --- domains --------------------------------------------------------------------------------

    @staticmethod
    def _domain_exists(conn: sqlite3.Connection, domain: str) -> bool:
        row = conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone()
        return row is not None

    def add_domain(self, name: str) -> None:
        domain = normalize_domain(name)
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO domains (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (domain, _now()),
            )
            if cursor.rowcount == 0:
                raise DomainExists(domain)

    def delete_domain(self, name: str) -> None:
        domain = normalize_domain(name)
        with self._transaction() as conn:
            if not self._domain_exists(conn, domain):
                raise UnknownDomain(domain)
            (users,) = conn.execute(
                "SELECT count(*) FROM users WHERE domain = ?", (domain,)
            ).fetchone()
            (aliases,) = conn.execute(
                "SELECT count(*) FROM aliases WHERE domain = ?", (domain,)
            ).fetchone()
            if users or aliases:
                raise DomainNotEmpty(domain, users, aliases)
            conn.execute("DELETE FROM domains WHERE name = ?", (domain,))

    def list_domains(self) -> list[str]:
        rows = self._connection().execute("SELECT name FROM domains ORDER BY name")
        return [name for (name,) in rows]

    def has_domain(self, name: str) -> bool:
        return self._domain_exists(self._connection(), normalize_domain(name))

    def is_local_domain(self, domain: str) -> bool:
        try:
            return self.has_domain(domain)
        except AddressError:
            return False

    # --- users ----------------------------------------------------------------------------------

    def add_user(self, address: str, password_hash: str) -> None:
        mailbox = normalize_mailbox(address)
        domain = _domain_of(mailbox)
        with self._transaction() as conn:
            if not self._domain_exists(conn, domain):
                raise UnknownDomain(domain)
            cursor = conn.execute(
                "INSERT INTO users (address, domain, password_hash, enabled, created)"
                " VALUES (?, ?, ?, 1, ?) ON CONFLICT (address) DO NOTHING",
                (mailbox, domain, password_hash, _now()),
            )
            if cursor.rowcount == 0:
                raise UserExists(mailbox)

    def _update_user(self, address: str, sql: str, value: object) -> None:
        mailbox = normalize_mailbox(address)
        cursor = self._connection().execute(sql, (value, mailbox))
        if cursor.rowcount == 0:
            raise UnknownUser(mailbox)
        self._note_change()

    def set_password_hash(self, address: str, password_hash: str) -> None:
        self._update_user(
            address, "UPDATE users SET password_hash = ? WHERE address = ?", password_hash
        )

    def set_enabled(self, address: str, enabled: bool) -> None:
        self._update_user(address, "UPDATE users SET enabled = ? WHERE address = ?", int(enabled))

    def set_admin(self, address: str, admin: bool) -> None:
        self._update_user(address, "UPDATE users SET admin = ? WHERE address = ?", int(admin))

    def is_admin(self, address: str) -> bool:
        try:
            mailbox = normalize_mailbox(address)
        except AddressError:
            return False
        row = (
            self._connection()
            .execute("SELECT admin, enabled FROM users WHERE address = ?", (mailbox,))
            .fetchone()
        )
        return row is not None and bool(row[0]) and bool(row[1])

    def delete_user(self, address: str) -> None:
        mailbox = normalize_mailbox(address)
        cursor = self._connection().execute("DELETE FROM users WHERE address = ?", (mailbox,))
        if cursor.rowcount == 0:
            raise UnknownUser(mailbox)
        self._note_change()

    _USER_COLUMNS = "address, password_hash, enabled, created"

    @staticmethod
    def _user(row: tuple) -> User:
        address, password_hash, enabled, created = row
        return User(address, password_hash, bool(enabled), created)

    def get_user(self, address: str) -> User | None:
        row = (
            self._connection()
            .execute(
                f"SELECT {self._USER_COLUMNS} FROM users WHERE address = ?",
                (normalize_mailbox(address),),
            )
            .fetchone()
        )
        return None if row is None else self._user(row)

    def list_users(self, domain: str | None = None) -> list[User]:
        with self._transaction("DEFERRED") as conn:
            if domain is None:
                rows = conn.execute(f"SELECT {self._USER_COLUMNS} FROM users ORDER BY address")
            else:
                name = normalize_domain(domain)
                if not self._domain_exists(conn, name):
                    raise UnknownDomain(name)
                rows = conn.execute(
                    f"SELECT {self._USER_COLUMNS} FROM users WHERE domain = ? ORDER BY address",
                    (name,),
                )
            return [self._user(row) for row in rows]

    @staticmethod
    def _user_enabled(conn: sqlite3.Connection, mailbox: str) -> bool | None:
        """None if ``mailbox`` is no user, else whether it is enabled."""
        row = conn.execute("SELECT enabled FROM users WHERE address = ?", (mailbox,)).fetchone()
        return None if row is None else bool(row[0])

    # --- aliases --------------------------------------------------------------------------------

    def _normalize_target(self, conn: sqlite3.Connection, target: str) -> str:
        """Targets in local domains are mailboxes (lowercased); others keep their local part."""
        _, domain = split_address(target)
        if self._domain_exists(conn, normalize_domain(domain)):
            return normalize_mailbox(target)
        return normalize_remote_address(target)

    def add_alias(self, source: str, target: str) -> Alias:
        src = _normalize_source(source)
        domain = _domain_of(src)
        with self._transaction() as conn:
            if not self._domain_exists(conn, domain):
                raise UnknownDomain(domain)
            tgt = self._normalize_target(conn, target)
            cursor = conn.execute(
                "INSERT INTO aliases (source, domain, target) VALUES (?, ?, ?)"
                " ON CONFLICT (source, target) DO NOTHING",
                (src, domain, tgt),
            )
            if cursor.rowcount == 0:
                raise AliasExists(src, tgt)
        return Alias(src, tgt)

    def delete_alias(self, source: str, target: str | None = None) -> None:
        src = _normalize_source(source)
        conn = self._connection()
        if target is None:
            cursor = conn.execute("DELETE FROM aliases WHERE source = ?", (src,))
            if cursor.rowcount == 0:
                raise UnknownAlias(src)
            self._note_change()
            return
        # The stored spelling depends on whether the target's domain was local when it was
        # added, so accept either normalization.
        candidates = {normalize_remote_address(target)}
        try:
            candidates.add(normalize_mailbox(target))
        except AddressError:
            pass
        placeholders = ", ".join("?" * len(candidates))
        cursor = conn.execute(
            f"DELETE FROM aliases WHERE source = ? AND target IN ({placeholders})",
            (src, *candidates),
        )
        if cursor.rowcount == 0:
            raise UnknownAlias(src, min(candidates))
        self._note_change()

    def list_aliases(self, domain: str | None = None) -> list[Alias]:
        with self._transaction("DEFERRED") as conn:
            if domain is None:
                rows = conn.execute("SELECT source, target FROM aliases ORDER BY source, rowid")
            else:
                name = normalize_domain(domain)
                if not self._domain_exists(conn, name):
                    raise UnknownDomain(name)
                rows = conn.execute(
                    "SELECT source, target FROM aliases WHERE domain = ? ORDER BY source, rowid",
                    (name,),
                )
            return [Alias(source, target) for source, target in rows]

    @staticmethod
    def _targets(conn: sqlite3.Connection, source: str) -> list[str]:
        rows = conn.execute("SELECT target FROM aliases WHERE source = ? ORDER BY rowid", (source,))
        return [target for (target,) in rows]

    # --- recipient resolution -------------------------------------------------------------------

    def resolve_recipient(self, address: str) -> Resolution | None:
        """Resolve like Postfix's virtual_alias_maps followed by its mailbox maps.

        An alias source expands to its targets, each resolved the same way in turn (so chains
        work); a target already on the current path (the source itself, or a loop) delivers to
        that user if it is one and is dropped otherwise. An address that is no alias source is a
        user's mailbox, or else falls to its domain's '@domain' catch-all. Disabled users are
        dropped; when that leaves nothing, MailboxDisabled is raised. None means no such
        recipient (including a non-local domain).
        """
        local, domain_text = split_address(address)
        domain = normalize_domain(domain_text)
        try:
            mailbox: str | None = normalize_mailbox(address)
        except AddressError:
            normalize_remote_address(address)  # raises if not even a valid address
            mailbox = None  # valid, but can never be a user or alias source: catch-all only
        with self._transaction("DEFERRED") as conn:
            if not self._domain_exists(conn, domain):
                return None
            out = _Expansion(local_domains={domain: True})
            if mailbox is None:
                for target in self._targets(conn, "@" + domain):
                    self._follow(conn, target, (), out)
            else:
                self._expand(conn, mailbox, (), out)
        if out.mailboxes or out.remote:
            return Resolution(tuple(out.mailboxes), tuple(out.remote))
        if out.disabled:
            raise MailboxDisabled(mailbox or f"{local}@{domain}")
        return None

    def _expand(
        self, conn: sqlite3.Connection, mailbox: str, path: tuple[str, ...], out: _Expansion
    ) -> None:
        """Resolve ``mailbox`` (in a local domain) into ``out``."""
        out.lookups += 1
        if len(path) > MAX_ALIAS_DEPTH or out.lookups > MAX_ALIAS_LOOKUPS:
            _log.warn(
                "alias expansion of {path} too deep or too large, dropped {mailbox}",
                path=" -> ".join(path),
                mailbox=mailbox,
            )
            return
        path = (*path, mailbox)
        targets = self._targets(conn, mailbox)
        if not targets:
            enabled = self._user_enabled(conn, mailbox)
            if enabled is not None:
                out.deliver(mailbox, enabled)
                return
            targets = self._targets(conn, "@" + _domain_of(mailbox))
        for target in targets:
            self._follow(conn, target, path, out)

    def _follow(
        self, conn: sqlite3.Connection, target: str, path: tuple[str, ...], out: _Expansion
    ) -> None:
        domain = _domain_of(target)
        if domain not in out.local_domains:
            out.local_domains[domain] = self._domain_exists(conn, domain)
        if not out.local_domains[domain]:
            out.remote[target] = None
            return
        try:
            mailbox = normalize_mailbox(target)
        except AddressError:
            _log.warn("alias target {target} cannot be a local mailbox, dropped", target=target)
            return
        if mailbox in path:
            enabled = self._user_enabled(conn, mailbox)
            if enabled is not None:
                out.deliver(mailbox, enabled)
            return
        self._expand(conn, mailbox, path, out)

    def owns_address(self, user: str, sender: str) -> bool:
        try:
            user_mailbox = normalize_mailbox(user)
            sender_mailbox = normalize_mailbox(sender)
        except AddressError:
            return False
        if user_mailbox == sender_mailbox:
            return True
        with self._transaction("DEFERRED") as conn:
            if not self._targets(conn, sender_mailbox):
                return False  # not an exact alias source (catch-alls do not count)
            out = _Expansion()
            self._expand(conn, sender_mailbox, (), out)
        return user_mailbox in out.mailboxes
