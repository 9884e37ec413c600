"""The ESMTP server protocol (RFC 5321) for the MX, submission and submissions roles.

Written on the session kernel (mailsuite/wire/session.py) rather than on
``twisted.mail.smtp.ESMTP``, whose verified defects (STARTTLS command injection, a >16 KiB DATA
line turning the body into commands, replies out of order with asynchronous checks, no room for
SIZE/PIPELINING/8BITMIME/ENHANCEDSTATUSCODES) sit in its core loop. The kernel's two modes:

- lines: commands are handled strictly one after another; a command whose check is
  asynchronous (a database lookup, a password hash) holds the following pipelined commands in
  the buffer until its reply is written, so replies always come in order (RFC 2920);
- raw (DATA): chunks are decoded with bytes operations (datastream.py) and streamed to a spool
  file; the 250 is written only once the message is fsync'ed at every destination.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, ensureDeferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.database import MailboxDisabled
from mailsuite.accounts.login import Authenticator
from mailsuite.accounts.sasl import SASLCancelled, SASLError, decode_plain, decode_response
from mailsuite.accounts.service import AccountService
from mailsuite.authn.inbound import JUNK, REJECT, TEMPFAIL
from mailsuite.config import Config
from mailsuite.smtp.authentication import MessageAuthentication, Outcome, Pending
from mailsuite.smtp.datastream import DataDecoder
from mailsuite.smtp.delivery import CommitResult, Envelope, MessageRouter
from mailsuite.smtp.envelope import (
    EnvelopeSyntaxError,
    NeedsSMTPUTF8,
    parse_path_and_params,
    split_command_argument,
)
from mailsuite.smtp.envelope import (
    Path as SMTPPath,
)
from mailsuite.smtp.headers import MAX_HOPS, TraceInfo, received_header, return_path_header
from mailsuite.smtp.message import MessageAssembler
from mailsuite.smtp.policy import RolePolicy
from mailsuite.store.incoming import IncomingMessage
from mailsuite.wire.listener import SessionFactory
from mailsuite.wire.session import LineSession, LineTooLong, SessionLimits

if TYPE_CHECKING:
    from mailsuite.sandbox.smtp import SandboxSMTP

log = Logger(namespace="mailsuite.smtp")


@dataclass(frozen=True)
class Limits(SessionLimits):
    max_message_size: int
    max_recipients: int

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        limits = config.limits
        return cls(
            max_line=limits.command_line,
            max_bad_commands=limits.bad_commands,
            idle_timeout=limits.idle_timeout,
            max_message_size=limits.message_size,
            max_recipients=limits.recipients,
        )


@dataclass
class SMTPContext:
    """What every SMTP connection of the process shares."""

    hostname: str
    limits: Limits
    accounts: AccountService
    authenticator: Authenticator
    router: MessageRouter
    spool_dir: Path
    tls_options: object | None = None  # twisted.internet.ssl.CertificateOptions
    authentication: MessageAuthentication | None = None  # DKIM signing, SPF/DKIM/DMARC checks
    sandbox: SandboxSMTP | None = None  # sandbox mode: everything captured (mailsuite/sandbox)


@dataclass
class Transaction:
    sender: SMTPPath
    smtputf8: bool
    recipients: list[str] = field(default_factory=list)
    envelope: Envelope | None = None


@dataclass
class DataPhase:
    decoder: DataDecoder
    assembler: MessageAssembler
    incoming: IncomingMessage
    message_id: str
    auth: Pending | None = None
    auth_summary: str = ""


class ESMTPServer(LineSession):
    """One SMTP session. Replies carry enhanced status codes (RFC 3463) except greeting/EHLO."""

    protocol_name = "SMTP"

    def __init__(self, context: SMTPContext, policy: RolePolicy) -> None:
        super().__init__(context.limits, policy.implicit_tls)
        self.ctx = context
        self.policy = policy
        self._attempts = context.authenticator.attempts("smtp")
        self._helo: str | None = None
        self._esmtp = False
        self._user: str | None = None
        self._txn: Transaction | None = None
        self._data: DataPhase | None = None

    # --- connection life cycle ----------------------------------------------------------------

    def session_started(self) -> None:
        self.reply(220, f"{self.ctx.hostname} ESMTP mailsuite")

    def session_ended(self, reason: Failure | None) -> None:
        if self._data is not None:
            self._data.incoming.discard()
            self._data = None

    def timeoutConnection(self) -> None:
        self.close(421, "4.4.2", f"{self.ctx.hostname} Error: timeout exceeded")

    def close(self, code: int, enhanced: str, text: str) -> None:
        self.reply(code, text, enhanced)
        self.close_session()

    def reply(self, code: int, text: str | list[str], enhanced: str | None = None) -> None:
        lines = text if isinstance(text, list) else [text]
        out = []
        for i, line in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            body = f"{enhanced} {line}" if enhanced else line
            out.append(f"{code}{sep}{body}\r\n")
        self.send("".join(out).encode("utf-8"))

    # --- input: lines, and DATA in raw mode ---------------------------------------------------

    @property
    def raw_mode(self) -> bool:
        return self._data is not None

    def raw_received(self, data: bytes) -> int:
        content, rest = self._data.decoder.feed(data)
        self._data.assembler.feed(content)
        if rest is None:
            return len(data)
        self._end_of_data()
        return len(data) - len(rest)

    def line_too_long(self, head: bytes) -> None:
        self._error(500, "5.5.2", "Error: line too long")

    def internal_error(self) -> None:
        self.reply(451, "Error: internal error, try again later", "4.3.0")

    def _error(self, code: int, enhanced: str, text: str) -> None:
        """A client error: counted, and too many end the session (Postfix's smtpd_hard_error)."""
        if self.note_bad_command():
            self.close(421, "4.7.0", f"{self.ctx.hostname} Error: too many errors")
        else:
            self.reply(code, text, enhanced)

    def line_received(self, raw: bytes) -> Deferred | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._error(500, "5.5.2", "Error: bad UTF-8 in command")
            return None
        verb, _, arg = line.partition(" ")
        handler = getattr(self, f"smtp_{verb.upper()}", None) if verb.isalpha() else None
        self.emit("command", verb=verb.upper() if handler is not None else "UNKNOWN")
        if handler is None:
            self._error(500, "5.5.2", "Error: command not recognized")
            return None
        return handler(arg.strip(" "))

    # --- session commands ---------------------------------------------------------------------

    def smtp_EHLO(self, arg: str) -> None:
        if not arg:
            self._error(501, "5.5.4", "Syntax: EHLO hostname")
            return
        self._helo, self._esmtp, self._txn = arg, True, None
        lines = [
            self.ctx.hostname,
            "PIPELINING",
            f"SIZE {self.ctx.limits.max_message_size}",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "SMTPUTF8",
        ]
        if self._can_starttls():
            lines.append("STARTTLS")
        if self.policy.offer_auth and self.tls:
            lines.append("AUTH PLAIN LOGIN")
        lines.append("HELP")
        self.reply(250, lines)

    def smtp_HELO(self, arg: str) -> None:
        if not arg:
            self._error(501, "5.5.4", "Syntax: HELO hostname")
            return
        self._helo, self._esmtp, self._txn = arg, False, None
        self.reply(250, self.ctx.hostname)

    def smtp_NOOP(self, arg: str) -> None:
        self.reply(250, "Ok", "2.0.0")

    def smtp_RSET(self, arg: str) -> None:
        if arg:
            self._error(501, "5.5.4", "Syntax: RSET")
            return
        self._txn = None
        self.reply(250, "Ok", "2.0.0")

    def smtp_QUIT(self, arg: str) -> None:
        self.close(221, "2.0.0", "Bye")

    def smtp_VRFY(self, arg: str) -> None:
        # RFC 5321 §3.5.3: 252 answers without telling whether the user exists.
        self.reply(252, "Cannot VRFY user, but will accept message and attempt delivery", "2.5.2")

    def smtp_EXPN(self, arg: str) -> None:
        self.reply(502, "Error: EXPN not available", "5.5.1")

    def smtp_HELP(self, arg: str) -> None:
        self.reply(
            214, "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS AUTH", "2.0.0"
        )

    def _can_starttls(self) -> bool:
        return self.policy.offer_starttls and not self.tls and self.ctx.tls_options is not None

    def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            self._error(501, "5.5.4", "Syntax: STARTTLS")
            return
        if self.tls:
            self._error(554, "5.5.1", "Error: TLS already active")
            return
        if not self._can_starttls():
            self.reply(454, "TLS not available", "4.7.0")
            return
        self.reply(220, "Ready to start TLS", "2.0.0")
        self.start_tls(self.ctx.tls_options)
        self._helo, self._esmtp, self._txn = None, False, None

    # --- AUTH (RFC 4954) ----------------------------------------------------------------------

    def smtp_AUTH(self, arg: str) -> Deferred | None:
        if not self.policy.offer_auth:
            self._error(503, "5.5.1", "Error: authentication not enabled")
            return None
        if not self.tls:
            self._error(538, "5.7.11", "Encryption required for requested authentication mechanism")
            return None
        if self._helo is None:
            self._error(503, "5.5.1", "Error: send EHLO first")
            return None
        if self._user is not None:
            self._error(503, "5.5.1", "Error: already authenticated")
            return None
        if self._txn is not None:
            self._error(503, "5.5.1", "Error: MAIL transaction in progress")
            return None
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in ("PLAIN", "LOGIN"):
            self._error(504, "5.5.4", "Error: unsupported authentication mechanism")
            return None
        return Deferred.fromCoroutine(self._authenticate(mechanism, initial.encode() or None))

    async def _challenge(self, text: str) -> bytes:
        """Send a 334 challenge; the client's next line is the answer."""
        self.reply(334, text)
        return await self.next_line()

    async def _authenticate(self, mechanism: str, initial: bytes | None) -> None:
        try:
            if mechanism == "PLAIN":
                username, password = decode_plain(initial or await self._challenge(""))
            else:  # LOGIN: "Username:", "Password:"
                username = decode_response(initial or await self._challenge("VXNlcm5hbWU6"))
                password = decode_response(await self._challenge("UGFzc3dvcmQ6"))
        except LineTooLong:
            self._error(500, "5.5.2", "Error: line too long")
            return
        except SASLCancelled as exc:
            self._error(501, "5.0.0", str(exc))
            return
        except SASLError as exc:
            self._error(501, "5.5.2", f"Error: {exc}")
            return
        result = await self._attempts.login(username, password, self.peer)
        if result.ok:
            self._user = result.avatar.address
            log.info("smtp auth ok client={client} user={user}", client=self.peer, user=self._user)
            self.reply(235, "Authentication successful", "2.7.0")
        elif result.temporary:
            self.reply(454, "Temporary authentication failure", "4.7.0")
        elif result.last:
            self.close(421, "4.7.0", "Error: too many failed authentication attempts")
        else:
            self.reply(535, "Error: authentication failed", "5.7.8")

    # --- the mail transaction -----------------------------------------------------------------

    def smtp_MAIL(self, arg: str) -> Deferred | None:
        if self._helo is None:
            self._error(503, "5.5.1", "Error: send HELO/EHLO first")
            return None
        if self._txn is not None:
            self._error(503, "5.5.1", "Error: nested MAIL command")
            return None
        if self.policy.require_auth and self._user is None:
            self._error(530, "5.7.0", "Authentication required")
            return None
        text = split_command_argument(arg, "FROM:")
        if text is None:
            self._error(501, "5.5.4", "Syntax: MAIL FROM:<address>")
            return None
        try:
            path, params = parse_path_and_params(text, allow_null=True)
        except NeedsSMTPUTF8 as exc:
            self._error(553, "5.6.7", str(exc))
            return None
        except EnvelopeSyntaxError as exc:
            self._error(501, "5.1.7", f"Bad sender address syntax: {exc}")
            return None
        if not self._check_mail_params(params):
            return None
        smtputf8 = "SMTPUTF8" in params
        if self._user is None or self.ctx.sandbox is not None:  # sandbox: send as anyone
            return self._start_transaction(path, smtputf8)
        if not path.address:
            self._error(553, "5.7.1", f"Sender address rejected: not owned by user {self._user}")
            return None
        d = self.ctx.accounts.owns_address(self._user, path.address)

        def decided(owned: bool) -> None:
            if owned:
                self._start_transaction(path, smtputf8)
            else:
                self._error(
                    553, "5.7.1", f"Sender address rejected: not owned by user {self._user}"
                )

        return d.addCallback(decided)

    def _check_mail_params(self, params: dict[str, str | None]) -> bool:
        for key, value in params.items():
            if key == "SIZE":
                if value is None or not value.isdigit():
                    self._error(501, "5.5.4", "Bad SIZE parameter")
                    return False
                if int(value) > self.ctx.limits.max_message_size:
                    self.reply(552, "Error: message size exceeds fixed limit", "5.3.4")
                    return False
            elif key == "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    self._error(501, "5.5.4", "Bad BODY parameter")
                    return False
            elif key == "SMTPUTF8":
                if value is not None:
                    self._error(501, "5.5.4", "SMTPUTF8 takes no value")
                    return False
            elif key != "AUTH":  # RFC 4954 §5: AUTH= may be ignored by a server that trusts none
                self._error(555, "5.5.4", f"Unsupported parameter {key}")
                return False
        return True

    def _start_transaction(self, path: SMTPPath, smtputf8: bool) -> None:
        self._txn = Transaction(path, smtputf8, envelope=Envelope(path.address))
        self.reply(250, "Ok", "2.1.0")

    def smtp_RCPT(self, arg: str) -> Deferred | None:
        txn = self._txn
        if txn is None:
            self._error(503, "5.5.1", "Error: need MAIL command")
            return None
        text = split_command_argument(arg, "TO:")
        if text is None:
            self._error(501, "5.5.4", "Syntax: RCPT TO:<address>")
            return None
        if text.split(" ", 1)[0].lower() == "<postmaster>":
            return self._postmaster(txn)
        try:
            path, params = parse_path_and_params(text, allow_null=False, smtputf8=txn.smtputf8)
        except NeedsSMTPUTF8 as exc:
            self._error(553, "5.6.7", str(exc))
            return None
        except EnvelopeSyntaxError as exc:
            self._error(501, "5.1.3", f"Bad recipient address syntax: {exc}")
            return None
        if params:
            self._error(555, "5.5.4", f"Unsupported parameter {next(iter(params))}")
            return None
        if len(txn.recipients) >= self.ctx.limits.max_recipients:
            self.reply(452, "Error: too many recipients", "4.5.3")
            return None
        if self.ctx.sandbox is not None:  # sandbox: any address is captured, or a simulation
            refused = self.ctx.sandbox.route(txn.envelope, path)
            if refused is None:
                return self._accept_recipient(txn, path.address)
            return self.reply(refused.code, refused.text, refused.enhanced)
        d = self.ctx.accounts.is_local_domain(path.domain)
        d.addCallback(self._route_recipient, txn, path)
        return d

    @inlineCallbacks
    def _postmaster(self, txn: Transaction):
        """RFC 5321 §4.5.1: <postmaster> without a domain must be accepted. It goes to the
        postmaster of the first local domain among the hostname and its parents."""
        labels = self.ctx.hostname.lower().split(".")
        for i in range(max(len(labels) - 1, 1)):
            domain = ".".join(labels[i:])
            if (yield self.ctx.accounts.is_local_domain(domain)):
                path = SMTPPath(f"postmaster@{domain}", "postmaster", domain)
                yield self._route_recipient(True, txn, path)
                return
        self._error(550, "5.1.1", "<postmaster>: Recipient address rejected: no local domain")

    def _route_recipient(self, local: bool, txn: Transaction, path: SMTPPath) -> Deferred | None:
        address = path.address
        if not local:
            if self._user is None:
                self._error(554, "5.7.1", f"<{address}>: Relay access denied")
                return None
            txn.envelope.add_remote(address)
            self._accept_recipient(txn, address)
            return None
        d = self.ctx.accounts.resolve_recipient(address)

        def resolved(resolution) -> None:
            if resolution is None:
                self._error(550, "5.1.1", f"<{address}>: Recipient address rejected: user unknown")
                return
            for mailbox in resolution.mailboxes:
                txn.envelope.add_mailbox(mailbox)
            for remote in resolution.remote:
                txn.envelope.add_remote(remote)
            self._accept_recipient(txn, address)

        def refused(failure: Failure) -> None:
            if failure.check(MailboxDisabled):
                self._error(550, "5.2.1", f"<{address}>: Recipient address rejected: disabled")
            elif failure.check(AddressError):
                self._error(550, "5.1.1", f"<{address}>: Recipient address rejected: user unknown")
            else:
                failure.raiseException()

        return d.addCallbacks(resolved, refused)

    def _accept_recipient(self, txn: Transaction, address: str) -> None:
        txn.recipients.append(address)  # duplicates count towards the limit, deliver once
        self.reply(250, "Ok", "2.1.5")

    def smtp_DATA(self, arg: str) -> None:
        txn = self._txn
        if arg:
            self._error(501, "5.5.4", "Syntax: DATA")
            return
        if txn is None:
            self._error(503, "5.5.1", "Error: need MAIL command")
            return
        if not txn.recipients:
            self._error(554, "5.5.1", "Error: no valid recipients")
            return
        message_id = secrets.token_hex(8).upper()
        envelope = txn.envelope
        prefix = b""
        if envelope.mailboxes:
            prefix = return_path_header(envelope.sender)
            envelope.body_offset = len(prefix)
        if self.ctx.sandbox is not None:  # sandbox: the envelope, kept in the captured message
            prefix += self.ctx.sandbox.envelope_headers(envelope.sender, txn.recipients)
        prefix += received_header(
            TraceInfo(
                helo=self._helo or "unknown",
                client_ip=self.peer,
                hostname=self.ctx.hostname,
                message_id=message_id,
                esmtp=self._esmtp,
                tls=self._tls_description(),
                auth_user=self._user,
                recipients=tuple(dict.fromkeys(txn.recipients)),
            )
        )
        incoming = IncomingMessage(self.ctx.spool_dir)
        auth = None
        if self.ctx.authentication is not None:
            auth = self.ctx.authentication.begin(
                self._user is not None, self.peer, self._helo or "", txn.sender.address
            )
        assembler = MessageAssembler(
            incoming,
            prefix,
            self.ctx.limits.max_message_size,
            self.policy.fix_headers,
            self.ctx.hostname,
            body_hash=auth.body_hash if auth is not None else None,
        )
        self._data = DataPhase(DataDecoder(), assembler, incoming, message_id, auth)
        self.reply(354, "End data with <CR><LF>.<CR><LF>")

    def _end_of_data(self) -> None:
        phase, txn = self._data, self._txn
        self._data, self._txn = None, None
        phase.assembler.finish()
        if phase.assembler.too_big:
            self._refuse(phase, txn, 552, "5.3.4", "Error: message file too big")
            return
        if phase.assembler.hops > MAX_HOPS:
            self._refuse(phase, txn, 554, "5.4.6", "Error: too many hops (mail forwarding loop)")
            return
        self.run_step(self._verify_or_sign, phase, txn)

    def _verify_or_sign(self, phase: DataPhase, txn: Transaction) -> Deferred:
        """Verify (MX) or sign (authenticated sender), then commit: the header added here is
        durable with the message before the 250."""
        if phase.auth is None or self.ctx.authentication is None:
            return self._commit(phase, txn)
        d = ensureDeferred(
            self.ctx.authentication.finish(
                phase.auth,
                phase.assembler.header_block,
                phase.incoming,
                txn.sender.address,
                self.peer,
                forwarding=bool(txn.envelope.remote),
            )
        )

        def decided(outcome: Outcome) -> Deferred | None:
            phase.auth_summary = outcome.summary
            if outcome.action in (REJECT, TEMPFAIL):
                self._refuse(phase, txn, outcome.code, outcome.enhanced, outcome.text)
                return None
            if outcome.action == JUNK:
                txn.envelope.folder = "Junk"
            if outcome.header:
                phase.incoming.insert(txn.envelope.body_offset, outcome.header)
            return self._commit(phase, txn)

        return d.addCallback(decided)

    def _refuse(self, phase: DataPhase, txn: Transaction, code: int, enhanced: str, text: str):
        phase.incoming.discard()
        self._log_message(phase, txn, f"refused {code} {enhanced}")
        self._emit_rejected(phase, txn, code, enhanced, text)
        self.reply(code, text, enhanced)

    def _emit_rejected(
        self, phase: DataPhase, txn: Transaction, code: int, enhanced: str, text: str
    ) -> None:
        self.emit(
            "message.rejected",
            id=phase.message_id,
            sender=txn.sender.address,
            recipients=list(dict.fromkeys(txn.recipients)),
            user=self._user,
            code=code,
            enhanced=enhanced,
            reason=text,
        )

    def _commit(self, phase: DataPhase, txn: Transaction) -> Deferred:
        d = self.ctx.router.commit(phase.incoming, txn.envelope, phase.message_id)

        def done(result: CommitResult) -> None:
            self.reply(250, f"Ok: queued as {phase.message_id}", "2.0.0")  # first: it is due
            queued = f" queued={result.queue_id}" if result.queue_id else ""
            self._log_message(phase, txn, f"accepted delivered={len(result.maildir_keys)}{queued}")
            if self.ctx.sandbox is not None:  # sandbox: simulated bounces are captured too
                sender, recipients = txn.sender.address, txn.recipients
                self.ctx.sandbox.accepted(phase.message_id, sender, recipients, result)
            if self.events.active:
                self.emit(
                    "message.accepted",
                    id=phase.message_id,
                    message_id=phase.assembler.message_id_header(),
                    sender=txn.sender.address,
                    recipients=list(dict.fromkeys(txn.recipients)),
                    local=list(txn.envelope.mailboxes),
                    queue_id=result.queue_id,
                    size=phase.assembler.content_size,
                    user=self._user,
                    auth=phase.auth_summary,
                )

        def failed(failure: Failure) -> None:
            log.failure("could not store message {id}", failure, id=phase.message_id)
            self._log_message(phase, txn, "failed 451 4.3.0")
            text = "Error: local error in processing, try again later"
            self._emit_rejected(phase, txn, 451, "4.3.0", text)
            self.reply(451, text, "4.3.0")

        return d.addCallbacks(done, failed)

    def _log_message(self, phase: DataPhase, txn: Transaction, outcome: str) -> None:
        """The one log line per message: who, from where, to whom, how big, how, and what."""
        fields = {
            "id": phase.message_id,
            "client": self.peer,
            "user": self._user or "-",
            "sender": txn.sender.address,
            "rcpts": ",".join(f"<{r}>" for r in dict.fromkeys(txn.recipients)),
            "size": phase.assembler.content_size,
            "tls": self._tls_version() or "no",
            "outcome": outcome,
            "auth": phase.auth_summary or "-",
        }
        # Formatted here, once, with an f-string: the logger's own format machinery costs more
        # than the rest of the message's bookkeeping. The fields stay in the event for observers.
        line = (
            f"message id={fields['id']} client={fields['client']} user={fields['user']} "
            f"from=<{fields['sender']}> to={fields['rcpts']} size={fields['size']} "
            f"tls={fields['tls']} outcome={outcome} auth={fields['auth'].replace(' ', ',')}"
        )
        log.info("{line}", line=line, **fields)

    # --- TLS details for the trace header -----------------------------------------------------

    def _tls_connection(self):
        for candidate in (self.transport, getattr(self.transport, "protocol", None)):
            get_handle = getattr(candidate, "getHandle", None)
            if get_handle is None:
                continue
            handle = get_handle()
            if hasattr(handle, "get_protocol_version_name"):
                return handle
        return None

    def _tls_version(self) -> str | None:
        conn = self._tls_connection() if self.tls else None
        return conn.get_protocol_version_name() if conn is not None else None

    def _tls_description(self) -> str | None:
        conn = self._tls_connection() if self.tls else None
        if conn is None:
            return None
        bits = conn.get_cipher_bits()
        return (
            f"{conn.get_protocol_version_name()} with cipher {conn.get_cipher_name()} "
            f"({bits}/{bits} bits)"
        )


def ESMTPFactory(context: SMTPContext, policy: RolePolicy) -> SessionFactory:
    """Sessions of one listener (see SessionFactory)."""
    return SessionFactory(ESMTPServer, context, policy)
