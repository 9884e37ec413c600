"""The ESMTP server protocol (RFC 5321) for the MX, submission and submissions roles.

Written on Twisted's plain ``Protocol`` rather than ``twisted.mail.smtp.ESMTP``, whose verified
defects (STARTTLS command injection, a >16 KiB DATA line turning the body into commands, replies
out of order with asynchronous checks, no room for SIZE/PIPELINING/8BITMIME/ENHANCEDSTATUSCODES)
sit in its core loop. Here one bytes buffer feeds two modes:

- command mode: lines are handled strictly one after another; a command whose check is
  asynchronous (a database lookup, a password hash) holds the following pipelined commands in
  the buffer until its reply is written, so replies always come in order (RFC 2920);
- DATA mode: raw chunks are decoded with bytes operations (datastream.py) and streamed to a spool
  file; the 250 is written only once the message is fsync'ed at every destination.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.cred import IMailUser
from mailsuite.accounts.database import MailboxDisabled
from mailsuite.accounts.service import AccountService
from mailsuite.sendnow import write_now
from mailsuite.session_factory import SessionFactory
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
from mailsuite.smtp.throttle import AuthThrottle
from mailsuite.store.incoming import IncomingMessage
from mailsuite.wire.closing import close_connection

log = Logger(namespace="mailsuite.smtp")

# While a command waits for an asynchronous check, stop reading once this much is buffered.
MAX_BUFFERED = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_message_size: int
    max_recipients: int
    max_command_line: int
    idle_timeout: float
    max_bad_commands: int
    auth_max_failures: int


@dataclass
class SMTPContext:
    """What every SMTP connection of the process shares."""

    hostname: str
    limits: Limits
    accounts: AccountService
    portal: Portal
    router: MessageRouter
    throttle: AuthThrottle
    spool_dir: Path
    tls_options: object | None = None  # twisted.internet.ssl.CertificateOptions


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


class ESMTPServer(TimeoutMixin, Protocol):
    """One SMTP session. Replies carry enhanced status codes (RFC 3463) except greeting/EHLO."""

    def __init__(self, context: SMTPContext, policy: RolePolicy) -> None:
        self.ctx = context
        self.policy = policy
        self._buf = bytearray()
        self._busy = False
        self._paused = False
        self._closing = False
        self._skip_to_newline = False
        self._tls = policy.implicit_tls
        self._helo: str | None = None
        self._esmtp = False
        self._user: str | None = None
        self._auth_step = None  # callable taking the next client line during an AUTH exchange
        self._auth_failures = 0
        self._bad_commands = 0
        self._txn: Transaction | None = None
        self._data: DataPhase | None = None
        self._peer = "unknown"

    # --- connection life cycle ----------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self._peer = getattr(peer, "host", "unknown")
        # Replies are small writes: without TCP_NODELAY, Nagle plus the client's delayed ACK can
        # hold one back for 40 ms.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.setTimeout(self.ctx.limits.idle_timeout)
        self.reply(220, f"{self.ctx.hostname} ESMTP mailsuite")

    def connectionLost(self, reason: Failure = None) -> None:
        self._closing = True
        self.setTimeout(None)
        if self._data is not None:
            self._data.incoming.discard()
            self._data = None

    def timeoutConnection(self) -> None:
        self.close(421, "4.4.2", f"{self.ctx.hostname} Error: timeout exceeded")

    def close(self, code: int, enhanced: str, text: str) -> None:
        self.reply(code, text, enhanced)
        self._closing = True
        close_connection(self.transport)

    def reply(self, code: int, text: str | list[str], enhanced: str | None = None) -> None:
        if self._closing:
            return
        lines = text if isinstance(text, list) else [text]
        out = []
        for i, line in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            body = f"{enhanced} {line}" if enhanced else line
            out.append(f"{code}{sep}{body}\r\n")
        write_now(self.transport, "".join(out).encode("utf-8"))

    # --- input: one buffer, two modes ---------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self._buf += data
        if self._busy:
            if len(self._buf) > MAX_BUFFERED and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            return
        self._drain()

    def _drain(self) -> None:
        while not self._busy and not self._closing and self._buf:
            if self._data is not None:
                chunk = bytes(self._buf)
                self._buf.clear()
                content, rest = self._data.decoder.feed(chunk)
                self._data.assembler.feed(content)
                if rest is None:
                    return
                self._buf += rest
                self._end_of_data()
                continue
            newline = self._buf.find(b"\n")
            if self._skip_to_newline:
                if newline < 0:
                    self._buf.clear()
                    return
                del self._buf[: newline + 1]
                self._skip_to_newline = False
                continue
            limit = self.ctx.limits.max_command_line
            if newline < 0:
                if len(self._buf) > limit:
                    self._buf.clear()
                    self._skip_to_newline = True
                    self._error(500, "5.5.2", "Error: line too long")
                return
            line = bytes(self._buf[:newline])
            del self._buf[: newline + 1]
            if len(line) > limit:
                self._error(500, "5.5.2", "Error: line too long")
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            self._run(self._handle_line, line)

    def _run(self, handler, *args) -> None:
        """Run a command handler; an asynchronous one holds back the rest of the pipeline."""
        try:
            result = handler(*args)
        except Exception:
            log.failure("SMTP command failed")
            self.reply(451, "Error: internal error", "4.3.0")
            return
        if isinstance(result, Deferred):
            result.addErrback(self._internal_error)
            if result.called and not result.paused:
                return  # answered at once (a cached lookup): keep draining, without recursion
            self._busy = True
            result.addBoth(self._resume)

    def _internal_error(self, failure: Failure) -> None:
        log.failure("SMTP command failed", failure)
        self.reply(451, "Error: internal error, try again later", "4.3.0")

    def _resume(self, _: object) -> None:
        self._busy = False
        if self._paused and not self._closing:
            self._paused = False
            self.transport.resumeProducing()
        self._drain()

    def _error(self, code: int, enhanced: str, text: str) -> None:
        """A client error: counted, and too many end the session (Postfix's smtpd_hard_error)."""
        self._bad_commands += 1
        if self._bad_commands >= self.ctx.limits.max_bad_commands:
            self.close(421, "4.7.0", f"{self.ctx.hostname} Error: too many errors")
        else:
            self.reply(code, text, enhanced)

    def _handle_line(self, raw: bytes) -> Deferred | None:
        if self._auth_step is not None:
            step, self._auth_step = self._auth_step, None
            return step(raw)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._error(500, "5.5.2", "Error: bad UTF-8 in command")
            return None
        verb, _, arg = line.partition(" ")
        handler = getattr(self, f"smtp_{verb.upper()}", None) if verb.isalpha() else None
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
        if self.policy.offer_auth and self._tls:
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
        return self.policy.offer_starttls and not self._tls and self.ctx.tls_options is not None

    def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            self._error(501, "5.5.4", "Syntax: STARTTLS")
            return
        if self._tls:
            self._error(554, "5.5.1", "Error: TLS already active")
            return
        if not self._can_starttls():
            self.reply(454, "TLS not available", "4.7.0")
            return
        self.reply(220, "Ready to start TLS", "2.0.0")
        # CVE-2011-0411: whatever the client pipelined in plaintext after STARTTLS is dropped.
        self._buf.clear()
        self.transport.startTLS(self.ctx.tls_options)
        self._tls = True
        self._helo, self._esmtp, self._txn = None, False, None

    # --- AUTH (RFC 4954) ----------------------------------------------------------------------

    def smtp_AUTH(self, arg: str) -> Deferred | None:
        if not self.policy.offer_auth:
            self._error(503, "5.5.1", "Error: authentication not enabled")
            return None
        if not self._tls:
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
        if mechanism == "PLAIN":
            if initial:
                return self._auth_plain(initial.encode())
            self._auth_step = self._auth_plain
            self.reply(334, "")
            return None
        if mechanism == "LOGIN":
            if initial:
                return self._auth_login_user(initial.encode())
            self._auth_step = self._auth_login_user
            self.reply(334, "VXNlcm5hbWU6")  # "Username:"
            return None
        self._error(504, "5.5.4", "Error: unsupported authentication mechanism")
        return None

    def _decode_response(self, raw: bytes) -> bytes | None:
        raw = raw.rstrip(b"\r")
        if raw == b"*":
            self._error(501, "5.0.0", "Authentication cancelled")
            return None
        if raw == b"=":
            return b""
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            self._error(501, "5.5.2", "Error: cannot decode response")
            return None

    def _auth_plain(self, raw: bytes) -> Deferred | None:
        decoded = self._decode_response(raw)
        if decoded is None:
            return None
        parts = decoded.split(b"\0")
        if len(parts) != 3 or (parts[0] and parts[0] != parts[1]):
            self._error(501, "5.5.2", "Error: malformed PLAIN response")
            return None
        return self._login(parts[1], parts[2])

    def _auth_login_user(self, raw: bytes) -> None:
        username = self._decode_response(raw)
        if username is None:
            return None
        self._auth_step = lambda line: self._auth_login_password(username, line)
        self.reply(334, "UGFzc3dvcmQ6")  # "Password:"
        return None

    def _auth_login_password(self, username: bytes, raw: bytes) -> Deferred | None:
        password = self._decode_response(raw)
        if password is None:
            return None
        return self._login(username, password)

    def _login(self, username: bytes, password: bytes) -> Deferred:
        d = self.ctx.portal.login(UsernamePassword(username, password), None, IMailUser)
        d.addCallbacks(self._login_ok, self._login_failed)
        return d

    def _login_ok(self, result: tuple) -> None:
        _interface, avatar, _logout = result
        self._user = avatar.address
        self.ctx.throttle.success(self._peer)
        log.info("smtp auth ok client={client} user={user}", client=self._peer, user=self._user)
        self.reply(235, "Authentication successful", "2.7.0")

    def _login_failed(self, failure: Failure) -> Deferred | None:
        if not failure.check(UnauthorizedLogin):
            log.failure("authentication backend error", failure)
            self.reply(454, "Temporary authentication failure", "4.7.0")
            return None
        self._auth_failures += 1
        delay = self.ctx.throttle.failure_delay(self._peer)
        log.info("smtp auth failed client={client} delay={delay}s", client=self._peer, delay=delay)

        from twisted.internet import reactor

        def answer() -> None:
            if self._auth_failures >= self.ctx.limits.auth_max_failures:
                self.close(421, "4.7.0", "Error: too many failed authentication attempts")
            else:
                self.reply(535, "Error: authentication failed", "5.7.8")

        return task.deferLater(reactor, delay, answer)

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
        if self._user is None:
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
        prefix += received_header(
            TraceInfo(
                helo=self._helo or "unknown",
                client_ip=self._peer,
                hostname=self.ctx.hostname,
                message_id=message_id,
                esmtp=self._esmtp,
                tls=self._tls_description(),
                auth_user=self._user,
                recipients=tuple(dict.fromkeys(txn.recipients)),
            )
        )
        incoming = IncomingMessage(self.ctx.spool_dir)
        assembler = MessageAssembler(
            incoming,
            prefix,
            self.ctx.limits.max_message_size,
            self.policy.fix_headers,
            self.ctx.hostname,
        )
        self._data = DataPhase(DataDecoder(), assembler, incoming, message_id)
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
        self._run(self._commit, phase, txn)

    def _refuse(self, phase: DataPhase, txn: Transaction, code: int, enhanced: str, text: str):
        phase.incoming.discard()
        self._log_message(phase, txn, f"refused {code} {enhanced}")
        self.reply(code, text, enhanced)

    def _commit(self, phase: DataPhase, txn: Transaction) -> Deferred:
        d = self.ctx.router.commit(phase.incoming, txn.envelope, phase.message_id)

        def done(result: CommitResult) -> None:
            self.reply(250, f"Ok: queued as {phase.message_id}", "2.0.0")  # first: it is due
            queued = f" queued={result.queue_id}" if result.queue_id else ""
            self._log_message(phase, txn, f"accepted delivered={len(result.maildir_keys)}{queued}")

        def failed(failure: Failure) -> None:
            log.failure("could not store message {id}", failure, id=phase.message_id)
            self._log_message(phase, txn, "failed 451 4.3.0")
            self.reply(451, "Error: local error in processing, try again later", "4.3.0")

        return d.addCallbacks(done, failed)

    def _log_message(self, phase: DataPhase, txn: Transaction, outcome: str) -> None:
        """The one log line per message: who, from where, to whom, how big, how, and what."""
        fields = {
            "id": phase.message_id,
            "client": self._peer,
            "user": self._user or "-",
            "sender": txn.sender.address,
            "rcpts": ",".join(f"<{r}>" for r in dict.fromkeys(txn.recipients)),
            "size": phase.assembler.content_size,
            "tls": self._tls_version() or "no",
            "outcome": outcome,
        }
        # Formatted here, once, with an f-string: the logger's own format machinery costs more
        # than the rest of the message's bookkeeping. The fields stay in the event for observers.
        line = (
            f"message id={fields['id']} client={fields['client']} user={fields['user']} "
            f"from=<{fields['sender']}> to={fields['rcpts']} size={fields['size']} "
            f"tls={fields['tls']} outcome={outcome}"
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
        conn = self._tls_connection() if self._tls else None
        return conn.get_protocol_version_name() if conn is not None else None

    def _tls_description(self) -> str | None:
        conn = self._tls_connection() if self._tls else None
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
