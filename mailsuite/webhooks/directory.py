"""The webhooks as the user database has them, re-read only when the database changed.

The database's ``generation()`` (two stat() calls) says whether the list read last is still
current, so the event listener can tell on the reactor, without a thread, that there are no
webhooks at all (the common case) and drop events at once.
"""

from __future__ import annotations

import time
from typing import Any

from mailsuite.accounts.webhooks import Webhook


class HookDirectory:
    def __init__(self, database: Any) -> None:
        """``database``: an IWebhooks with ``generation()`` (the user database)."""
        self.database = database
        self._cache: tuple[object, dict[int, Webhook]] = (object(), {})
        self._checked = float("-inf")
        self._none = False

    def surely_none(self) -> bool:
        """True when there is known to be no webhook (cheap; safe on the reactor thread).

        Asked for every delivery event: the database's generation (two stat calls) is looked
        at most once a second, so a webhook added meanwhile is heard of within a second."""
        generation, hooks = self._cache
        if hooks:
            return False
        now = time.monotonic()
        if now - self._checked < 1.0:
            return self._none
        self._checked = now
        self._none = generation == self.database.generation()
        return self._none

    def load(self) -> dict[int, Webhook]:
        """Every webhook by id (worker thread: it may query SQLite)."""
        generation = self.database.generation()
        cached, hooks = self._cache
        if cached != generation:
            hooks = {hook.id: hook for hook in self.database.list_webhooks()}
            self._cache = (generation, hooks)  # one tuple: readers never see half of it
        return hooks
