"""The event hub's listener for webhooks: outcomes -> the webhooks that want them -> the outbox.

The hub calls listeners in the emitter's thread (the reactor, the commit thread, queue workers),
and mail flow must never wait for them: ``__call__`` only hands the event to the reactor
(``callFromThread``). There, outcomes are made (payload.py) and, unless there is surely no
webhook, queued for one writer at a time, which in a worker thread matches them against the
webhooks and writes one outbox file per call (one directory sync per batch) before the
dispatcher is told. While a batch is written the next one gathers, so a burst costs few syncs.

Who sent a message: message.accepted says (the authenticated user); the queue's later attempts
do not, so what accepted said is remembered per queue id until ``queue.removed``. An attempt
at a message queued before a restart has no such memory: a user's webhook then hears of it when
the user owns its sender address (the user database decides, in the worker thread).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.threadable import isInIOThread

from mailsuite.accounts.webhooks import Webhook
from mailsuite.webhooks.directory import HookDirectory
from mailsuite.webhooks.outbox import Outbox, OutboxItem
from mailsuite.webhooks.payload import MessageFacts, Outcome, from_accepted, from_attempt

log = Logger(namespace="mailsuite.webhooks")

KINDS = frozenset({"message.accepted", "delivery.attempt", "queue.removed"})
MAX_PENDING = 10_000  # outcomes waiting for the writer; beyond, new ones are dropped (logged)
MAX_FACTS = 50_000  # queued messages remembered (oldest forgotten first)


class WebhookCollector:
    def __init__(
        self,
        database: Any,
        hooks: HookDirectory,
        outbox: Outbox,
        deliver: Callable[[list[OutboxItem]], None],
        reactor: Any = None,
        in_thread: Callable[..., Deferred] = threads.deferToThread,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``deliver(items)``: the dispatcher, told of new outbox files (on the reactor)."""
        if reactor is None:
            from twisted.internet import reactor
        self.database = database
        self.hooks = hooks
        self.outbox = outbox
        self.deliver = deliver
        self._reactor = reactor
        self._in_thread = in_thread
        self._clock = clock
        self._facts: OrderedDict[str, MessageFacts] = OrderedDict()
        self._pending: list[Outcome] = []
        self._writing = False
        self.dropped = 0

    def __call__(self, kind: str, fields: dict[str, Any]) -> None:
        """The hub's listener (any thread): quick, never blocks. On the reactor thread the event
        is handled at once; from a worker it is handed over (``callFromThread`` wakes the
        reactor: not something to pay for every message)."""
        if kind not in KINDS:
            return
        if isInIOThread():
            self._received(kind, fields, self._clock())
        else:
            self._reactor.callFromThread(self._received, kind, fields, self._clock())

    # --- on the reactor ---------------------------------------------------------------------

    def _received(self, kind: str, fields: dict[str, Any], now: float) -> None:
        queue_id = fields.get("queue_id")
        if kind == "queue.removed":
            self._facts.pop(queue_id, None)
            return
        if kind == "message.accepted":
            if queue_id:
                self._remember(queue_id, fields)
            outcomes = from_accepted(fields, now)
        else:
            outcomes = from_attempt(fields, self._facts.get(queue_id), now)
        if not outcomes or self.hooks.surely_none():
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += len(outcomes)
            if self.dropped % 1000 < len(outcomes):
                log.warn("webhook outbox writer behind: {count} events dropped", count=self.dropped)
            return
        self._pending.extend(outcomes)
        self._flush()

    def _remember(self, queue_id: str, fields: dict[str, Any]) -> None:
        facts = MessageFacts(
            fields.get("id", ""), fields.get("message_id", ""), fields.get("user") or ""
        )
        self._facts[queue_id] = facts
        if len(self._facts) > MAX_FACTS:
            self._facts.popitem(last=False)

    def _flush(self) -> None:
        if self._writing or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._writing = True
        d = self._in_thread(self._write, batch)
        d.addCallback(self._written)
        d.addErrback(lambda failure: log.failure("writing webhook calls failed", failure))
        d.addBoth(self._next)

    def _written(self, items: list[OutboxItem]) -> None:
        if items:
            self.deliver(items)

    def _next(self, _: object) -> None:
        self._writing = False
        self._flush()

    # --- in the worker thread -----------------------------------------------------------------

    def _write(self, batch: list[Outcome]) -> list[OutboxItem]:
        hooks = self.hooks.load()
        owned: dict[tuple[str, str], bool] = {}
        items = []
        for outcome in batch:
            body: bytes | None = None
            for hook in hooks.values():
                if hook.wants(outcome.event) and self._matches(hook, outcome, owned):
                    body = body if body is not None else outcome.body()
                    items.append(self.outbox.add(hook.id, body, outcome.time))
        if items:
            self.outbox.sync()
        return items

    def _matches(self, hook: Webhook, outcome: Outcome, owned: dict[tuple[str, str], bool]) -> bool:
        """Global webhooks hear everything; a user's hears what that user sent."""
        if hook.user is None:
            return True
        if outcome.user is not None:
            return outcome.user == hook.user
        key = (hook.user, outcome.sender)
        if key not in owned:
            owned[key] = bool(outcome.sender) and self.database.owns_address(*key)
        return owned[key]
