"""The SMTP client that relays queued mail: RFC 5321's client side with PIPELINING (RFC 2920),
SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), STARTTLS (RFC 3207) and AUTH
PLAIN/LOGIN (RFC 4954) to a smarthost.

Written on Twisted's plain ``Protocol`` rather than on ``twisted.mail.smtp.ESMTPSender``, whose
checked source sends one RCPT at a time (no PIPELINING), ignores SIZE and 8BITMIME, has one idle
timeout instead of RFC 5321 §4.5.3.2's per-command ones, and dot-stuffs with
``chunk.replace(b"\\n", b"\\r\\n")``, which turns the queue's CRLF lines into CR CR LF and misses a
dot at the start of the message or of a chunk. Here ``SMTPClientProtocol`` only parses replies
and writes bytes; ``ClientSession`` is a coroutine that reads like a session transcript and
returns one ``Outcome`` per recipient.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsuite.config import Config
from mailsuite.queue.entry import DEFERRED, DELIVERED, FAILED, Outcome
from mailsuite.queue.message import DotStuffer, MessageInfo

_REPLY_LINE = re.compile(rb"([2-5]\d\d)([ -]?)(.*)")
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 200
MAX_REPLY_TEXT = 2000  # of a reply, as kept in the queue and in bounces
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """RFC 5321 §4.5.3.2, in seconds (connect: how long a TCP connection may take)."""

    connect: float = 30
    greeting: float = 300
    command: float = 300
    data_init: float = 120
    data_block: float = 180
    data_end: float = 600

    @classmethod
    def from_config(cls, config: Config) -> Timeouts:
        return cls(
            config.client.connect_timeout,
            config.client.greeting_timeout,
            config.client.command_timeout,
            config.client.data_init_timeout,
            config.client.data_block_timeout,
            config.client.data_end_timeout,
        )


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def status(self) -> str:
        """The enhanced status code (RFC 3463) of the reply, or one derived from its class."""
        match = _ENHANCED.match(self.lines[0]) if self.lines else None
        if match and match.group(1) == str(self.code // 100):
            return match.group(0)
        return f"{self.code // 100}.0.0"

    def __str__(self) -> str:
        text = " ".join(line.strip() for line in self.lines if line.strip())[:MAX_REPLY_TEXT]
        return f"{self.code} {text}" if text else str(self.code)


class SessionError(Exception):
    """The session with one host ended without a result per recipient: try the next host.

    ``reply`` is the remote reply that ended it, if any; ``permanent`` only for a 5xx one.
    """

    def __init__(
        self, text: str, status: str = "4.4.2", reply: Reply | None = None, stage: str = ""
    ) -> None:
        super().__init__(text)
        self.text = text
        self.reply = reply
        self.stage = stage
        self.status = reply.status if reply is not None else status
        self.permanent = reply is not None and reply.code >= 500

    @classmethod
    def from_reply(cls, reply: Reply, stage: str) -> SessionError:
        return cls(str(reply), reply=reply, stage=stage)


class TLSFailed(SessionError):
    """The TLS handshake after STARTTLS failed (or the certificate was refused)."""


class _ConnectionClosed(Exception):
    def __init__(self, reason: Failure | None) -> None:
        super().__init__(str(reason.value) if reason is not None else "connection closed")
        self.tls_error = reason is not None and reason.check(SSL.Error) is not None


class _Timeout(Exception):
    pass


class _BadReply(Exception):
    pass


class SMTPClientProtocol(Protocol):
    """Parses replies (multi-line, in order) and hands them out through ``next_reply()``.

    Replies that arrive before anyone asks (pipelining) wait in a queue. A timeout aborts the
    connection; after that, or after the connection is lost, every read fails.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._buf = bytearray()
        self._lines: list[str] = []
        self._code = 0
        self._replies: deque[Reply] = deque()
        self._waiter: Deferred | None = None
        self._timer: Any = None
        self._error: Exception | None = None
        self._discard_after_reply = False
        self.connected = False

    def connectionMade(self) -> None:
        self.connected = True

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        while self._error is None:
            newline = self._buf.find(b"\n")
            if newline < 0:
                if len(self._buf) > MAX_REPLY_LINE:
                    self._bad_reply("reply line too long")
                return
            line = bytes(self._buf[:newline]).rstrip(b"\r")
            del self._buf[: newline + 1]
            match = _REPLY_LINE.fullmatch(line)
            if match is None or len(line) > MAX_REPLY_LINE:
                self._bad_reply(f"malformed reply line {line[:80]!r}")
                return
            code, separator, text = match.groups()
            self._lines.append(text.decode("utf-8", "replace"))
            if separator == b"-":
                if len(self._lines) > MAX_REPLY_LINES:
                    self._bad_reply("reply has too many lines")
                continue
            reply = Reply(int(code), tuple(self._lines))
            self._lines = []
            if self._discard_after_reply:
                # The STARTTLS reply: whatever followed it in plaintext is an injection attempt
                # (the client-side twin of CVE-2011-0411) and must not be read as a reply.
                self._discard_after_reply = False
                self._buf.clear()
            if self._waiter is not None:
                waiter, self._waiter = self._waiter, None
                self._cancel_timer()
                waiter.callback(reply)
            else:
                self._replies.append(reply)

    def _bad_reply(self, text: str) -> None:
        self._fail(_BadReply(text))
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        self._fail(_ConnectionClosed(reason))

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            self._cancel_timer()
            waiter.errback(self._error)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def next_reply(self, timeout: float) -> Deferred[Reply]:
        if self._replies:
            return succeed(self._replies.popleft())
        if self._error is not None:
            return fail(self._error)
        self._waiter = Deferred()
        self._timer = self._clock.callLater(timeout, self._timed_out, timeout)
        return self._waiter

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        self._fail(_Timeout(f"no reply within {timeout:g} seconds"))
        self.transport.abortConnection()

    def send(self, *lines: str) -> None:
        self.transport.write(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))

    def expect_starttls_reply(self) -> None:
        """The next reply answers STARTTLS: drop any plaintext that follows it."""
        self._discard_after_reply = True

    def start_tls(self, options: Any) -> None:
        self._buf.clear()
        self._replies.clear()
        self.transport.startTLS(options)

    def tls_version(self) -> str | None:
        for candidate in (self.transport, getattr(self.transport, "protocol", None)):
            get_handle = getattr(candidate, "getHandle", None)
            handle = get_handle() if get_handle is not None else None
            if hasattr(handle, "get_protocol_version_name"):
                return handle.get_protocol_version_name()
        return None

    def send_body(self, info: MessageInfo, block_timeout: float) -> Deferred[None]:
        """Stream the message file from ``info.offset``, dot-stuffed, then the final dot.

        The file is read on the reactor thread in 64 KiB chunks as the socket drains (like
        Twisted's FileSender); a block that makes no progress for ``block_timeout`` aborts.
        """
        fh = open(info.path, "rb")  # noqa: SIM115 - closed by the producer
        fh.seek(info.offset)
        producer = _BodyProducer(self, fh, block_timeout)
        self.transport.registerProducer(producer, False)
        return producer.done

    def abort(self) -> None:
        if self.connected:
            self.transport.abortConnection()

    def quit(self, timeout: float) -> Deferred[None]:
        """Say QUIT, wait briefly for the answer, and close; never fails."""
        if not self.connected:
            return succeed(None)
        self.send("QUIT")
        d = self.next_reply(timeout)
        d.addErrback(lambda _: None)
        d.addBoth(lambda _: self.transport.loseConnection())
        return d


