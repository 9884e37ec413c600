"""The user database schema as an ordered list of migrations, tracked in ``PRAGMA user_version``.

Migration N (1-based) turns a version N-1 database into version N. Append new steps; never edit
a released one, since existing databases have already run it.
"""

from __future__ import annotations

import sqlite3

from mailsuite.accounts.errors import SchemaTooNew

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: domains, users, aliases.
    (
        """CREATE TABLE domains (
            name TEXT PRIMARY KEY,
            created TEXT NOT NULL
        )""",
        """CREATE TABLE users (
            address TEXT PRIMARY KEY,
            domain TEXT NOT NULL REFERENCES domains(name),
            password_hash TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
            created TEXT NOT NULL
        )""",
        "CREATE INDEX users_domain ON users(domain)",
        # source: 'local@domain' or the catch-all '@domain'; domain is the source's domain.
        """CREATE TABLE aliases (
            source TEXT NOT NULL,
            domain TEXT NOT NULL REFERENCES domains(name),
            target TEXT NOT NULL,
            PRIMARY KEY (source, target)
        )""",
        "CREATE INDEX aliases_domain ON aliases(domain)",
    ),
    # 2: administrators (the built-in admin page, /admin).
    ("ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1))",),
    # 3: API keys of the HTTP send API (only the SHA-256 of each key, found by its id: the key's
    # first characters) and webhooks (a user's, or global when owner is NULL; the secret is kept
    # as is, since signing needs it). Deleting a user deletes its keys and webhooks.
    (
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL REFERENCES users(address) ON DELETE CASCADE,
            label TEXT NOT NULL DEFAULT '',
            digest TEXT NOT NULL,
            created TEXT NOT NULL,
            last_used TEXT
        )""",
        "CREATE INDEX api_keys_owner ON api_keys(owner)",
        """CREATE TABLE webhooks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            owner TEXT REFERENCES users(address) ON DELETE CASCADE,
            events TEXT NOT NULL,
            secret TEXT NOT NULL,
            created TEXT NOT NULL
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: object) -> None:
    """Bring the database to SCHEMA_VERSION in one transaction (``conn`` is in autocommit mode)."""
    if _version(conn) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)  # another process may have migrated while we waited
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{path}: user database schema version {version} is newer than this mailsuite "
                f"supports ({SCHEMA_VERSION}); upgrade mailsuite"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]
