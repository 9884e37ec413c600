"""The IMAP4rev1 server protocol (RFC 3501) on the session kernel (mailsuite/wire/session.py).

Why not ``twisted.mail.imap4.IMAP4Server``: its verified defects (STARTTLS command injection,
unlimited APPEND literals, APPEND without flags crashing, IDLE ended by any line, pipelined
commands misrouted behind a Deferred SELECT) sit in its core loop, and it lacks most extensions
Thunderbird uses (UIDPLUS, MOVE, SPECIAL-USE, CONDSTORE, ...). scripts/bench/imap_fetch_decision.py
measured it too (see the README). On the kernel shared with SMTP and POP3:

- a command's literals are read in the kernel's raw mode after their size was checked
  against a limit (an announced ``{4294967295}`` is refused without allocating anything), big
  APPEND literals are spooled to disk as they arrive;
- commands run strictly one after another: while one waits for a worker thread, the rest of the
  pipeline stays in the buffer, so responses never interleave or reorder;
- untagged updates about the selected folder go out before each tagged reply, when allowed.

The command handlers live in mailsuite/imap/commands/, one module per group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsuite.accounts.login import Authenticator
from mailsuite.config import Config
from mailsuite.imap.commands import No, handler_for
from mailsuite.imap.hub import FolderHub
from mailsuite.imap.parser import Literal, ParseError, Reader, split_tag
from mailsuite.imap.selection import Selection
from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.index import FolderGone
from mailsuite.store.maildir import MaildirStore
from mailsuite.wire.listener import SessionFactory
from mailsuite.wire.session import LineSession, LineTooLong, SessionLimits

log = Logger(namespace="mailsuite.imap")

MAX_SMALL_LITERAL = 64 * 1024  # literals outside APPEND (passwords, search strings, names)
MAX_COMMAND_LITERALS = 32
IN_MEMORY_APPEND = 256 * 1024
_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")

# Commands during which an EXPUNGE response must not be sent (RFC 3501 §7.4.1).
NO_EXPUNGE_DURING = {"FETCH", "STORE", "SEARCH"}


@dataclass(frozen=True)
class IMAPLimits(SessionLimits):
    max_literal: int  # APPENDLIMIT
    max_connections_per_user: int
    idle_poll: float = 0.5  # how often a folder with idling sessions is looked at

    @classmethod
    def from_config(cls, config: Config) -> IMAPLimits:
        return cls(
            max_line=config.imap.command_line,
            max_bad_commands=config.limits.bad_commands,
            idle_timeout=config.imap.idle_timeout,
            max_literal=config.limits.message_size,
            max_connections_per_user=config.imap.max_connections_per_user,
        )


@dataclass
class IMAPContext:
    """What every IMAP connection of the process shares."""

    hostname: str
    limits: IMAPLimits
    authenticator: Authenticator
    store: MaildirStore
    spool_dir: Path
    tls_options: object | None = None
    hub: FolderHub = field(default_factory=FolderHub)
    connections: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hub.interval = self.limits.idle_poll

    def delivered(self, addresses) -> None:
        """Observer for MessageRouter: wake sessions watching those INBOXes (reactor thread)."""
        for address in addresses:
            try:
                self.hub.poke(self.store.maildir_path(address))
            except ValueError:
                continue


class _Assembly:
    """A command being read: line pieces and the literals between them."""

    def __init__(self, tag: str | None, name: str | None) -> None:
        self.tag = tag
        self.name = name
        self.pieces: list[bytes] = []
        self.literals: list[Literal] = []
        self.literal_bytes = 0


@implementer(IPushProducer)
class IMAPServer(LineSession):
    """One IMAP session. As a push producer it is told when the client reads too slowly for
    a big response (``writable``)."""

    protocol_name = "IMAP"

    def __init__(self, context: IMAPContext, implicit_tls: bool) -> None:
        super().__init__(context.limits, implicit_tls)
        self.ctx = context
        self.limits = context.limits
        self.attempts = context.authenticator.attempts("imap")
        self.farewell: str | None = None
        self._assembly: _Assembly | None = None
        self._literal: Literal | None = None
        self._literal_buffer: bytearray | None = None
        self._literal_remaining = 0
        self.state = "nonauth"
        self.user: str | None = None
        self.account = None  # IMailAccount after login
        self.folders = None  # its IFolders
        self.selected: Selection | None = None
        self.condstore = False
        self.qresync = False
        self._write_paused = False
        self._write_waiters: list[Deferred] = []
        self._producing = False

    # --- connection life cycle ----------------------------------------------------------------

    def session_started(self) -> None:
        caps = " ".join(self.capabilities())
        self.send(f"* OK [CAPABILITY {caps}] {self.ctx.hostname} IMAP4rev1 mailsuite ready\r\n")

    def session_ended(self, reason: Failure | None) -> None:
        self._end_idle()
        self.deselect()
        self.release_slot()
        if self._literal is not None and self._literal.incoming is not None:
            self._literal.incoming.discard()
        for waiter in self._write_waiters:
            waiter.callback(None)
        self._write_waiters = []

    def release_slot(self) -> None:
        """Give back the per-user connection slot this session took at login (once)."""
        user, self.user = self.user, None
        if user is None:
            return
        remaining = self.ctx.connections.get(user, 1) - 1
        if remaining > 0:
            self.ctx.connections[user] = remaining
        else:
            self.ctx.connections.pop(user, None)

    def timeoutConnection(self) -> None:
        self.bye("Autologout; idle for too long")

    def bye(self, text: str) -> None:
        self.send(f"* BYE {text}\r\n")
        self.close_session()

    def send(self, data: str | bytes) -> None:
        super().send(data.encode("utf-8") if isinstance(data, str) else data)

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE"]
        caps += ["UNSELECT", "UIDPLUS", "MOVE", "SPECIAL-USE", "CHILDREN", "CONDSTORE", "QRESYNC"]
        caps.append(f"APPENDLIMIT={self.limits.max_literal}")
        if self.state == "nonauth":
            if not self.tls:
                if self.ctx.tls_options is not None:
                    caps.append("STARTTLS")
                caps.append("LOGINDISABLED")
            else:
                caps.append("AUTH=PLAIN")
        return caps

    # --- flow control for large responses -----------------------------------------------------

    def pauseProducing(self) -> None:
        self._write_paused = True

    def resumeProducing(self) -> None:
        self._write_paused = False
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def stopProducing(self) -> None:
        self._closing = True
        self.resumeProducing()

    def start_output(self) -> None:
        """Register for write back-pressure for the length of one big response."""
        if not self._producing and not self.closing:
            self.transport.registerProducer(self, True)
            self._producing = True

    def end_output(self) -> None:
        if self._producing:
            self._producing = False
            self._write_paused = False
            if not self.closing:
                self.transport.unregisterProducer()

    def writable(self) -> Deferred:
        """Fires once the transport wants more data."""
        if not self._write_paused or self.closing:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._write_waiters.append(waiter)
        return waiter

    # --- input --------------------------------------------------------------------------------

    @property
    def raw_mode(self) -> bool:
        return self._literal_remaining > 0

    def line_too_long(self, head: bytes) -> None:
        """Answered with the command's tag when it can be read, so a client waiting for its
        tagged reply does not hang (RFC 3501 §7.1.5: BAD, tagged if the tag is known)."""
        assembly, self._assembly = self._assembly, None
        tag = assembly.tag if assembly is not None else split_tag(head)[0]
        self._bad(f"{tag or '*'} BAD Command line too long\r\n")

    def internal_error(self) -> None:
        self.send("* NO [SERVERBUG] Internal error, try again later\r\n")

    def raw_received(self, data: bytes) -> int:
        """The bytes of the literal being read (``raw_mode``)."""
        take = min(self._literal_remaining, len(data))
        chunk = data[:take] if take < len(data) else data
        self._literal_remaining -= take
        literal = self._literal
        if literal.incoming is not None:
            literal.incoming.write(chunk)
        else:
            self._literal_buffer += chunk
        if self._literal_remaining == 0:
            if literal.incoming is None:
                literal.data = bytes(self._literal_buffer)
                self._literal_buffer = None
            self._assembly.literals.append(literal)
            self._literal = None
        return take

    def line_received(self, line: bytes) -> Deferred | None:
        assembly = self._assembly
        if assembly is None:
            tag, name = split_tag(line)
            assembly = self._assembly = _Assembly(tag, name)
        assembly.pieces.append(line)
        match = _LITERAL_RE.search(line)
        if match is None:
            self._assembly = None
            return self._run(assembly)
        size, non_sync = int(match.group(1)), bool(match.group(2))
        is_append = assembly.name == "APPEND"
        limit = self.limits.max_literal if is_append else MAX_SMALL_LITERAL
        tag = assembly.tag or "*"
        too_many = len(assembly.pieces) > MAX_COMMAND_LITERALS
        if size > limit or too_many or assembly.literal_bytes + size > max(limit, 1 << 20):
            self._assembly = None
            if is_append and not too_many:
                self.send(f"{tag} NO [TOOBIG] Message too large (APPENDLIMIT)\r\n")
            else:
                self._bad(f"{tag} BAD Literal too large\r\n")
            if non_sync:  # the client sends it anyway: do not read it as commands
                self.bye("Literal too large")
            return None
        assembly.literal_bytes += size
        if is_append and size > IN_MEMORY_APPEND:
            self._literal = Literal(size, incoming=IncomingMessage(self.ctx.spool_dir))
        else:
            self._literal = Literal(size)
            self._literal_buffer = bytearray()
        self._literal_remaining = size
        if size == 0:
            self._literal.data = b""
            assembly.literals.append(self._literal)
            self._literal = None
        if not non_sync:
            self.send("+ Ready for literal data\r\n")
        return None

    def _bad(self, text: str) -> None:
        self.send(text)
        if self.note_bad_command():
            self.bye("Too many invalid commands")

    # --- dispatch -----------------------------------------------------------------------------

    def _run(self, assembly: _Assembly) -> Deferred | None:
        """Dispatch a complete command; its Deferred holds the pipeline until it is answered."""
        tag, name = assembly.tag, assembly.name
        if tag is None:
            self._bad("* BAD Invalid tag\r\n")
            return None
        reader = Reader(assembly.pieces, assembly.literals)
        # Skip "<tag> <command>" (and "UID ") already split off by split_tag.
        reader.pos = len(tag.encode()) + 1 + len(name)
        handler = handler_for(self, name)
        self.emit("command", verb=name.upper() if handler is not None else "UNKNOWN")
        if handler is None:
            self._discard_literals(assembly)
            self._bad(f"{tag} BAD Unknown command or not allowed now\r\n")
            return None
        d = maybeDeferred(handler, tag, reader)
        d.addCallbacks(self._finish, self._failed, callbackArgs=(tag, name), errbackArgs=(tag,))
        d.addBoth(lambda _: self._discard_literals(assembly))
        return d

    @staticmethod
    def _discard_literals(assembly: _Assembly) -> None:
        for literal in assembly.literals:
            if literal.incoming is not None:
                literal.incoming.discard()

    def _finish(self, text: str | None, tag: str, name: str) -> Deferred | None:
        if text is None:  # the handler answered itself (LOGOUT, STARTTLS, IDLE...)
            return None
        d = self.announce(name not in NO_EXPUNGE_DURING)
        return d.addCallback(lambda _: self.send(f"{tag} {text}\r\n"))

    def _failed(self, failure: Failure, tag: str) -> None:
        self._answer_failure(failure, tag)
        if self.farewell is not None:
            self.bye(self.farewell)

    def _answer_failure(self, failure: Failure, tag: str) -> None:
        if failure.check(ParseError):
            self._bad(f"{tag} BAD {failure.value}\r\n")
        elif failure.check(No):
            self.send(f"{tag} NO {failure.value}\r\n")
        elif failure.check(FolderGone) or (failure.check(FileNotFoundError) and self._lost()):
            # Deleted by another session between the command's check and its work (rare: a
            # stat here is fine). A selected folder that went ends the session, as it would
            # at the next update.
            self.send(f"{tag} NO [NONEXISTENT] The folder was deleted meanwhile\r\n")
            if self._lost():
                self.folder_gone()
        else:
            log.failure("IMAP command failed", failure)
            self.send(f"{tag} NO [SERVERBUG] Internal error, try again later\r\n")

    def _lost(self) -> bool:
        """Is the selected folder gone from the disk?"""
        return self.selected is not None and not self.selected.index.exists()

    # --- the selected folder's updates --------------------------------------------------------

    def deselect(self) -> None:
        if self.selected is not None:
            self.ctx.hub.leave(self.selected.path, self)
            self.selected = None

    def announce(self, allow_expunge: bool, force: bool = False, sync: bool = True) -> Deferred:
        """Send pending updates about the selected folder (looking again if it changed).

        ``force`` rescans the folder (NOOP, CHECK, IDLE); ``sync=False`` trusts the index as
        it is (a wake-up from the hub: whoever changed it, or the folder's poller, synced it).
        """
        selection = self.selected
        if selection is None:
            return succeed(None)
        version = self.ctx.hub.version(selection.path)
        if not force and version == selection.version:
            self._send_updates(selection, allow_expunge)
            return succeed(None)

        def look():
            index = selection.index
            if not index.exists():
                return None  # deleted or renamed by another program
            if force or (sync and index.needs_sync()):
                index.sync()
            with index.lock:  # the snapshot the changes lead to, and the \\Recent claim on it
                recent = index.claim_recent(claim=not selection.readonly)
                changes = index.changes_since(selection.modseq, selection.uids)
                return changes, recent, index.uid_array()

        def looked(result) -> None:
            if self.selected is not selection:
                return
            if result is None:
                self.folder_gone()
                return
            (changed, expunged, highest), recent, snapshot = result
            selection.version = version
            appended = selection.absorb(changed, expunged, highest)
            selection.recent.update(uid for uid in appended if uid in recent)
            self._send_updates(selection, allow_expunge)
            selection.adopt(snapshot)

        return threads.deferToThread(look).addCallback(looked)

    def _send_updates(self, selection: Selection, allow_expunge: bool) -> None:
        keywords = selection.flags_update()  # before any FETCH that may show a new keyword
        if keywords:
            self.send(keywords)
        updates = selection.flush(allow_expunge)
        if updates:
            self.send(b"".join(updates))
            if selection.recent and any(b"EXISTS" in u for u in updates):
                count = sum(1 for uid in selection.recent if selection.msn(uid) is not None)
                self.send(b"* %d RECENT\r\n" % count)
        held_back = b"" if allow_expunge else selection.held_back()
        if held_back:
            self.send(held_back)

    def folder_changed(self) -> None:
        """The hub's wake-up call: push updates at once while idling."""
        if self._idle_tag is not None and self.selected is not None:
            self.announce(True, sync=False).addErrback(
                lambda f: log.failure("IDLE update failed", f)
            )

    def folder_gone(self) -> None:
        """The selected folder was deleted or renamed: RFC 3501 has no way to say so within
        the session, so end it (as Dovecot does); the client reconnects and lists again."""
        if self.selected is not None:
            self.ctx.hub.leave(self.selected.path, self)
        self.bye("Selected folder was deleted or renamed")

    # --- IDLE (RFC 2177) ----------------------------------------------------------------------

    _idle_tag: str | None = None
    _idling = False

    async def idle(self, tag: str) -> str:
        """Push the selected folder's changes until the client sends DONE."""
        self._idle_tag = tag
        self._idling = True
        self.send("+ idling\r\n")
        self.emit("imap.idle", started=True)
        selection = self.selected
        if selection is not None:
            self.ctx.hub.watch(selection.path, self, selection.index)
            if self.ctx.hub.version(selection.path) != selection.version:  # news meanwhile
                self.announce(True).addErrback(lambda f: log.failure("IDLE update failed", f))
        try:
            while True:
                try:
                    line = await self.next_line()
                except LineTooLong:
                    line = b""
                if line.strip().upper() == b"DONE":
                    return "OK IDLE terminated"
                self.send("* BAD Expected DONE\r\n")
        finally:
            if self.selected is not None:
                self.ctx.hub.unwatch(self.selected.path, self)
            self._idle_tag = None
            self._end_idle()

    def _end_idle(self) -> None:
        """Counted once, whether DONE came or the connection went while idling."""
        if self._idling:
            self._idling = False
            self.emit("imap.idle", started=False)


def IMAPFactory(context: IMAPContext, implicit_tls: bool) -> SessionFactory:
    """Sessions of one listener (see SessionFactory)."""
    return SessionFactory(IMAPServer, context, implicit_tls)