@implementer(IPullProducer)
class _BodyProducer:
    def __init__(self, protocol: SMTPClientProtocol, fh: Any, block_timeout: float) -> None:
        self.done: Deferred[None] = Deferred()
        self._protocol = protocol
        self._transport = protocol.transport
        self._fh = fh
        self._stuffer = DotStuffer()
        self._block_timeout = block_timeout
        self._timer = protocol._clock.callLater(block_timeout, self._stalled)

    def resumeProducing(self) -> None:
        if self.done.called:
            return
        self._timer.reset(self._block_timeout)
        try:
            chunk = self._fh.read(_CHUNK)
        except OSError as exc:
            self._finish(exc)
            self._protocol.abort()
            return
        if chunk:
            self._transport.write(self._stuffer.feed(chunk))
            return
        self._transport.write(self._stuffer.finish())
        self._finish(None)

    def stopProducing(self) -> None:
        self._finish(_ConnectionClosed(None))

    def _stalled(self) -> None:
        self._finish(_Timeout(f"no progress sending the message for {self._block_timeout:g} s"))
        self._protocol.abort()

    def _finish(self, error: Exception | None) -> None:
        if self.done.called:
            return
        if self._timer.active():
            self._timer.cancel()
        self._fh.close()
        try:
            self._transport.unregisterProducer()
        except Exception:
            pass  # the connection is already gone
        if error is None:
            self.done.callback(None)
        else:
            self.done.errback(error)


