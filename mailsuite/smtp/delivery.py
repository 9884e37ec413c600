"""Routing of an accepted message: local mailboxes through the MDA, the rest into the queue.

All of it runs in one worker thread job per message, and the SMTP server answers 250 only when
that job has returned: by then the message file is fsync'ed and linked (directory fsync'ed) into
every local Maildir and, for remote recipients, into the durable queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsuite.queue.spool import QueueSpool
from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.maildir import MaildirStore

log = Logger(namespace="mailsuite.smtp")


@dataclass
class Envelope:
    """The accepted transaction: who sent it, and where it goes after alias expansion."""

    sender: str
    mailboxes: list[str] = field(default_factory=list)  # local users (deduplicated)
    remote: list[str] = field(default_factory=list)  # non-local recipients (deduplicated)
    body_offset: int = 0  # bytes of Return-Path at the start, skipped when relaying

    def add_mailbox(self, address: str) -> None:
        if address not in self.mailboxes:
            self.mailboxes.append(address)

    def add_remote(self, address: str) -> None:
        if address not in self.remote:
            self.remote.append(address)


@dataclass(frozen=True)
class CommitResult:
    maildir_keys: tuple[str, ...]
    queue_id: str | None


class MessageRouter:
    """Makes an accepted message durable at every destination of its envelope."""

    def __init__(self, store: MaildirStore, queue: QueueSpool) -> None:
        self._store = store
        self._queue = queue
        # Called on the reactor thread with the local addresses of each committed delivery
        # (IMAP IDLE uses it to wake sessions at once instead of waiting for its poll).
        self.observers: list[Callable[[tuple[str, ...]], None]] = []
        # Called on the reactor thread with the id of each new queue entry (the queue
        # scheduler's wake(), so remote mail leaves at once instead of at the next scan).
        self.queue_observers: list[Callable[[str], None]] = []

    def commit(self, incoming: IncomingMessage, envelope: Envelope, message_id: str) -> Deferred:
        """Deferred[CommitResult], fired once everything is on disk."""
        d = threads.deferToThread(self.commit_sync, incoming, envelope, message_id)
        return d.addCallback(self._notify, tuple(envelope.mailboxes))

    def _notify(self, result: CommitResult, mailboxes: tuple[str, ...]) -> CommitResult:
        for observer in self.observers if mailboxes else ():
            try:
                observer(mailboxes)
            except Exception:
                log.failure("delivery observer failed")
        for queue_observer in self.queue_observers if result.queue_id else ():
            try:
                queue_observer(result.queue_id)
            except Exception:
                log.failure("queue observer failed")
        return result

    def commit_sync(
        self, incoming: IncomingMessage, envelope: Envelope, message_id: str
    ) -> CommitResult:
        try:
            path = incoming.finalize()
            keys = tuple(self._store.deliver_file(path, box) for box in envelope.mailboxes)
            queue_id = None
            if envelope.remote:
                queue_id = self._queue.enqueue_file(
                    path,
                    envelope.sender,
                    envelope.remote,
                    {"message_id": message_id, "body_offset": envelope.body_offset},
                )
            return CommitResult(keys, queue_id)
        finally:
            incoming.remove()
