"""The queue scheduler: a Service in the reactor that delivers every entry of the spool.

Each entry lives in memory while it is queued. When recipients fall due they are grouped by
destination (one job per message and destination, so one connection carries them all) and jobs
start as connection slots free up: at most ``max_connections`` at once, ``max_per_destination``
per destination. A job's outcomes are applied to the entry and saved atomically (in a worker
thread, one write at a time per entry) as soon as the job ends, so the RFC 5321 §6.1 duplicate
window is the time of one fsync. Failures are then reported to the sender (DSN) before they are
marked reported, and an entry with nothing left to do is removed.

Only this service writes the spool while it runs (it holds the queue lock); ``mailsuite-admin
queue`` sends its changes as requests that ``_operate()`` applies between deliveries.
"""

from __future__ import annotations

import copy
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet import threads
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredLock,
    ensureDeferred,
    maybeDeferred,
    succeed,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsuite.accounts.database import IUserDatabase
from mailsuite.config import Config
from mailsuite.events import NO_EVENTS, Events
from mailsuite.queue.bounce import BounceSender
from mailsuite.queue.client import Timeouts
from mailsuite.queue.control import ControlChannel, QueueLock
from mailsuite.queue.dsn import DELAYED_ACTION, FAILED_ACTION
from mailsuite.queue.entry import DELIVERED, Outcome, QueueEntry, RetryPolicy, epoch
from mailsuite.queue.message import MAX_HOPS, MessageInfo, inspect_message
from mailsuite.queue.routing import Destination, DNSResolver, RoutingTable
from mailsuite.queue.spool import QueueSpool
from mailsuite.queue.transport import Attempt, DeliveryAgent, DeliveryRequest
from mailsuite.resolver import Resolver
from mailsuite.store.maildir import MaildirStore

log = Logger(namespace="mailsuite.queue")

CONTROL_INTERVAL = 0.25  # seconds between looks for admin requests
ADMIN_BOUNCE_TEXT = "message returned to the sender by the administrator"


class _EntryState:
    """An entry plus what the scheduler does with it right now."""

    def __init__(self, entry: QueueEntry) -> None:
        self.entry = entry
        self.in_flight: set[str] = set()  # recipients in a job (waiting or running)
        self.jobs: set[_Job] = set()
        self.timer: Any = None
        self.write_lock = DeferredLock()
        self.info: MessageInfo | None = None
        self.notifying = False
        self.cancelled = False  # an admin operation waits for the jobs to stop
        self.idle_waiters: list[Deferred] = []
        self.removed = False


@dataclass(eq=False)
class _Job:
    state: _EntryState
    destination: Destination
    recipients: tuple[str, ...]
    attempt: Attempt = field(default_factory=Attempt)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


