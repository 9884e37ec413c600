"""Who is calling: ``Authorization: Bearer ms_...`` checked against the user database.

The format is checked first, on the reactor (no thread for garbage); a well-formed key is
looked up in a worker thread (SQLite, SHA-256: accounts/apikeys.py). A missing, unknown,
revoked key or one of a disabled user are all the same 401, so the answer tells nothing about
which keys exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers

from mailsuite.accounts.apikeys import APIKey, key_id
from mailsuite.web.api.errors import APIError

_SCHEME = b"bearer "


def bearer_key(headers: Headers) -> str | None:
    """The key of an ``Authorization: Bearer`` header if it is well formed, else None."""
    values = headers.getRawHeaders(b"authorization") or []
    if len(values) != 1 or values[0][: len(_SCHEME)].lower() != _SCHEME:
        return None
    try:
        key = values[0][len(_SCHEME) :].strip().decode("ascii")
    except UnicodeDecodeError:
        return None
    return key if key_id(key) is not None else None


def has_key(headers: Headers) -> bool:
    """Whether a request carries something that may be a key (before its body is read)."""
    return bearer_key(headers) is not None


class KeyChecker:
    def __init__(
        self, database: Any, in_thread: Callable[..., Deferred] = threads.deferToThread
    ) -> None:
        """``database``: an IAPIKeys (the user database)."""
        self.database = database
        self._in_thread = in_thread

    async def check(self, headers: Headers) -> APIKey:
        """The caller's key; APIError 401 when there is none that works."""
        key = bearer_key(headers)
        if key is None:
            raise APIError(401, "unauthorized", "send an API key: Authorization: Bearer ms_...")
        found = await self._in_thread(self.database.check_api_key, key)
        if found is None:
            raise APIError(401, "unauthorized", "this API key is not valid")
        return found
