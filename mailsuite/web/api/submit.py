"""One API message through the submission policy to the durable commit, as SMTP does it.

The steps, and where SMTP takes the same one (smtp/server.py):

1. the recipients limit (``limits.recipients``; RCPT's 452);
2. the key's user must own the envelope sender and every From:/Sender: address (MAIL's
   ``owns_address``; stricter than SMTP, which checks the envelope only, because the
   server signs what the API sends in the From: domain's name);
3. each recipient resolved through the user database: local domains to mailboxes (aliases
   expanded, unknown users refused), others queued (RCPT's routing, through AccountService's
   cache);
4. the message streamed through the same MessageAssembler into an IncomingMessage behind a
   Return-Path (local copies) and a Received header naming the API: line endings, the size
   limit (``limits.message_size``), forged Authentication-Results removed, Message-ID and Date
   added when missing, the DKIM body hash fed;
5. the DKIM signature of the From: domain (OutboundSigner) spliced in;
6. MessageRouter.commit: the message durable in every local Maildir and the queue before the
   answer; then ``message.accepted`` on the event hub (role "api").

Steps 4 and 5 run in a worker thread (they copy, hash and sign the whole message).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from twisted.internet import threads
from twisted.logger import Logger

from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.database import MailboxDisabled
from mailsuite.accounts.service import AccountService
from mailsuite.authn.bodyhash import RelaxedBodyHash
from mailsuite.authn.signing import OutboundSigner
from mailsuite.events import NO_EVENTS, Events
from mailsuite.smtp.delivery import CommitResult, Envelope, MessageRouter
from mailsuite.smtp.headers import MAX_HOPS, return_path_header
from mailsuite.smtp.message import MessageAssembler
from mailsuite.store.incoming import IncomingMessage
from mailsuite.web.api.draft import Draft
from mailsuite.web.api.errors import APIError

log = Logger(namespace="mailsuite.api")

InThread = Callable[..., Any]  # deferToThread-like: (function, *args) -> Deferred


@dataclass(frozen=True)
class Caller:
    """Who sends: the key's user, from where, over what."""

    user: str
    key_id: str
    client: str  # IP address
    secure: bool  # HTTPS


@dataclass(frozen=True)
class Accepted:
    """A committed message: what the API answers and what the status record keeps."""

    id: str  # the server's id (Received ... id X), as on SMTP's "queued as X"
    message_id: str  # the Message-ID header
    queue_id: str | None
    recipients: tuple[str, ...]  # as asked
    local: tuple[str, ...]  # mailboxes it was delivered to
    remote: tuple[str, ...]  # addresses queued for relay
    size: int
    signed: bool


@dataclass
class _Assembled:
    incoming: IncomingMessage
    message_id: str
    size: int
    signed: bool


def received_header(hostname: str, caller: Caller, message_id: str, recipients: list[str]) -> bytes:
    """The trace header of an API submission (RFC 5321 §4.4): "with HTTP(S)" instead of the
    SMTP keywords, and the authenticated user, as the submission port writes it."""
    keyword = "HTTPS" if caller.secure else "HTTP"
    literal = f"[IPv6:{caller.client}]" if ":" in caller.client else f"[{caller.client}]"
    lines = [
        f"Received: from {literal} (unknown [{caller.client}])",
        f"\t(Authenticated sender: {caller.user})",
        f"\tby {hostname} (mailsuite) with {keyword} id {message_id}",
    ]
    stamp = formatdate(usegmt=False)
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {stamp}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


