"""Who is logged in to the admin page: random session tokens in memory, and one-time login links.

A session is an unguessable token in an HttpOnly, SameSite=Strict cookie (so another site cannot
make the browser act with it), valid for a few hours and forgotten at a restart. A one-time link
(``mailsuite-admin web link USER``) is a token whose SHA-256 is written under <data>/web/links/ by
the CLI: the server accepts it once, within minutes, and turns it into a session; the token itself
is never stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SESSION_SECONDS = 8 * 3600
LINK_SECONDS = 600
COOKIE = b"mailsuite_admin"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Session:
    user: str
    expires: float


class AdminSessions:
    def __init__(self, links_dir: Path, now=time.time) -> None:
        self.links_dir = Path(links_dir)
        self._now = now
        self._sessions: dict[str, Session] = {}

    def open(self, user: str) -> str:
        """A new session for ``user``; returns its token (the cookie value)."""
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._sessions[token] = Session(user, self._now() + SESSION_SECONDS)
        return token

    def user(self, token: str | None) -> str | None:
        session = self._sessions.get(token or "")
        if session is None or session.expires < self._now():
            return None
        return session.user

    def close(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)

    def _forget_expired(self) -> None:
        now = self._now()
        for token in [t for t, s in self._sessions.items() if s.expires < now]:
            del self._sessions[token]

    # --- one-time links (blocking file I/O: call in a thread) ---------------------------------

    def redeem_link(self, token: str) -> str | None:
        """The user a one-time link token was made for, once; None if unknown, used or old."""
        if not token or len(token) > 200 or not set(token) <= _TOKEN_CHARS:
            return None
        path = self.links_dir / _digest(token)
        try:
            claimed = path.with_suffix(".used")
            os.rename(path, claimed)  # atomic: a second use finds nothing
        except OSError:
            return None
        try:
            record = json.loads(claimed.read_text())
        finally:
            claimed.unlink(missing_ok=True)
        if record.get("expires", 0) < self._now():
            return None
        return record.get("user")


def make_link_token(links_dir: Path, user: str, now: float | None = None) -> str:
    """For the CLI: store a one-time link for ``user`` and return its token."""
    token = secrets.token_urlsafe(32)
    links_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    expires = (now if now is not None else time.time()) + LINK_SECONDS
    path = links_dir / _digest(token)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"user": user, "expires": expires}, fh)
    return token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