class QueueScheduler(Service):
    name = "queue"

    def __init__(
        self,
        spool: QueueSpool,
        agent: DeliveryAgent,
        bounces: BounceSender,
        routing: RoutingTable,
        policy: RetryPolicy,
        max_connections: int = 20,
        max_per_destination: int = 5,
        reactor: Any = None,
        in_thread: Callable[..., Deferred] | None = None,
        events: Events = NO_EVENTS,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.events = events  # told of each attempt and each removal (mailsuite/events.py)
        self.spool = spool
        self.agent = agent
        self.bounces = bounces
        self.routing = routing
        self.policy = policy
        self.max_connections = max_connections
        self.max_per_destination = max_per_destination
        self._reactor = reactor
        self._in_thread = in_thread or threads.deferToThread
        self._entries: dict[str, _EntryState] = {}
        self._ready: deque[_Job] = deque()
        self._active = 0
        self._active_by_destination: Counter[str] = Counter()
        self._running = False
        self._busy: set[Deferred] = set()
        self._lock = QueueLock(spool.queue_dir)
        self._control = ControlChannel(spool.queue_dir)
        self._control_loop: LoopingCall | None = None
        self._polling = False
        self._requests: set[str] = set()

    # --- life cycle -----------------------------------------------------------------------------

    def claim_queue(self) -> None:
        """Take the queue lock, then clean up after a crash: before anything uses the spool.

        MailSuite calls this before its listeners bind, so a second server on the same data
        directory stops at once instead of touching the first one's half-written entries.
        """
        if self._lock.held:
            return
        if not self._lock.acquire_waiting(10.0):
            raise SystemExit(
                f"mailsuite: the queue {self.spool.queue_dir} is locked by another process "
                "(another server on the same data directory?)"
            )
        self.spool.recover()

    def startService(self) -> None:
        super().startService()
        self.claim_queue()
        self._running = True
        self._track(self._in_thread(self._load_all).addCallback(self._adopt_all))
        self._control_loop = LoopingCall(self._poll_control)
        self._control_loop.clock = self._reactor
        self._control_loop.start(CONTROL_INTERVAL, now=False)

    def stopService(self) -> Deferred:
        super().stopService()
        self._running = False
        if self._control_loop is not None and self._control_loop.running:
            self._control_loop.stop()
        for state in self._entries.values():
            self._cancel_timer(state)
            for job in state.jobs:
                job.attempt.abort()
        self._ready.clear()
        d = DeferredList(list(self._busy), consumeErrors=True)
        d.addBoth(lambda _: self._lock.release())
        return d

    def _track(self, d: Deferred) -> Deferred:
        self._busy.add(d)

        def done(result: Any) -> Any:
            self._busy.discard(d)
            return result

        d.addBoth(done)
        return d

    def _now(self) -> float:
        return self._reactor.seconds()

    def _load_all(self) -> list[dict[str, Any]]:
        envelopes = []
        for queue_id in self.spool.list_ids():
            try:
                envelopes.append(self.spool.load(queue_id))
            except (OSError, ValueError) as exc:
                log.error("queue {id}: cannot load its envelope: {error}", id=queue_id, error=exc)
        return envelopes

    def _adopt_all(self, envelopes: list[dict[str, Any]]) -> None:
        if envelopes:
            log.info("queue: {count} entries to deliver", count=len(envelopes))
        for envelope in envelopes:
            self._adopt(envelope)

    def _adopt(self, envelope: dict[str, Any]) -> None:
        if not self._running or envelope["id"] in self._entries:
            return
        state = _EntryState(QueueEntry(envelope))
        self._entries[state.entry.id] = state
        self._settle(state)

    def wake(self, queue_id: str) -> None:
        """A new entry was committed (by the SMTP server or a bounce): start delivering it."""
        if not self._running or queue_id in self._entries:
            return
        d = self._in_thread(self.spool.load, queue_id)
        d.addCallbacks(self._adopt, lambda f: log.failure("queue {id}: load", f, id=queue_id))
        self._track(d)

    # --- what to do next with an entry ----------------------------------------------------------

    def _settle(self, state: _EntryState) -> None:
        """Called after every change: notify, remove, or schedule the next attempt."""
        if state.removed or not self._running:
            return
        if state.in_flight:
            # Reports and removal wait for the last job; retries of the others need a timer.
            self._schedule(state)
            return
        if state.idle_waiters:
            waiters, state.idle_waiters = state.idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        if state.cancelled:
            return
        if state.notifying:
            return  # settles again when the notice is written
        now = self._now()
        entry = state.entry
        failures = copy.deepcopy(entry.unnotified_failures())
        delayed = copy.deepcopy(entry.delay_notice_due(now, self.policy))
        if failures or delayed:
            self._notify(state, failures, delayed, now)
        elif entry.finished():
            self._remove(state)
        else:
            self._schedule(state)

    def _notify(
        self,
        state: _EntryState,
        failures: list[dict[str, Any]],
        delayed: list[dict[str, Any]],
        now: float,
    ) -> None:
        state.notifying = True
        snapshot = QueueEntry(copy.deepcopy(state.entry.envelope))

        def send() -> list[str]:
            queued = []
            for action, records in ((FAILED_ACTION, failures), (DELAYED_ACTION, delayed)):
                result = self.bounces.notify(snapshot, action, records, now) if records else None
                if result is not None and result.queue_id:
                    queued.append(result.queue_id)
            return queued

        def sent(queued: list[str]) -> Deferred:
            state.entry.mark_notified([r["address"] for r in failures])
            if delayed:
                state.entry.mark_delay_notified()
            for queue_id in queued:
                self.wake(queue_id)
            return self._persist(state).addCallback(lambda _: True)

        def failed(failure: Failure) -> bool:
            log.failure("queue {id}: could not send a notification", failure, id=snapshot.id)
            return False

        def done(ok: bool) -> None:
            state.notifying = False
            if ok:
                self._settle(state)
            else:
                # Try again later rather than in a loop; the failures stay unreported until then.
                self._reactor.callLater(self.policy.delay(1), self._settle, state)

        d = self._in_thread(send)
        d.addCallbacks(sent, failed)
        d.addBoth(done)
        self._track(d)

    def _remove(self, state: _EntryState) -> None:
        state.removed = True
        self._cancel_timer(state)
        entry = state.entry
        self._entries.pop(entry.id, None)
        counts = entry.counts()
        log.info(
            "queue {id}: removed (delivered={delivered}, failed={failed})",
            id=entry.id,
            delivered=counts["delivered"],
            failed=counts["failed"],
        )
        self.events.emit(
            "queue.removed",
            queue_id=entry.id,
            message_id=entry.metadata.get("message_id", ""),
            delivered=counts["delivered"],
            failed=counts["failed"],
        )
        d = state.write_lock.run(self._in_thread, self.spool.delete, entry.id)
        d.addErrback(lambda f: log.failure("queue {id}: could not remove", f, id=entry.id))
        self._track(d)

    def _persist(self, state: _EntryState) -> Deferred:
        """Save the entry's current state; writes of one entry happen in order."""
        entry = state.entry
        data = entry.to_bytes()
        d = state.write_lock.run(self._in_thread, self.spool.save, entry.id, data)
        d.addErrback(lambda f: log.failure("queue {id}: could not save its state", f, id=entry.id))
        self._track(d)
        return d

    def _cancel_timer(self, state: _EntryState) -> None:
        if state.timer is not None and state.timer.active():
            state.timer.cancel()
        state.timer = None

    def _schedule(self, state: _EntryState) -> None:
        self._cancel_timer(state)
        times = [
            epoch(r["next_attempt"])
            for r in state.entry.active()
            if r["address"] not in state.in_flight
        ]
        if times and not state.cancelled:
            delay = max(0.0, min(times) - self._now())
            state.timer = self._reactor.callLater(delay, self._due, state)

    def _due(self, state: _EntryState) -> None:
        state.timer = None
        if state.removed or state.cancelled or not self._running:
            return
        due = [a for a in state.entry.due(self._now()) if a not in state.in_flight]
        groups: dict[str, tuple[Destination, list[str]]] = {}
        for address in due:
            destination = self.routing.destination(_domain(address))
            groups.setdefault(destination.key, (destination, []))[1].append(address)
        for destination, addresses in groups.values():
            job = _Job(state, destination, tuple(addresses))
            state.in_flight.update(addresses)
            state.jobs.add(job)
            self._ready.append(job)
        self._schedule(state)
        self._pump()

    # --- running jobs ----------------------------------------------------------------------------

    def _pump(self) -> None:
        if not self._running:
            return
        for job in list(self._ready):
            if self._active >= self.max_connections:
                break
            key = job.destination.key
            if self._active_by_destination[key] >= self.max_per_destination:
                continue
            self._ready.remove(job)
            self._active += 1
            self._active_by_destination[key] += 1
            d = ensureDeferred(self._attempt(job))
            d.addErrback(self._internal_error, job)
            d.addCallback(self._finished, job)
            self._track(d)

    async def _attempt(self, job: _Job) -> dict[str, Outcome]:
        state, entry = job.state, job.state.entry
        if state.info is None:
            path = self.spool.message_path(entry.id)
            try:
                state.info = await self._in_thread(inspect_message, path, entry.body_offset)
            except FileNotFoundError:
                text = "the queued message file is missing"
                return {r: Outcome.permanent("5.3.0", text) for r in job.recipients}
        info = state.info
        if info.hops > MAX_HOPS:
            text = f"too many hops ({info.hops} Received: headers): mail forwarding loop"
            return {r: Outcome.permanent("5.4.6", text) for r in job.recipients}
        request = DeliveryRequest(entry.sender, job.recipients, job.destination, info)
        return await self.agent.deliver(request, job.attempt)

    def _internal_error(self, failure: Failure, job: _Job) -> dict[str, Outcome]:
        log.failure("queue {id}: delivery job failed", failure, id=job.state.entry.id)
        text = f"internal error: {failure.getErrorMessage()}"
        return {r: Outcome.temporary("4.3.0", text) for r in job.recipients}

    def _release(self, _: Any, job: _Job) -> None:
        """The job's connection is closed: its slot is free for the next job."""
        key = job.destination.key
        self._active -= 1
        self._active_by_destination[key] -= 1
        if not self._active_by_destination[key]:
            del self._active_by_destination[key]
        self._pump()

    def _finished(self, outcomes: dict[str, Outcome], job: _Job) -> None:
        """Record the outcomes at once; the slot is freed when the connection has closed."""
        state, entry = job.state, job.state.entry
        closing = job.attempt.closing or succeed(None)
        closing.addBoth(self._release, job)
        state.jobs.discard(job)
        state.in_flight.difference_update(job.recipients)
        if not state.removed:
            now = self._now()
            changed = False
            for address in job.recipients:
                outcome = outcomes.get(address) or Outcome.temporary("4.3.0", "no result")
                if outcome.state != DELIVERED and (state.cancelled or not self._running):
                    continue  # interrupted on purpose: not an attempt
                entry.apply(address, outcome, now, self.policy)
                changed = True
                self._log_attempt(entry, address, outcome)
            if changed:
                self._persist(state)
            self._settle(state)

    def _log_attempt(self, entry: QueueEntry, address: str, outcome: Outcome) -> None:
        record = entry.record(address)
        relay = "none"
        if outcome.remote_mta:
            relay = f"{outcome.remote_mta}[{outcome.remote_ip}]"
        next_attempt = record["next_attempt"] if record["state"] in ("pending", "deferred") else "-"
        log.info(
            'queue {id}: to=<{to}> relay={relay} tls={tls} reply="{reply}" outcome={outcome} '
            "status={status} attempts={attempts} next={next}",
            id=entry.id,
            to=address,
            relay=relay,
            tls=outcome.tls or "no",
            reply=outcome.response,
            outcome=record["state"],
            status=record.get("status"),
            attempts=record["attempts"],
            next=next_attempt,
        )
        if self.events.active:
            self.events.emit(
                "delivery.attempt",
                queue_id=entry.id,
                message_id=entry.metadata.get("message_id", ""),
                sender=entry.sender,
                recipient=address,
                domain=_domain(address),
                outcome=record["state"],
                status=record.get("status"),
                reply=outcome.response,
                relay=relay if outcome.remote_mta else None,
                tls=outcome.tls,
                attempts=record["attempts"],
                age=max(0.0, self._now() - entry.created),
                notification=bool(entry.metadata.get("notification")),
            )

    def entries(self) -> list[QueueEntry]:
        """The entries in memory now (reactor thread; no disk): for metrics and pages."""
        return [state.entry for state in list(self._entries.values())]

    def snapshot(self, limit: int = 500) -> list[dict[str, Any]]:
        """The entries in memory, oldest first, for a page (reactor thread; no disk)."""
        entries = sorted(self.entries(), key=lambda e: e.created)
        return [
            {
                "id": entry.id,
                "created": entry.created,
                "sender": entry.sender,
                "recipients": [
                    {
                        "address": record["address"],
                        "state": record["state"],
                        "reply": record.get("last_response") or "",
                    }
                    for record in entry.recipients
                ],
            }
            for entry in entries[:limit]
        ]

    # --- admin requests --------------------------------------------------------------------------

    def _poll_control(self) -> None:
        if self._polling or not self._running:
            return
        self._polling = True
        d = self._in_thread(self._control.pending)
        d.addCallback(self._handle_requests)
        d.addErrback(lambda f: log.failure("queue: reading admin requests", f))

        def done(_: Any) -> None:
            self._polling = False

        d.addBoth(done)

    def _handle_requests(self, requests: list[tuple[str, dict[str, Any]]]) -> None:
        for name, request in requests:
            if name in self._requests:
                continue
            self._requests.add(name)
            d = maybeDeferred(self.operate, request.get("operation"), request.get("id"))

            def internal(failure: Failure) -> dict[str, Any]:
                log.failure("queue: admin request failed", failure)
                return {"ok": False, "message": f"internal error: {failure.getErrorMessage()}"}

            def answer(result: dict[str, Any], name: str = name) -> Deferred:
                return self._in_thread(self._control.answer, name, result)

            def forget(_: Any, name: str = name) -> None:
                self._requests.discard(name)

            d.addErrback(internal)
            d.addCallback(answer)
            d.addErrback(lambda f: log.failure("queue: answering an admin request", f))
            d.addBoth(forget)
            self._track(d)

    def operate(self, operation: str | None, queue_id: str | None) -> Deferred:
        """Apply an admin operation; Deferred[{"ok": bool, "message": str, ...}]."""
        if operation == "flush":
            return self._flush()
        state = self._entries.get(queue_id or "")
        if state is None:
            return succeed({"ok": False, "message": f"no queue entry {queue_id}"})
        if operation == "retry":
            return self._retry(state)
        if operation in ("delete", "bounce"):
            return ensureDeferred(self._discard(state, bounce=operation == "bounce"))
        return succeed({"ok": False, "message": f"unknown operation {operation!r}"})

    def _flush(self) -> Deferred:
        now = self._now()
        writes, recipients, entries = [], 0, 0
        for state in list(self._entries.values()):
            if state.cancelled:
                continue
            count = state.entry.retry_now(now)
            if count:
                recipients += count
                entries += 1
                writes.append(self._persist(state))
                self._schedule(state)
        message = f"{recipients} recipient(s) in {entries} entr{'y' if entries == 1 else 'ies'}"
        message += " scheduled for delivery now"
        d = DeferredList(writes, consumeErrors=True)
        return d.addCallback(lambda _: {"ok": True, "message": message, "recipients": recipients})

    def _retry(self, state: _EntryState) -> Deferred:
        count = state.entry.retry_now(self._now())
        if not count:
            return succeed({"ok": False, "message": f"{state.entry.id}: nothing left to retry"})
        d = self._persist(state)
        self._schedule(state)
        message = f"{state.entry.id}: {count} recipient(s) scheduled for delivery now"
        return d.addCallback(lambda _: {"ok": True, "message": message})

    async def _quiesce(self, state: _EntryState) -> None:
        """Stop the entry's jobs and wait until none runs."""
        state.cancelled = True
        self._cancel_timer(state)
        waiting = [job for job in self._ready if job.state is state]
        for job in waiting:
            self._ready.remove(job)
            state.jobs.discard(job)
            state.in_flight.difference_update(job.recipients)
        for job in state.jobs:
            job.attempt.abort()
        while state.in_flight or state.notifying:
            waiter: Deferred = Deferred()
            if state.in_flight:
                state.idle_waiters.append(waiter)
            else:
                self._reactor.callLater(0.05, waiter.callback, None)
            await waiter

    async def _discard(self, state: _EntryState, bounce: bool) -> dict[str, Any]:
        await self._quiesce(state)
        entry = state.entry
        if not bounce:
            state.removed = True
            self._entries.pop(entry.id, None)
            await state.write_lock.run(self._in_thread, self.spool.delete, entry.id)
            log.info("queue {id}: deleted by the administrator", id=entry.id)
            return {"ok": True, "message": f"{entry.id}: deleted"}
        count = entry.fail_all(self._now(), ADMIN_BOUNCE_TEXT)
        await self._persist(state)
        state.cancelled = False
        self._settle(state)  # sends the notice, then removes the entry
        log.info("queue {id}: returned to sender by the administrator", id=entry.id)
        return {"ok": True, "message": f"{entry.id}: {count} recipient(s) bounced"}


def make_scheduler(
    config: Config,
    spool: QueueSpool,
    store: MaildirStore,
    database: IUserDatabase,
    resolver: Resolver | None = None,
    signer: Any = None,
    events: Events = NO_EVENTS,
) -> QueueScheduler:
    """The scheduler with everything it needs, from the configuration (``resolver``: the
    server's shared one; ``signer``: DKIM for the delivery notices)."""
    policy = RetryPolicy(
        config.queue.retry_schedule, config.queue.lifetime, config.queue.delay_warning
    )
    routing = RoutingTable.from_config(config)
    agent = DeliveryAgent(
        routing,
        DNSResolver.from_config(config, resolver),
        Timeouts.from_config(config),
        config.hostname,
    )
    bounces = BounceSender(
        spool, store, database, config.spool_dir, config.hostname, policy, signer=signer
    )
    bounces.events = events
    return QueueScheduler(
        spool,
        agent,
        bounces,
        routing,
        policy,
        config.queue.max_connections,
        config.queue.max_per_destination,
        events=events,
    )