class Submitter:
    """The server-wide part of the API's send path."""

    def __init__(
        self,
        hostname: str,
        max_size: int,
        max_recipients: int,
        accounts: AccountService,
        router: MessageRouter,
        spool_dir: Any,
        signer: OutboundSigner | None = None,
        events: Events = NO_EVENTS,
        in_thread: InThread = threads.deferToThread,
    ) -> None:
        self.hostname = hostname
        self.max_size = max_size
        self.max_recipients = max_recipients
        self.accounts = accounts
        self.router = router
        self.spool_dir = spool_dir
        self.signer = signer
        self.events = events
        self._in_thread = in_thread

    async def submit(self, caller: Caller, draft: Draft) -> Accepted:
        """Commit ``draft`` for ``caller``; APIError for every refusal."""
        recipients = [mailbox.address for mailbox in draft.recipients]
        if not recipients:
            raise APIError(422, "no_recipients", "give at least one recipient (to, cc or bcc)")
        if len(recipients) > self.max_recipients:
            raise APIError(
                422, "too_many_recipients", f"at most {self.max_recipients} recipients per message"
            )
        for mailbox in (draft.sender, *draft.authors):
            if not await self.accounts.owns_address(caller.user, mailbox.address):
                raise APIError(
                    403, "sender_not_owned", f"{caller.user} may not send as {mailbox.address}"
                )
        envelope = Envelope(draft.sender.address)
        for mailbox in draft.recipients:
            await self._route(envelope, mailbox.address, mailbox.domain)
        message_id = secrets.token_hex(8).upper()
        prefix = b""
        if envelope.mailboxes:
            prefix = return_path_header(envelope.sender)
            envelope.body_offset = len(prefix)
        prefix += received_header(self.hostname, caller, message_id, recipients)
        assembled = await self._in_thread(self._assemble, draft.content, prefix, envelope)
        try:
            result: CommitResult = await self.router.commit(
                assembled.incoming, envelope, message_id
            )
        except Exception:
            log.failure("API message {id}: the commit failed", id=message_id)
            raise APIError(503, "try_again", "the message could not be stored; try again") from None
        accepted = Accepted(
            message_id,
            assembled.message_id,
            result.queue_id,
            tuple(recipients),
            tuple(envelope.mailboxes),
            tuple(envelope.remote),
            assembled.size,
            assembled.signed,
        )
        self._announce(caller, draft, accepted)
        return accepted

    async def _route(self, envelope: Envelope, address: str, domain: str) -> None:
        """Where mail for ``address`` goes (RCPT's routing; every API caller is authenticated,
        so a remote recipient is relayed)."""
        if not await self.accounts.is_local_domain(domain):
            envelope.add_remote(address)
            return
        try:
            resolution = await self.accounts.resolve_recipient(address)
        except MailboxDisabled:
            raise APIError(422, "recipient_disabled", f"{address}: mailbox disabled") from None
        except AddressError:
            resolution = None
        if resolution is None:
            raise APIError(422, "unknown_recipient", f"{address}: no such user here")
        for mailbox in resolution.mailboxes:
            envelope.add_mailbox(mailbox)
        for remote in resolution.remote:
            envelope.add_remote(remote)

    def _assemble(self, content: bytes, prefix: bytes, envelope: Envelope) -> _Assembled:
        """The stored form of the message, signed (worker thread). The message's header block
        is inspected and fixed up by the SMTP path's own assembler."""
        incoming = IncomingMessage(self.spool_dir)
        body_hash = RelaxedBodyHash() if self.signer is not None else None
        assembler = MessageAssembler(
            incoming, prefix, self.max_size, True, self.hostname, body_hash=body_hash
        )
        try:
            assembler.feed(content)
            assembler.finish()
            if assembler.too_big:
                raise APIError(
                    413, "message_too_large", f"the message is larger than {self.max_size} bytes"
                )
            if assembler.hops > MAX_HOPS:
                raise APIError(422, "too_many_hops", "too many Received: headers (a mail loop)")
            signature = b""
            if self.signer is not None and body_hash is not None and assembler.header_block:
                try:
                    signature = self.signer.sign(assembler.header_block, body_hash.digest())
                except Exception:
                    log.failure("DKIM signing failed; the message goes unsigned")
            if signature:
                incoming.insert(envelope.body_offset, signature)
        except BaseException:
            incoming.discard()
            raise
        return _Assembled(
            incoming, assembler.message_id_header(), assembler.content_size, bool(signature)
        )

    def _announce(self, caller: Caller, draft: Draft, accepted: Accepted) -> None:
        log.info(
            "message id={id} api key={key} user={user} client={client} from=<{sender}> "
            "to={rcpts} size={size} outcome=accepted delivered={local} queued={queue}",
            id=accepted.id,
            key=caller.key_id,
            user=caller.user,
            client=caller.client,
            sender=draft.sender.address,
            rcpts=",".join(f"<{r}>" for r in accepted.recipients),
            size=accepted.size,
            local=len(accepted.local),
            queue=accepted.queue_id or "-",
        )
        if self.events.active:
            self.events.emit(
                "message.accepted",
                role="api",
                id=accepted.id,
                message_id=accepted.message_id,
                sender=draft.sender.address,
                recipients=list(accepted.recipients),
                local=list(accepted.local),
                queue_id=accepted.queue_id,
                size=accepted.size,
                client=caller.client,
                user=caller.user,
                auth="dkim=signed" if accepted.signed else "",
            )
