"""Makes the outbox's calls: a signed POST each, retried with backoff until 2xx or given up.

Per webhook, calls go out oldest first, at most MAX_IN_FLIGHT at a time (so events may arrive
a little out of order; ``time`` orders them). A failed call (no connection, timeout, an answer
other than 2xx) is tried again after Backoff.delay(its failures), and pauses its webhook for
Backoff.delay(the webhook's failures in a row): a receiver that is down gets a probe now and
then, not every waiting call, and when a probe gets through, the pause ends and the rest
follows at once. A call whose event is older than ``give_up`` is dropped and logged.

Everything here runs on the reactor; outbox reads and deletions in worker threads. The HTTP
client is twisted.web's Agent with a small persistent pool; https:// URLs are verified like a
browser does (BrowserLikePolicyForHTTPS).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers

from mailsuite.accounts.webhooks import Webhook
from mailsuite.webhooks.backoff import Backoff
from mailsuite.webhooks.directory import HookDirectory
from mailsuite.webhooks.outbox import Outbox, OutboxItem
from mailsuite.webhooks.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = Logger(namespace="mailsuite.webhooks")

MAX_IN_FLIGHT = 4  # calls at once per webhook
MAX_RESPONSE = 64 * 1024  # bytes of a receiver's answer read (and thrown away)
USER_AGENT = b"mailsuite-webhooks"

DELIVERED, FAILED, DROPPED = "delivered", "failed", "dropped"


@dataclass
class _HookQueue:
    """The calls of one webhook."""

    ready: deque[OutboxItem] = field(default_factory=deque)  # due, oldest first
    waiting: list[tuple[float, int, OutboxItem]] = field(default_factory=list)  # heap by due
    in_flight: int = 0
    failures: int = 0  # failed calls in a row
    paused_until: float = 0.0

    def idle(self) -> bool:
        return not self.ready and not self.waiting and not self.in_flight


class _Discard(Protocol):
    """Reads a receiver's answer body and forgets it (the pool reuses the connection after)."""

    def __init__(self) -> None:
        self.seen = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - twisted's name
        self.seen += len(data)
        if self.seen > MAX_RESPONSE and self.transport is not None:
            self.transport.stopProducing()