@dataclass(frozen=True)
class SessionRequest:
    """One message for some recipients, and how to talk to this destination."""

    helo_name: str
    sender: str
    recipients: tuple[str, ...]
    message: MessageInfo
    timeouts: Timeouts
    starttls: bool = True  # use STARTTLS whenever it is offered
    require_tls: bool = False  # never send without TLS
    tls_options: Callable[[], Any] | None = None  # client TLS options for this destination
    credentials: tuple[str, str] | None = None  # AUTH PLAIN/LOGIN, only over TLS


def _b64(data: str) -> str:
    return base64.b64encode(data.encode("utf-8")).decode("ascii")


class ClientSession:
    """One connection's dialogue, from the greeting to the last transaction's reply.

    ``run()`` returns an outcome for every recipient, or raises SessionError when the host
    failed before any transaction (connection, greeting, EHLO, TLS, AUTH, a 4xx to MAIL): the
    caller then tries the next host. QUIT is left to the caller, so that a result is recorded
    before anything else can go wrong.
    """

    def __init__(self, protocol: SMTPClientProtocol, hop: Any, request: SessionRequest) -> None:
        self.protocol = protocol
        self.hop = hop
        self.request = request
        self.extensions: dict[str, str] = {}
        self.tls: str | None = None
        self._tls_pending = False

    # --- reading replies ----------------------------------------------------------------------

    async def _reply(self, timeout: float, stage: str) -> Reply:
        try:
            return await self.protocol.next_reply(timeout)
        except _Timeout as exc:
            if self._tls_pending:
                raise TLSFailed(f"TLS handshake timed out: {exc}", "4.7.5", stage=stage) from None
            raise SessionError(f"timeout after {stage}: {exc}", "4.4.2", stage=stage) from None
        except _ConnectionClosed as exc:
            if self._tls_pending:
                raise TLSFailed(f"TLS handshake failed: {exc}", "4.7.5", stage=stage) from None
            raise SessionError(f"lost connection after {stage}: {exc}", stage=stage) from None
        except _BadReply as exc:
            raise SessionError(
                f"protocol error after {stage}: {exc}", "4.5.0", stage=stage
            ) from None

    async def _command(self, line: str, timeout: float, stage: str) -> Reply:
        self.protocol.send(line)
        reply = await self._reply(timeout, stage)
        if reply.code == 421:
            raise SessionError.from_reply(reply, stage)
        return reply

    def _outcome(self, state: str, reply: Reply, stage: str) -> Outcome:
        return Outcome(
            state,
            reply.status,
            str(reply),
            smtp_reply=True,
            remote_mta=self.hop.name,
            remote_ip=self.hop.address,
            stage=stage,
            tls=self.tls,
        )

    def _from_reply(self, reply: Reply, stage: str) -> Outcome:
        if reply.positive:
            return self._outcome(DELIVERED, reply, stage)
        if reply.code < 500:
            return self._outcome(DEFERRED, reply, stage)
        return self._outcome(FAILED, reply, stage)

    def _local(self, state: str, status: str, text: str, stage: str) -> Outcome:
        return Outcome(
            state,
            status,
            text,
            remote_mta=self.hop.name,
            remote_ip=self.hop.address,
            stage=stage,
            tls=self.tls,
        )

    # --- the session ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Outcome]:
        timeouts = self.request.timeouts
        greeting = await self._reply(timeouts.greeting, "greeting")
        if greeting.code != 220:
            raise SessionError.from_reply(greeting, "greeting")
        await self._hello()
        await self._starttls()
        if self.request.credentials is not None:
            await self._auth(*self.request.credentials)
        return await self._deliver()

    async def _hello(self) -> None:
        timeout = self.request.timeouts.command
        reply = await self._command(f"EHLO {self.request.helo_name}", timeout, "EHLO")
        if reply.positive:
            self.extensions = {}
            for line in reply.lines[1:]:
                keyword, _, params = line.strip().partition(" ")
                self.extensions[keyword.upper()] = params.strip()
            return
        reply = await self._command(f"HELO {self.request.helo_name}", timeout, "HELO")
        if not reply.positive:
            raise SessionError.from_reply(reply, "HELO")
        self.extensions = {}

    async def _starttls(self) -> None:
        request = self.request
        if "STARTTLS" in self.extensions and request.starttls and request.tls_options:
            self.protocol.expect_starttls_reply()
            reply = await self._command("STARTTLS", request.timeouts.command, "STARTTLS")
            if reply.code == 220:
                self.protocol.start_tls(request.tls_options())
                self._tls_pending = True
                await self._hello()  # RFC 3207 §4.2: forget what was learnt before TLS
                self._tls_pending = False
                self.tls = self.protocol.tls_version() or "TLS"
            elif request.require_tls:
                raise SessionError.from_reply(reply, "STARTTLS")
        if request.require_tls and self.tls is None:
            raise SessionError(
                "TLS is required, but was not offered by the host", "4.7.4", stage="EHLO"
            )

    async def _auth(self, username: str, password: str) -> None:
        mechanisms = set(self.extensions.get("AUTH", "").upper().split())
        if not mechanisms:
            return  # nothing offered: send without, as Postfix does
        if self.tls is None:
            raise SessionError("refusing to send credentials without TLS", "4.7.0", stage="AUTH")
        timeout = self.request.timeouts.command
        if "PLAIN" in mechanisms:
            token = _b64(f"\0{username}\0{password}")
            reply = await self._command(f"AUTH PLAIN {token}", timeout, "AUTH")
        elif "LOGIN" in mechanisms:
            reply = await self._command("AUTH LOGIN", timeout, "AUTH")
            if reply.code == 334:
                reply = await self._command(_b64(username), timeout, "AUTH")
            if reply.code == 334:
                reply = await self._command(_b64(password), timeout, "AUTH")
        else:
            offered = " ".join(sorted(mechanisms))
            raise SessionError(f"no common AUTH mechanism ({offered})", "4.7.0", stage="AUTH")
        if reply.code != 235:
            # A configuration problem on one side or the other: defer, never bounce.
            raise SessionError(f"authentication failed: {reply}", "4.7.0", stage="AUTH")

    async def _deliver(self) -> dict[str, Outcome]:
        request, info = self.request, self.request.message
        recipients = request.recipients
        limit_text = self.extensions.get("SIZE", "")
        limit = int(limit_text) if limit_text.isdigit() else 0
        if limit and info.size > limit:
            text = f"message size {info.size} exceeds the limit {limit} of {self.hop.name}"
            return {r: self._local(FAILED, "5.3.4", text, "EHLO") for r in recipients}
        utf8 = not (request.sender.isascii() and all(r.isascii() for r in recipients))
        if utf8 and "SMTPUTF8" not in self.extensions:
            text = f"{self.hop.name} does not support SMTPUTF8, needed for these addresses"
            return {r: self._local(FAILED, "5.6.7", text, "EHLO") for r in recipients}
        if info.eight_bit and "8BITMIME" not in self.extensions:
            text = f"8-bit message, and {self.hop.name} does not support 8BITMIME"
            return {r: self._local(FAILED, "5.6.3", text, "EHLO") for r in recipients}
        params = ""
        if "SIZE" in self.extensions:
            params += f" SIZE={info.size}"
        if info.eight_bit:
            params += " BODY=8BITMIME"
        if utf8:
            params += " SMTPUTF8"
        outcomes: dict[str, Outcome] = {}
        pending = list(recipients)
        while pending:
            try:
                retry = await self._transaction(pending, params, outcomes)
            except SessionError as exc:
                if not outcomes:
                    raise  # nothing happened here yet: the next host may do better
                for address in pending:
                    outcomes[address] = self._local(DEFERRED, exc.status, exc.text, exc.stage)
                self.protocol.abort()
                break
            if not retry or len(retry) == len(pending):
                break
            pending = retry  # the peer limits recipients per transaction: send the rest now
        return outcomes

    async def _transaction(
        self, recipients: list[str], params: str, outcomes: dict[str, Outcome]
    ) -> list[str]:
        """One MAIL/RCPT/DATA; fills ``outcomes``; returns recipients refused as too many."""
        timeouts = self.request.timeouts
        mail = f"MAIL FROM:<{self.request.sender}>{params}"
        rcpts = [f"RCPT TO:<{r}>" for r in recipients]
        pipelining = "PIPELINING" in self.extensions
        if pipelining:
            self.protocol.send(mail, *rcpts, "DATA")
            mail_reply = await self._reply(timeouts.command, "MAIL FROM")
        else:
            mail_reply = await self._command(mail, timeouts.command, "MAIL FROM")
        if mail_reply.code == 421 or 400 <= mail_reply.code < 500:
            raise SessionError.from_reply(mail_reply, "MAIL FROM")  # try another host
        if not mail_reply.positive:
            for r in recipients:
                outcomes[r] = self._outcome(FAILED, mail_reply, "MAIL FROM")
            if pipelining:
                await self._drain_pipeline(len(rcpts))
            return []
        accepted: list[str] = []
        retry: list[str] = []
        try:
            for address, line in zip(recipients, rcpts, strict=True):
                if pipelining:
                    reply = await self._reply(timeouts.command, "RCPT TO")
                else:
                    reply = await self._command(line, timeouts.command, "RCPT TO")
                if reply.positive:
                    accepted.append(address)  # its outcome comes with the end of DATA
                    continue
                outcomes[address] = self._from_reply(reply, "RCPT TO")
                if reply.code == 452 or reply.status == "4.5.3":
                    retry.append(address)
            if pipelining:
                data_reply = await self._reply(timeouts.data_init, "DATA")
            elif accepted:
                data_reply = await self._command("DATA", timeouts.data_init, "DATA")
            else:
                return []
            if not accepted:
                if data_reply.code == 354:
                    self.protocol.abort()  # never send an empty message to end the DATA
                return []
            if data_reply.code != 354:
                for address in accepted:
                    outcomes[address] = self._from_reply(data_reply, "DATA")
                return []
            try:
                await self.protocol.send_body(self.request.message, timeouts.data_block)
            except (_Timeout, _ConnectionClosed) as exc:
                raise SessionError(f"lost connection while sending the message: {exc}") from None
            final = await self._reply(timeouts.data_end, "end of DATA")
            for address in accepted:
                outcomes[address] = self._from_reply(final, "end of DATA")
            return retry if final.positive else []
        except SessionError as exc:
            # The transaction broke half-way: what the peer had not finally accepted is retried.
            for address in recipients:
                if address not in outcomes:
                    outcomes[address] = self._local(DEFERRED, exc.status, exc.text, exc.stage)
            self.protocol.abort()
            return []

    async def _drain_pipeline(self, rcpt_count: int) -> None:
        """After a refused MAIL, read the pipelined RCPT and DATA replies (and never send data)."""
        try:
            for _ in range(rcpt_count):
                await self._reply(self.request.timeouts.command, "RCPT TO")
            data_reply = await self._reply(self.request.timeouts.data_init, "DATA")
        except SessionError:
            self.protocol.abort()
            return
        if data_reply.code == 354:
            self.protocol.abort()
