"""The one pipelined session kernel SMTP, POP3 and IMAP stand on.

Each protocol is a line-based dialog with pipelining: a client may send many commands at once,
and the replies must come back in order, each after its command's work (a password check, a
database lookup, an fsync) has finished. The kernel owns the bytes: one buffer; lines cut at
LF; a command with an asynchronous step holds the rest of the pipeline in the buffer (and stops
reading once that holds more than ``MAX_BUFFERED``) until the step is done; a raw mode for
bytes that are not lines (SMTP DATA, IMAP literals); continuation lines for a running command
(``next_line``: SASL exchanges, IMAP's IDLE ... DONE).

Decided once here for all three protocols (each was written differently before):

- ``max_line`` is the longest line *without* its line ending (CR LF or LF). An overlong line is
  answered once, by the protocol (``line_too_long``), and the input is skipped up to the next
  LF, so the rest of that line is never read as commands. If a running command was waiting for
  a continuation line, that command gets the error (``LineTooLong`` from ``next_line``) and
  answers it in its own terms; nothing else answers.
- Client errors are counted (``note_bad_command``); at ``max_bad_commands`` the protocol says
  goodbye and closes (Postfix's smtpd_hard_error_limit, Dovecot's similar limit).
- The idle timer restarts on every byte received and when a command's asynchronous step ends,
  so a long step (a big RETR, a slow disk) does not count as the client's idleness.
- TCP_NODELAY on every connection: replies are small lock-step writes, and Nagle with the
  client's delayed ACK would hold one back for 40 ms.
- STARTTLS/STLS discard whatever the client pipelined after the command in plaintext before
  the handshake (CVE-2011-0411 class command injection), in ``start_tls``.
- Every reply goes out through ``send``, which writes at once when it can (``fastwrite``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from mailsuite.events import NO_EVENTS, Events
from mailsuite.wire.closing import close_connection
from mailsuite.wire.fastwrite import write_now

log = Logger(namespace="mailsuite.wire")

# While a command's asynchronous step runs, stop reading once this much input is waiting.
MAX_BUFFERED = 1024 * 1024


@dataclass(frozen=True)
class SessionLimits:
    """What the kernel needs of a protocol's limits; each protocol's own Limits extends it and
    is built from the configuration by its ``from_config`` (the one way from config to limits)."""

    max_line: int
    max_bad_commands: int
    idle_timeout: float


class LineTooLong(Exception):
    """A continuation line (see ``LineSession.next_line``) was longer than the limit."""


class LineSession(TimeoutMixin, Protocol):
    """One connection of a line-based protocol. Subclasses implement the hooks at the end."""

    protocol_name = "session"

    def __init__(self, limits: SessionLimits, implicit_tls: bool = False) -> None:
        self.max_line = limits.max_line
        self.max_bad_commands = limits.max_bad_commands
        self.idle_timeout = limits.idle_timeout
        self.tls = implicit_tls  # the connection is (now) encrypted
        self.peer = "unknown"  # the client's IP address
        self._buf = bytearray()
        self._busy = False  # a command's asynchronous step is running
        self._paused = False  # we stopped reading (pipeline too long while busy)
        self._closing = False
        self._skip_to_newline = False
        self._waiter: Deferred | None = None  # a running command wants the next line
        self._bad_commands = 0
        self._events: Events | None = None  # the factory's hub, looked up at the first event
        self._role = ""

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """The session is over (goodbye said or connection lost): nothing more is sent."""
        return self._closing

    @property
    def role(self) -> str:
        """The listener role this session came in on ("smtp", "imaps", ...)."""
        return getattr(getattr(self, "factory", None), "role", self.protocol_name.lower())

    @property
    def events(self) -> Events:
        """The server's event hub (mailsuite/events.py), given to the factory by the service."""
        return getattr(getattr(self, "factory", None), "events", NO_EVENTS)

    def emit(self, kind: str, **fields: Any) -> None:
        """An event about this session: role, protocol and client are filled in. Several per
        message (every command), so with nobody listening it costs one attribute check."""
        events = self._events
        if events is None:
            events = self._events = self.events
            self._role = self.role
        if events.active:
            events.emit(
                kind, role=self._role, protocol=self.protocol_name, client=self.peer, **fields
            )

    def connectionMade(self) -> None:
        self.peer = getattr(self.transport.getPeer(), "host", "unknown")
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:  # TLS wrappers forward it to the TCP transport
            set_no_delay(True)
        self.setTimeout(self.idle_timeout)
        self.emit("session.opened", tls=self.tls)
        self.session_started()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        self.setTimeout(None)
        self.emit("session.closed", tls=self.tls)
        self.session_ended(reason)

    def send(self, data: bytes) -> None:
        """Write ``data`` unless the session is over."""
        if not self._closing:
            write_now(self.transport, data)

    def close_session(self) -> None:
        """End the session after what was sent (the protocol's goodbye) is written."""
        self._closing = True
        close_connection(self.transport)

    def start_tls(self, options: Any) -> None:
        """Start TLS now; what the client pipelined in plaintext after the command is dropped."""
        self._buf.clear()
        self._skip_to_newline = False
        self.transport.startTLS(options)
        self.tls = True
        self.emit("session.starttls")

    def note_bad_command(self) -> bool:
        """Count one client error; True when that was one too many (say goodbye and close)."""
        self._bad_commands += 1
        return self._bad_commands >= self.max_bad_commands

    # --- input --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        self._buf += data
        self._drain()

    def next_line(self) -> Deferred:
        """The next line from the client, for the running command (even while it holds the
        pipeline): fires with the line's bytes, or fails with LineTooLong."""
        waiter: Deferred = Deferred()
        self._waiter = waiter
        return waiter

    @property
    def raw_mode(self) -> bool:
        """True while input is not lines (see ``raw_received``)."""
        return False

    def run_step(self, handler: Any, *args: Any) -> None:
        """Run a command handler; if it returns a Deferred that has not fired, the rest of the
        pipeline waits in the buffer until it has."""
        try:
            result = handler(*args)
        except Exception:
            log.failure("{name} command failed", name=self.protocol_name)
            self.internal_error()
            return
        if isinstance(result, Deferred):
            result.addErrback(self._step_failed)
            if result.called and not result.paused:
                return  # answered at once (a cached lookup): keep draining, without recursion
            self._busy = True
            result.addBoth(self._resume)

    def _step_failed(self, failure: Failure) -> None:
        log.failure("{name} command failed", failure, name=self.protocol_name)
        self.internal_error()

    def _resume(self, _: object) -> None:
        self._busy = False
        if self._closing:
            return
        self.resetTimeout()
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        self._drain()

    def _drain(self) -> None:
        buf = self._buf
        while buf and not self._closing:
            if self.raw_mode:
                used = self.raw_received(bytes(buf))
                if not used:
                    return  # the raw part wants more input than has come
                del buf[:used]
                continue
            if self._busy and self._waiter is None:
                if len(buf) > MAX_BUFFERED and not self._paused:
                    self._paused = True
                    self.transport.pauseProducing()
                return
            newline = buf.find(b"\n")
            if self._skip_to_newline:
                if newline < 0:
                    buf.clear()
                    return
                del buf[: newline + 1]
                self._skip_to_newline = False
                continue
            if newline < 0:
                if len(buf) > self.max_line + 1:  # + 1: the CR of a CR LF still to come
                    head = bytes(buf[:256])
                    buf.clear()
                    self._skip_to_newline = True
                    self._overlong(head)
                return
            end = newline - 1 if newline and buf[newline - 1] == 0x0D else newline
            if end > self.max_line:
                head = bytes(buf[: min(end, 256)])
                del buf[: newline + 1]
                self._overlong(head)
                continue
            line = bytes(buf[:end])
            del buf[: newline + 1]
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                waiter.callback(line)
                continue
            self.run_step(self.line_received, line)

    def _overlong(self, head: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.errback(LineTooLong())
        else:
            self.line_too_long(head)

    # --- what each protocol provides ----------------------------------------------------------

    def session_started(self) -> None:
        """The connection is up: send the greeting."""

    def session_ended(self, reason: Failure | None) -> None:
        """The connection is gone: give back what the session held."""

    def line_received(self, line: bytes) -> Deferred | None:
        """One command line (without its line ending). Return a Deferred to hold the pipeline
        until the command's asynchronous step is done."""
        raise NotImplementedError

    def raw_received(self, data: bytes) -> int:
        """Input while ``raw_mode`` is true: return how many bytes of ``data`` were taken (the
        rest, once raw mode ends, is read as lines again)."""
        raise NotImplementedError

    def line_too_long(self, head: bytes) -> None:
        """Answer an overlong command line (``head``: its first bytes, say for IMAP's tag)."""
        raise NotImplementedError

    def internal_error(self) -> None:
        """A command failed unexpectedly (logged): answer with the protocol's temporary error."""
        raise NotImplementedError