class WebhookDispatcher:
    def __init__(
        self,
        outbox: Outbox,
        hooks: HookDirectory,
        backoff: Backoff,
        timeout: float = 10.0,
        reactor: Any = None,
        agent: Any = None,
        in_thread: Callable[..., Deferred] = threads.deferToThread,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.outbox = outbox
        self.hooks = hooks
        self.backoff = backoff
        self.timeout = timeout
        self._reactor = reactor
        self._pool: HTTPConnectionPool | None = None
        if agent is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = MAX_IN_FLIGHT
            agent = Agent(reactor, pool=self._pool, connectTimeout=timeout)
        self._agent = agent
        self._in_thread = in_thread
        self._clock = clock
        self._queues: dict[int, _HookQueue] = {}
        self._known: set[str] = set()  # names queued here (the start-up scan may repeat some)
        self._sequence = itertools.count()
        self._timer: Any = None
        self._stopped = False
        # Counters, for logs and tests.
        self.delivered = 0
        self.failed = 0
        self.given_up = 0

    # --- what comes in ---------------------------------------------------------------------

    def add(self, items: list[OutboxItem]) -> None:
        """New calls to make (from the collector, or the outbox at start-up)."""
        if self._stopped:
            return  # they stay in the outbox for the next start
        for item in items:
            if item.name not in self._known:
                self._known.add(item.name)
                self._queues.setdefault(item.webhook, _HookQueue()).ready.append(item)
        self._pump()

    def start(self) -> None:
        """Dispatch again (after ``stop``; a new instance starts dispatching at once)."""
        self._stopped = False
        self._pump()

    def stop(self) -> None:
        """No new calls; the outbox keeps what is left. Calls under way may still finish."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._pool is not None:
            self._pool.closeCachedConnections()

    @property
    def pending(self) -> int:
        return len(self._known)

    # --- scheduling -------------------------------------------------------------------------

    def _pump(self) -> None:
        if self._stopped:
            return
        now = self._clock()
        for webhook, queue in list(self._queues.items()):
            while queue.waiting and queue.waiting[0][0] <= now:
                queue.ready.append(heapq.heappop(queue.waiting)[2])
            while queue.ready and queue.in_flight < MAX_IN_FLIGHT and queue.paused_until <= now:
                item = queue.ready.popleft()
                if self.backoff.expired(item.created, now):
                    self._give_up(item)
                    continue
                queue.in_flight += 1
                d = Deferred.fromCoroutine(self._call(item))
                d.addErrback(self._unexpected, item)
                d.addCallback(self._done, queue, item)
            if queue.idle():
                del self._queues[webhook]
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        """One timer, for the earliest moment something becomes due."""
        times = []
        for queue in self._queues.values():
            if queue.ready and queue.in_flight < MAX_IN_FLIGHT:
                times.append(queue.paused_until)
            if queue.waiting:
                times.append(max(queue.waiting[0][0], queue.paused_until))
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if times:
            self._timer = self._reactor.callLater(max(0.0, min(times) - now), self._pump)

    def _done(self, result: str, queue: _HookQueue, item: OutboxItem) -> None:
        queue.in_flight -= 1
        now = self._clock()
        if result == FAILED:
            self.failed += 1
            item.attempts += 1
            item.due = now + self.backoff.delay(item.attempts)
            heapq.heappush(queue.waiting, (item.due, next(self._sequence), item))
            if queue.paused_until <= now:  # the first failure since the last pause
                queue.failures += 1
                queue.paused_until = now + self.backoff.delay(queue.failures)
        else:
            self._known.discard(item.name)
            if result == DELIVERED:
                self.delivered += 1
                queue.failures, queue.paused_until = 0, 0.0
        if queue.idle():
            self._queues.pop(item.webhook, None)
        self._pump()

    def _give_up(self, item: OutboxItem) -> None:
        self.given_up += 1
        self._known.discard(item.name)
        log.warn(
            "webhook {webhook}: call {name} given up after {attempts} failed attempts",
            webhook=item.webhook,
            name=item.name,
            attempts=item.attempts,
        )
        self._forget(item)

    def _forget(self, item: OutboxItem) -> Deferred:
        d = self._in_thread(self.outbox.remove, item.name)
        d.addErrback(
            lambda failure: log.failure(
                "removing webhook call {name} failed", failure, name=item.name
            )
        )
        return d

    @staticmethod
    def _unexpected(failure: Failure, item: OutboxItem) -> str:
        log.failure("webhook call {name} failed unexpectedly", failure, name=item.name)
        return FAILED

    # --- one call ---------------------------------------------------------------------------

    async def _call(self, item: OutboxItem) -> str:
        hooks = await self._in_thread(self.hooks.load)
        hook = hooks.get(item.webhook)
        if hook is None:  # deleted since: its calls go with it
            await self._forget(item)
            return DROPPED
        body = await self._in_thread(self.outbox.body, item.name)
        if body is None:
            return DROPPED
        try:
            code = await self._post(hook, body)
        except Exception as exc:
            self._log_failure(hook, item, f"{type(exc).__name__}: {exc}")
            return FAILED
        if not 200 <= code < 300:
            self._log_failure(hook, item, f"answered {code}")
            return FAILED
        await self._forget(item)
        return DELIVERED

    async def _post(self, hook: Webhook, body: bytes) -> int:
        timestamp = int(time.time())
        headers = Headers(
            {
                b"content-type": [b"application/json"],
                b"user-agent": [USER_AGENT],
                TIMESTAMP_HEADER.encode(): [str(timestamp).encode()],
                SIGNATURE_HEADER.encode(): [sign(hook.secret, timestamp, body).encode()],
            }
        )
        d = self._agent.request(
            b"POST", hook.url.encode("ascii"), headers, FileBodyProducer(BytesIO(body))
        )
        d.addTimeout(self.timeout, self._reactor)
        response = await d
        response.deliverBody(_Discard())
        return response.code

    def _log_failure(self, hook: Webhook, item: OutboxItem, reason: str) -> None:
        log.info(
            "webhook {webhook} ({url}): call {name} failed ({reason}); retrying in {delay:.0f} s",
            webhook=hook.id,
            url=hook.url,
            name=item.name,
            reason=reason,
            delay=self.backoff.delay(item.attempts + 1),
        )
