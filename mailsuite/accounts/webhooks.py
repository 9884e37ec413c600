"""Webhook subscriptions, kept in the user database: where to POST which delivery outcomes.

A webhook belongs to a user (it hears of the mail that user sends) or to nobody (global: it
hears of every delivery). Its secret signs each call (mailsuite/webhooks/signature.py), so it
is stored as it is: a hash of it could not sign anything. The database file is private (0600).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from zope.interface import Interface

from mailsuite.accounts.addresses import normalize_mailbox
from mailsuite.accounts.errors import AccountsError, UnknownUser

# The outcomes a webhook may ask for: a recipient got it, it waits for a retry, it bounced.
EVENTS = ("delivered", "deferred", "bounced")
SECRET_PREFIX = "whsec_"
MAX_URL = 2048


class UnknownWebhook(AccountsError):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"unknown webhook {webhook_id}")
        self.webhook_id = webhook_id


class InvalidWebhook(AccountsError):
    """A URL or an event list that cannot be used; str() says why."""


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    user: str | None  # None: global
    events: tuple[str, ...]
    secret: str
    created: str

    def wants(self, event: str) -> bool:
        return event in self.events


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host, else InvalidWebhook."""
    usable = isinstance(url, str) and len(url) <= MAX_URL and url.isascii()
    if not usable or any(ch <= " " or ch == "\x7f" for ch in url):
        raise InvalidWebhook(f"not a usable URL: {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook(f"a webhook URL is http:// or https:// with a host, not {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidWebhook(f"bad port in {url!r}") from None
    return url


def parse_events(text: str) -> tuple[str, ...]:
    """ "delivered,bounced" -> ("delivered", "bounced") in EVENTS order; InvalidWebhook else."""
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(EVENTS))
    if unknown or not names:
        raise InvalidWebhook(f"events are a comma-separated list of {', '.join(EVENTS)}")
    return tuple(name for name in EVENTS if name in names)


class IWebhooks(Interface):
    """The webhook part of the user database (synchronous, thread-safe, like IUserDatabase)."""

    def add_webhook(url: str, user: str | None = None, events: tuple[str, ...] = EVENTS) -> Webhook:
        """Subscribe ``url`` (InvalidWebhook, UnknownUser); the secret is made here."""

    def list_webhooks() -> list[Webhook]:
        """Every webhook, oldest first."""

    def delete_webhook(webhook_id: int) -> None:
        """Unsubscribe (UnknownWebhook)."""


_COLUMNS = "id, url, owner, events, secret, created"


def _webhook(row: tuple) -> Webhook:
    ident, url, owner, events, secret, created = row
    return Webhook(ident, url, owner, tuple(events.split(",")), secret, created)


class WebhookTable:
    """IWebhooks for SQLiteUserDatabase (a base class of it: it uses its connections)."""

    _connection: Any
    _transaction: Any

    def add_webhook(
        self, url: str, user: str | None = None, events: tuple[str, ...] = EVENTS
    ) -> Webhook:
        check_url(url)
        if not events or set(events) - set(EVENTS):
            raise InvalidWebhook(f"events are some of {', '.join(EVENTS)}")
        owner = None if user is None else normalize_mailbox(user)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as conn:
            if owner is not None:
                known = conn.execute("SELECT 1 FROM users WHERE address = ?", (owner,)).fetchone()
                if known is None:
                    raise UnknownUser(owner)
            cursor = conn.execute(
                "INSERT INTO webhooks (url, owner, events, secret, created) VALUES (?, ?, ?, ?, ?)",
                (url, owner, ",".join(events), secret, created),
            )
            ident = cursor.lastrowid
        return Webhook(ident, url, owner, tuple(events), secret, created)

    def list_webhooks(self) -> list[Webhook]:
        rows = self._connection().execute(f"SELECT {_COLUMNS} FROM webhooks ORDER BY id")
        return [_webhook(row) for row in rows]

    def delete_webhook(self, webhook_id: int) -> None:
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            if cursor.rowcount == 0:
                raise UnknownWebhook(webhook_id)
