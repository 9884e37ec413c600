"""API keys of the HTTP send API, kept in the user database beside the users they act for.

A key is ``ms_`` + 32 random URL-safe characters (192 bits), shown once when it is made. Only
its SHA-256 is stored: a slow password hash (argon2) guards guessable passwords, but nobody can
guess 192 random bits, so a fast hash is as safe here and keeps every API request cheap. The
first ID_LENGTH characters after ``ms_`` are the key's id: the row is found by it, the digest
compared in constant time, and ``mailsuite-admin apikey list``/``revoke`` name keys by it (it
gives away 48 of the 192 bits, leaving 144 unguessable ones).

``last_used`` is written at most once per LAST_USED_EVERY seconds per key: every write changes
the database's ``generation()`` and so empties the routing caches of the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zope.interface import Interface

from mailsuite.accounts.addresses import normalize_mailbox
from mailsuite.accounts.errors import AccountsError, UnknownUser

KEY_PREFIX = "ms_"
KEY_LENGTH = 32  # random characters after the prefix
ID_LENGTH = 8
LAST_USED_EVERY = 60.0  # seconds
MAX_LABEL = 200

_KEY = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{{KEY_LENGTH}}}\Z")


class UnknownAPIKey(AccountsError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"unknown API key {key_id}")
        self.key_id = key_id


class InvalidAPIKeyLabel(AccountsError):
    def __init__(self) -> None:
        super().__init__(f"an API key label is one line of at most {MAX_LABEL} characters")


@dataclass(frozen=True)
class APIKey:
    """What is known of a key (never the key itself)."""

    id: str
    user: str
    label: str
    created: str
    last_used: str | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_LENGTH * 3 // 4)


def key_id(key: str) -> str | None:
    """The id of a well-formed key, None for anything else (no database lookup needed)."""
    if not isinstance(key, str) or not _KEY.match(key):
        return None
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + ID_LENGTH]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class IAPIKeys(Interface):
    """The API key part of the user database (synchronous, thread-safe, like IUserDatabase)."""

    def add_api_key(user: str, label: str = "") -> tuple[APIKey, str]:
        """Make a key for ``user`` (UnknownUser); returns it and the key, which is not stored."""

    def list_api_keys(user: str | None = None) -> list[APIKey]:
        """The keys of ``user``, or all, by user then creation."""

    def revoke_api_key(key_id: str) -> APIKey:
        """Delete a key for good (UnknownAPIKey)."""

    def check_api_key(key: str) -> APIKey | None:
        """The key's record if ``key`` is a live key of an enabled user, else None; notes its
        use (see LAST_USED_EVERY)."""


_COLUMNS = "id, owner, label, created, last_used"


class APIKeyTable:
    """IAPIKeys for SQLiteUserDatabase (a base class of it: it uses its connections)."""

    _connection: Any
    _transaction: Any

    def add_api_key(self, user: str, label: str = "") -> tuple[APIKey, str]:
        mailbox = normalize_mailbox(user)
        if len(label) > MAX_LABEL or any(ch < " " or ch == "\x7f" for ch in label):
            raise InvalidAPIKeyLabel()
        created = _now().isoformat(timespec="seconds")
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE address = ?", (mailbox,)).fetchone() is None:
                raise UnknownUser(mailbox)
            while True:
                key = new_key()
                ident = key_id(key)
                if ident is None:  # token_urlsafe never gives this; a second try costs nothing
                    continue
                try:
                    conn.execute(
                        "INSERT INTO api_keys (id, owner, label, digest, created)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (ident, mailbox, label, key_digest(key), created),
                    )
                except sqlite3.IntegrityError:
                    continue  # an id taken already (1 in 2^48 per existing key): draw again
                break
        return APIKey(ident, mailbox, label, created, None), key

    def list_api_keys(self, user: str | None = None) -> list[APIKey]:
        conn = self._connection()
        if user is None:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY owner, created, id")
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE owner = ? ORDER BY created, id",
                (normalize_mailbox(user),),
            )
        return [APIKey(*row) for row in rows]

    def revoke_api_key(self, key_id: str) -> APIKey:
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
            found = row.fetchone()
            if found is None:
                raise UnknownAPIKey(key_id)
            conn.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
        return APIKey(*found)

    def check_api_key(self, key: str) -> APIKey | None:
        ident = key_id(key)
        if ident is None:
            return None
        conn = self._connection()
        row = conn.execute(
            f"SELECT {', '.join('k.' + c for c in _COLUMNS.split(', '))}, k.digest"
            " FROM api_keys k JOIN users u ON u.address = k.owner"
            " WHERE k.id = ? AND u.enabled = 1",
            (ident,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[-1], key_digest(key)):
            return None
        found = APIKey(*row[:-1])
        now = _now()
        stale = now - timedelta(seconds=LAST_USED_EVERY)
        if found.last_used is None or datetime.fromisoformat(found.last_used) < stale:
            # Not a change any lookup depends on: no _note_change(), so caches stay warm.
            conn.execute(
                "UPDATE api_keys SET last_used = ? WHERE id = ?",
                (now.isoformat(timespec="seconds"), ident),
            )
        return found
