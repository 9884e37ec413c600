"""Sending delivery status notifications: local senders get them in their Maildir, others by
mail with the null sender (``MAIL FROM:<>``, so a failing notification is never bounced again).

Synchronous and durable on return (it fsyncs): the scheduler runs it in a worker thread, the
admin command directly. Notifications are written before the failures they report are marked
as reported, so a crash can repeat a notification but never lose one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.database import IUserDatabase
from mailsuite.accounts.errors import AccountsError
from mailsuite.authn.bodyhash import RelaxedBodyHash
from mailsuite.events import NO_EVENTS
from mailsuite.queue.dsn import FAILED_ACTION, build_report
from mailsuite.queue.entry import QueueEntry, RetryPolicy
from mailsuite.queue.message import MAX_HEADER_BYTES, inspect_message
from mailsuite.queue.spool import QueueSpool
from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.maildir import MaildirStore

log = Logger(namespace="mailsuite.queue")

NULL_RETURN_PATH = b"Return-Path: <>\r\n"


@dataclass(frozen=True)
class BounceResult:
    mailboxes: tuple[str, ...]  # local mailboxes it was delivered to
    queue_id: str | None  # the queue entry that carries it to remote addresses


class BounceSender:
    def __init__(
        self,
        spool: QueueSpool,
        store: MaildirStore,
        database: IUserDatabase,
        spool_dir: Path,
        hostname: str,
        policy: RetryPolicy,
        signer: Any = None,
    ) -> None:
        """``signer``: an authn OutboundSigner; notices from MAILER-DAEMON@<hostname> are signed
        with the keys of the hostname's nearest local parent domain that has some."""
        self.signer = signer
        self.events = NO_EVENTS  # set by make_scheduler: told of each notice sent
        self.spool = spool
        self.store = store
        self.database = database
        self.spool_dir = Path(spool_dir)
        self.hostname = hostname
        self.policy = policy

    def notify(
        self, entry: QueueEntry, action: str, records: list[dict[str, Any]], now: float
    ) -> BounceResult | None:
        """Report ``records`` of ``entry`` to its sender; None when there is nobody to tell."""
        if not entry.sender or not records:
            return None  # never bounce a bounce
        headers = self._original_headers(entry)
        report = build_report(
            reporting_mta=self.hostname,
            recipient=entry.sender,
            queue_id=entry.id,
            arrival=entry.created,
            action=action,
            records=records,
            original_headers=headers,
            now=now,
            lifetime=self.policy.lifetime,
            retry_until=None if action == FAILED_ACTION else entry.expires(self.policy),
        )
        result = self.send(entry.sender, report)
        self.events.emit(
            "notice.sent",
            queue_id=entry.id,
            message_id=entry.metadata.get("message_id", ""),
            action=action,
            to=entry.sender,
            mailboxes=list(result.mailboxes),
            queued=result.queue_id,
        )
        log.info(
            "queue {id}: {action} notice to <{sender}> for {rcpts}: local={local} queued={queued}",
            id=entry.id,
            action=action,
            sender=entry.sender,
            rcpts=",".join(f"<{r['address']}>" for r in records),
            local=",".join(result.mailboxes) or "-",
            queued=result.queue_id or "-",
        )
        return result

    def _original_headers(self, entry: QueueEntry) -> bytes:
        try:
            info = inspect_message(self.spool.message_path(entry.id), entry.body_offset)
        except OSError:
            return b""
        return info.headers[:MAX_HEADER_BYTES]

    def send(self, recipient: str, message: bytes) -> BounceResult:
        """Deliver ``message`` (a notification) to ``recipient`` with the null sender."""
        mailboxes: tuple[str, ...] = ()
        remote: tuple[str, ...] = (recipient,)
        domain = recipient.rpartition("@")[2]
        if self.database.is_local_domain(domain):
            try:
                resolution = self.database.resolve_recipient(recipient)
            except (AccountsError, AddressError) as exc:
                log.warn("notice to <{to}> dropped: {error}", to=recipient, error=str(exc))
                return BounceResult((), None)
            if resolution is None:
                log.warn("notice to <{to}> dropped: no such local user", to=recipient)
                return BounceResult((), None)
            mailboxes, remote = resolution.mailboxes, resolution.remote
        prefix = NULL_RETURN_PATH if mailboxes else b""
        message = self._signed(message)
        incoming = IncomingMessage(self.spool_dir)
        try:
            incoming.write(prefix + message)
            path = incoming.finalize()
            for mailbox in mailboxes:
                self.store.deliver_file(path, mailbox)
            queue_id = None
            if remote:
                queue_id = self.spool.enqueue_file(
                    path, "", list(remote), {"body_offset": len(prefix), "notification": True}
                )
        finally:
            incoming.remove()
        return BounceResult(tuple(mailboxes), queue_id)

    def _signed(self, message: bytes) -> bytes:
        """The notice with DKIM-Signature fields on top, when a key fits its From: domain."""
        if self.signer is None:
            return message
        end = message.find(b"\r\n\r\n")
        if end < 0:
            return message
        body_hash = RelaxedBodyHash()
        body_hash.feed(message[end + 4 :])
        try:
            return self.signer.sign(message[: end + 2], body_hash.digest()) + message
        except Exception:
            log.failure("DKIM signing of a delivery notice failed; it goes unsigned")
            return message
