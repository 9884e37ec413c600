"""Mail authentication in the SMTP session: verify what the MX receives, sign what users send.

At DATA the server asks ``begin()``: an unauthenticated client (the MX role) gets its SPF and
iprev lookups started at once, in a thread, so they overlap the transfer of the body; an
authenticated one gets a body hasher that the message assembler feeds as the body streams in.
After the end of DATA ``finish()`` runs DKIM/ARC/DMARC (or the signature) in a thread and says
which header goes on top and what the answer is. Both happen before the commit, so the header
is durable with the message before its ``250``.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import threads
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from mailsuite.authn.bodyhash import RelaxedBodyHash
from mailsuite.authn.inbound import ACCEPT, InboundChecks
from mailsuite.authn.signing import OutboundSigner
from mailsuite.store.incoming import IncomingMessage

log = Logger(namespace="mailsuite.smtp")


@dataclass
class Pending:
    """One message's authentication work, started at DATA."""

    envelope: Deferred | None = None  # Deferred[EnvelopeChecks]: verifying (MX)
    body_hash: RelaxedBodyHash | None = None  # signing (authenticated sender)


@dataclass(frozen=True)
class Outcome:
    header: bytes  # Authentication-Results or DKIM-Signature lines to put on top; may be b""
    action: str  # accept | junk | reject | tempfail
    code: int = 250
    enhanced: str = "2.0.0"
    text: str = ""
    summary: str = ""  # for the log line


_NOTHING = Outcome(b"", ACCEPT)


class MessageAuthentication:
    """The server-wide part: the checks and the signer (either may be None: switched off)."""

    def __init__(self, checks: InboundChecks | None, signer: OutboundSigner | None) -> None:
        self.checks = checks
        self.signer = signer

    def begin(self, authenticated: bool, ip: str, helo: str, mail_from: str) -> Pending | None:
        if authenticated:
            return Pending(body_hash=RelaxedBodyHash()) if self.signer is not None else None
        if self.checks is None:
            return None
        known = self.checks.known_envelope(ip, helo, mail_from)
        if known is not None:
            return Pending(envelope=succeed(known))  # a steady sender: no thread, no DNS
        pending = Pending(envelope=threads.deferToThread(self.checks.envelope, ip, helo, mail_from))
        pending.envelope.addErrback(self._failed)
        return pending

    async def finish(
        self,
        pending: Pending,
        header_block: bytes | None,
        incoming: IncomingMessage,
        mail_from: str,
        ip: str,
        forwarding: bool = False,
    ) -> Outcome:
        """What to add and what to answer (never raises: a failing check accepts unmarked).

        ``forwarding``: the MX message goes on to remote recipients (an alias): if it is
        authentic mail of one of our domains (DMARC pass), it is signed on its way out too.
        """
        if pending.body_hash is not None:
            if header_block is None or self.signer is None:
                return _NOTHING  # a header block too large to inspect is sent unsigned
            digest = pending.body_hash.digest()
            try:
                header = await threads.deferToThread(self.signer.sign, header_block, digest)
            except Exception:
                log.failure("DKIM signing failed; the message goes unsigned")
                return _NOTHING
            return Outcome(header, ACCEPT, summary="dkim=signed" if header else "")
        assert pending.envelope is not None and self.checks is not None
        envelope = await pending.envelope
        if envelope is None:
            return _NOTHING
        head = None if forwarding else incoming.head()
        verdict = None if head is None else self.checks.quick(envelope, head, mail_from, ip)
        if verdict is not None:
            return self._outcome(verdict, b"")
        try:
            verdict, signature = await threads.deferToThread(
                self._verify, envelope, incoming, mail_from, ip, forwarding
            )
        except Exception:
            log.failure("verifying a message failed; accepted without Authentication-Results")
            return _NOTHING
        return self._outcome(verdict, signature)

    @staticmethod
    def _outcome(verdict, signature: bytes) -> Outcome:
        return Outcome(
            verdict.header + signature,
            verdict.action,
            verdict.code,
            verdict.enhanced,
            verdict.reason,
            verdict.summary,
        )

    def _verify(self, envelope, incoming, mail_from: str, ip: str, forwarding: bool):
        """DKIM, ARC and DMARC on the message as received; the signature of authentic
        forwarded mail of our own domains (worker thread)."""
        assert self.checks is not None
        message = incoming.snapshot()
        end = message.find(b"\r\n\r\n")
        header_block = message[: end + 2] if end >= 0 else message
        verdict = self.checks.message(envelope, message, header_block, mail_from, ip)
        signature = b""
        if forwarding and verdict.authentic and self.signer is not None and end >= 0:
            body_hash = RelaxedBodyHash()
            body_hash.feed(message[end + 4 :])
            signature = self.signer.sign(header_block, body_hash.digest())
        return verdict, signature

    @staticmethod
    def _failed(failure) -> None:
        log.failure("SPF/iprev checks failed; the message is accepted unmarked", failure)
        return None
