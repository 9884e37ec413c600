"""Routing of an accepted message: local mailboxes through the MDA, the rest into the queue.

Messages are committed in batches by one thread (committer.CommitQueue), and the SMTP server
answers 250 only when the message's batch is done: by then the message file is durable and linked
(directory durable) into every local Maildir and, for remote recipients, into the durable queue.
A batch costs two journal commits whatever its size: one for the message files, one for their new
names (safeio.sync_paths: syncfs(2), or an fsync of each when ``use_syncfs`` is off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsuite.events import NO_EVENTS, Events
from mailsuite.queue.spool import QueueSpool
from mailsuite.safeio import sync_paths
from mailsuite.smtp.committer import CommitQueue
from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.journal import MAX_TARGETS, DeliveryJournal
from mailsuite.store.maildir import MaildirStore

log = Logger(namespace="mailsuite.smtp")


@dataclass
class Envelope:
    """The accepted transaction: who sent it, and where it goes after alias expansion."""

    sender: str
    mailboxes: list[str] = field(default_factory=list)  # local users (deduplicated)
    remote: list[str] = field(default_factory=list)  # non-local recipients (deduplicated)
    body_offset: int = 0  # bytes of Return-Path at the start, skipped when relaying
    folder: str | None = None  # local copies go to this special folder ("Junk"), not INBOX

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


Job = tuple[IncomingMessage, Envelope, str]  # the message, where it goes, its id


class MessageRouter:
    """Makes an accepted message durable at every destination of its envelope."""

    def __init__(
        self,
        store: MaildirStore,
        queue: QueueSpool,
        use_syncfs: bool = True,
        journal: DeliveryJournal | None = None,
        events: Events = NO_EVENTS,
    ) -> None:
        """``journal``: acknowledge a lone local message after one fsync (store/journal.py);
        ``events``: told of each durable commit (batch size, latency)."""
        self._events = events
        self._store = store
        self._queue = queue
        self._use_syncfs = use_syncfs
        # Whether the journal's filesystem keeps xattrs is probed at the first commit (in the
        # commit thread), not here: building the router touches no disk.
        self._journal = journal
        # Journal entries linked into Maildirs whose new/ directories are not yet synced.
        self._unsettled: list[Path] = []
        self._unsettled_dirs: dict[Path, None] = {}
        self._relink: list[Path] = []  # ... of which these still miss a link (it failed)
        self._committer = CommitQueue(
            self.commit_batch, name="mailsuite-commit", idle=self.settle_journal
        )
        # Called on the reactor thread with the local addresses of each committed delivery
        # (IMAP IDLE uses it to wake sessions at once instead of waiting for its poll).
        self.observers: list[Callable[[tuple[str, ...]], None]] = []
        # Called on the reactor thread with the id of each new queue entry (the queue
        # scheduler's wake(), so remote mail leaves at once instead of at the next scan).
        self.queue_observers: list[Callable[[str], None]] = []

    def commit(self, incoming: IncomingMessage, envelope: Envelope, message_id: str) -> Deferred:
        """Deferred[CommitResult], fired once everything is on disk."""
        d = self._committer.submit((incoming, envelope, message_id))
        return d.addCallback(self._notify, tuple(envelope.mailboxes))

    def close(self) -> None:
        """Finish the commits under way and end the commit thread (blocks: call in a thread)."""
        self._committer.stop()

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

    def commit_batch(self, jobs: Sequence[Job]) -> list[CommitResult | Exception]:
        """Make every job durable; one result or exception per job, in order (worker thread).

        1. write out each spool file, 2. sync them all, 3. link each into its Maildirs (and
        queue the remote part: the queue syncs its own entries), 4. sync the new/ directories,
        5. remove the spool names. A failure of one job fails that job only; a failed sync
        fails every job it covered. A job that fails after a link was made may leave that copy
        delivered: the client, never told 250, sends again (a duplicate, never a loss).
        """
        started = time.monotonic()
        if len(jobs) == 1 and self._journal is not None and self._journal.available():
            journaled = self._commit_journaled(jobs[0])
            if journaled is not None:
                self._events.emit(
                    "commit", messages=1, seconds=time.monotonic() - started, journal=True
                )
                return [journaled]
        results: list[CommitResult | Exception | None] = [None] * len(jobs)
        # For a lone message, fsync of its file and directory is a little cheaper than syncfs.
        use_syncfs = self._use_syncfs and len(jobs) > 1
        try:
            spooled: dict[int, Path] = {}
            for i, (incoming, _, _) in enumerate(jobs):
                try:
                    spooled[i] = incoming.finalize(sync=False)
                except Exception as exc:
                    results[i] = exc
            try:
                sync_paths(files=spooled.values(), use_syncfs=use_syncfs)
            except OSError as exc:
                for i in spooled:
                    results[i] = exc
                spooled.clear()
            new_dirs: dict[Path, None] = {}
            for i, path in spooled.items():
                _, envelope, message_id = jobs[i]
                try:
                    results[i] = self._place(path, envelope, message_id, new_dirs)
                except Exception as exc:
                    results[i] = exc
            if new_dirs:
                try:
                    sync_paths(directories=new_dirs, use_syncfs=use_syncfs)
                except OSError as exc:
                    for i, result in enumerate(results):
                        if isinstance(result, CommitResult) and result.maildir_keys:
                            self._take_back(jobs[i][1], result)
                            results[i] = exc
        finally:
            for incoming, _, _ in jobs:
                try:
                    incoming.remove()
                except OSError:
                    log.failure("could not remove a spool file")
        self._events.emit(
            "commit", messages=len(jobs), seconds=time.monotonic() - started, journal=False
        )
        return [r if r is not None else RuntimeError("not committed") for r in results]

    def _commit_journaled(self, job: Job) -> CommitResult | Exception | None:
        """A lone local message: one fsync, then 250 (None: not eligible, use the batch path).

        The journal entry is durable with the message and its Maildir names before this returns;
        the links are made at once (IMAP sees the message) and synced by settle_journal().
        """
        incoming, envelope, _ = job
        if envelope.remote or envelope.folder or not 0 < len(envelope.mailboxes) <= MAX_TARGETS:
            return None
        assert self._journal is not None
        try:
            entry = self._journal.take()
        except OSError:
            log.failure("no delivery journal entry; committing without the journal")
            return None
        data = incoming.claim_memory()
        if data is None:
            self._journal.release(entry)
            return None  # spilled to a file: the batch path links that file instead
        try:
            targets = [(box, self._store.unique_name(len(data))) for box in envelope.mailboxes]
            self._journal.record(entry, data, targets)
        except Exception as exc:
            entry.unlink(missing_ok=True)  # not acknowledged: the client will send again
            return exc
        try:
            for box, key in targets:
                self._unsettled_dirs[self._store.deliver_named(entry, box, key)] = None
        except Exception:
            # The entry is durable, so the message is safe: settle_journal() (or recovery at the
            # next start) makes the missing links from it.
            log.failure("linking a journaled message failed; retrying from the journal")
            self._relink.append(entry)
        self._unsettled.append(entry)
        return CommitResult(tuple(key for _, key in targets), None)

    def settle_journal(self) -> None:
        """Sync the new/ directories of journaled deliveries, then drop their entries (thread)."""
        if not self._unsettled:
            return
        assert self._journal is not None
        for entry in list(self._relink):
            for directory in self._journal.replay(entry, self._store.redeliver) or ():
                self._unsettled_dirs[directory] = None
            self._relink.remove(entry)
        sync_paths(directories=self._unsettled_dirs, use_syncfs=False)
        entries, self._unsettled, self._unsettled_dirs = self._unsettled, [], {}
        self._journal.settle(entries)

    def _take_back(self, envelope: Envelope, result: CommitResult) -> None:
        """Undo a delivery whose Maildir names could not be made durable: the client hears a
        failure and sends again, so nothing of this attempt may stay behind (no queue entry
        that would relay a second copy, no local copy beside the retry's). Best effort: what
        cannot be removed is logged (a duplicate then, never a loss)."""
        for box, key in zip(envelope.mailboxes, result.maildir_keys, strict=False):
            try:
                (self._store.new_dir(box, envelope.folder) / key).unlink(missing_ok=True)
            except OSError:
                log.failure("could not take back {key} from {box}", key=key, box=box)
        if result.queue_id is not None:
            try:
                self._queue.delete(result.queue_id)
            except OSError:
                log.failure("could not take back queue entry {id}", id=result.queue_id)

    def _place(
        self, path: Path, envelope: Envelope, message_id: str, new_dirs: dict[Path, None]
    ) -> CommitResult:
        keys = []
        for box in envelope.mailboxes:
            keys.append(self._store.deliver_file(path, box, sync=False, folder=envelope.folder))
            new_dirs[self._store.new_dir(box, envelope.folder)] = None
        queue_id = None
        if envelope.remote:
            queue_id = self._queue.enqueue_file(
                path,
                envelope.sender,
                envelope.remote,
                {"message_id": message_id, "body_offset": envelope.body_offset},
            )
        return CommitResult(tuple(keys), queue_id)
