"""The POP3 server protocol (RFC 1939) with CAPA, STLS, AUTH PLAIN and response codes.

Written on the session kernel (mailsuite/wire/session.py) rather than on
``twisted.mail.pop3.POP3``, whose verified defects (no STLS, USER/PASS in plaintext, DELE deleting
at once, CRLF turned into CR CR LF, a "." at a 16 KiB boundary left unstuffed) sit in its core:

- commands are handled strictly in order, and a command with an asynchronous step (a password
  check, the maildrop scan, a RETR being streamed, the UPDATE commit) holds the following
  pipelined commands until its response is complete (RFC 2449 PIPELINING);
- STLS discards whatever the client pipelined after it in plaintext (no command injection);
- USER/PASS and AUTH only over TLS; a maildrop is locked while a session holds it; deletions are
  committed only after QUIT (the UPDATE state), so a dropped connection deletes nothing.

All file-system work except reading a message's next chunk runs in the reactor's thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsuite.accounts.login import Authenticator, LoginResult
from mailsuite.accounts.sasl import SASLError, decode_plain
from mailsuite.config import Config
from mailsuite.pop3.locks import MaildropLocks
from mailsuite.pop3.sender import MessageSender, SendAborted
from mailsuite.store.interfaces import IMaildropAccount
from mailsuite.store.maildrop import Maildrop, MessageGone
from mailsuite.wire.listener import SessionFactory
from mailsuite.wire.session import LineSession, LineTooLong, SessionLimits

log = Logger(namespace="mailsuite.pop3")

# RFC 1939 §3: an autologout timer, if any, must be at least 10 minutes.
MIN_IDLE_TIMEOUT = 600.0

AUTHORIZATION, TRANSACTION, UPDATE = "AUTHORIZATION", "TRANSACTION", "UPDATE"


@dataclass(frozen=True)
class POP3Limits(SessionLimits):
    @classmethod
    def from_config(cls, config: Config) -> POP3Limits:
        return cls(
            max_line=config.limits.command_line,
            max_bad_commands=config.limits.bad_commands,
            idle_timeout=max(MIN_IDLE_TIMEOUT, config.limits.idle_timeout),
        )


@dataclass
class POP3Context:
    """What every POP3 connection of the process shares (both listeners)."""

    hostname: str
    limits: POP3Limits
    authenticator: Authenticator
    tls_options: object | None = None  # twisted.internet.ssl.CertificateOptions
    locks: MaildropLocks = field(default_factory=MaildropLocks)

    @classmethod
    def from_config(
        cls,
        config: Config,
        authenticator: Authenticator,
        tls_options: object | None,
    ) -> POP3Context:
        limits = POP3Limits.from_config(config)
        return cls(config.hostname, limits, authenticator, tls_options)


AUTH_COMMANDS = frozenset({"CAPA", "STLS", "USER", "PASS", "AUTH", "QUIT"})
TRANSACTION_COMMANDS = frozenset(
    {"CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP", "UIDL"}
)


class POP3Server(LineSession):
    """One POP3 session."""

    protocol_name = "POP3"

    def __init__(self, context: POP3Context, implicit_tls: bool) -> None:
        super().__init__(context.limits, implicit_tls)
        self.ctx = context
        self._attempts = context.authenticator.attempts("pop3")
        self._state = AUTHORIZATION
        self._user_arg: bytes | None = None  # name given by USER, waiting for PASS
        self._address: str | None = None  # the logged-in user, holding the maildrop lock
        self._logout = None
        self._updating = False
        self._drop: Maildrop | None = None
        self._deleted: set[int] = set()  # 0-based indices marked by DELE
        self._retrieved: set[int] = set()  # 0-based indices sent whole by RETR

    # --- connection life cycle ----------------------------------------------------------------

    def session_started(self) -> None:
        self.ok(f"{self.ctx.hostname} POP3 mailsuite ready")

    def session_ended(self, reason: Failure | None) -> None:
        if not self._updating:
            self._release()  # a dropped connection commits nothing (RFC 1939 §6)

    def timeoutConnection(self) -> None:
        log.info("pop3 idle timeout client={client}", client=self.peer)
        self.close("-ERR", "Disconnected for inactivity")

    def close(self, status: str, text: str) -> None:
        self._send_line(f"{status} {text}")
        self.close_session()

    def _release(self) -> None:
        """Give back the maildrop lock and the avatar."""
        if self._address is not None:
            self.ctx.locks.release(self._address, self)
            self._address = None
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()

    # --- output -------------------------------------------------------------------------------

    def _send_line(self, line: str) -> None:
        self.send(line.encode("utf-8") + b"\r\n")

    def ok(self, text: str = "") -> None:
        self._send_line(f"+OK {text}" if text else "+OK")

    def err(self, text: str) -> None:
        self._send_line(f"-ERR {text}")

    def multiline(self, first: str, lines: list[str]) -> None:
        body = "".join(f"{line}\r\n" for line in lines)
        self.send(f"+OK {first}\r\n{body}.\r\n".encode())

    def _error(self, text: str) -> None:
        """A client mistake: counted, and too many end the session."""
        if self.note_bad_command():
            self.close("-ERR", "Too many errors, closing connection")
        else:
            self.err(text)

    # --- input --------------------------------------------------------------------------------

    def line_too_long(self, head: bytes) -> None:
        self._error("Line too long")

    def internal_error(self) -> None:
        self.err("[SYS/TEMP] Internal error, try again later")

    def line_received(self, line: bytes) -> Deferred | None:
        name, _, arg = line.partition(b" ")
        command = name.decode("ascii", "replace").upper()
        if not command:
            self._error("Empty command")
            return None
        allowed = AUTH_COMMANDS if self._state == AUTHORIZATION else TRANSACTION_COMMANDS
        known = command in AUTH_COMMANDS or command in TRANSACTION_COMMANDS
        self.emit("command", verb=command if known else "UNKNOWN")
        if command not in allowed:
            if command in AUTH_COMMANDS | TRANSACTION_COMMANDS:
                self._error(f"{command} not valid in the {self._state} state")
            else:
                self._error("Unknown command")
            return None
        if command != "PASS":
            arg = arg.strip(b" ")
        return getattr(self, f"pop3_{command}")(arg)

    # --- any state ----------------------------------------------------------------------------

    def pop3_CAPA(self, arg: bytes) -> None:
        if arg:
            self._error("Syntax: CAPA")
            return
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self._state == AUTHORIZATION:
            if self.tls:
                caps += ["USER", "SASL PLAIN"]
            elif self.ctx.tls_options is not None:
                caps.append("STLS")
        caps.append("IMPLEMENTATION mailsuite")
        self.multiline("Capability list follows", caps)

    def pop3_QUIT(self, arg: bytes) -> Deferred | None:
        if self._state == AUTHORIZATION:
            self.close("+OK", f"{self.ctx.hostname} POP3 mailsuite signing off")
            return None
        return self._update()

    # --- AUTHORIZATION: STLS, USER/PASS, AUTH PLAIN -------------------------------------------

    def pop3_STLS(self, arg: bytes) -> None:
        if arg:
            self._error("Syntax: STLS")
        elif self.tls:
            self._error("Command not permitted when TLS active")
        elif self.ctx.tls_options is None:
            self.err("TLS not available")
        else:
            self.ok("Begin TLS negotiation")
            self.start_tls(self.ctx.tls_options)  # RFC 2595 §4: drops pipelined plaintext
            self._user_arg = None

    def _refuse_plaintext(self) -> bool:
        if self.tls:
            return False
        self._error("Authentication requires TLS: send STLS first")
        return True

    def pop3_USER(self, arg: bytes) -> None:
        if self._refuse_plaintext():
            return
        if not arg:
            self._error("Syntax: USER name")
            return
        self._user_arg = arg
        self.ok("Send PASS")

    def pop3_PASS(self, arg: bytes) -> Deferred | None:
        if self._refuse_plaintext():
            return None
        username, self._user_arg = self._user_arg, None
        if username is None:
            self._error("Send USER first")
            return None
        return self._login(username, arg)

    def pop3_AUTH(self, arg: bytes) -> Deferred | None:
        if not arg:
            # The pre-CAPA way to list mechanisms (RFC 1734 clients still send it).
            self.multiline("Mechanisms follow", ["PLAIN"] if self.tls else [])
            return None
        if self._refuse_plaintext():
            return None
        mechanism, _, initial = arg.partition(b" ")
        if mechanism.upper() != b"PLAIN":
            self._error("Unsupported authentication mechanism")
            return None
        return Deferred.fromCoroutine(self._auth_plain(initial.strip(b" ") or None))

    async def _auth_plain(self, initial: bytes | None) -> None:
        try:
            if initial is None:
                self._send_line("+ ")
                initial = await self.next_line()
            username, password = decode_plain(initial)
        except LineTooLong:
            self._error("Line too long")
            return
        except SASLError as exc:
            self._error(str(exc))
            return
        await self._login(username, password)

    def _login(self, username: bytes, password: bytes) -> Deferred:
        attempt = self._attempts.login(username, password, self.peer, IMaildropAccount)
        d = Deferred.fromCoroutine(attempt)
        return d.addCallback(self._logged_in)

    def _logged_in(self, result: LoginResult) -> Deferred | None:
        if result.temporary:
            self.err("[SYS/TEMP] Temporary authentication failure, try again later")
            return None
        if not result.ok:
            if result.last:
                self.close("-ERR", "[AUTH] Too many failed authentication attempts")
            else:
                self.err("[AUTH] Invalid user name or password")
            return None
        account, logout = result.avatar, result.logout
        address = account.address
        if self.closing:
            logout()
            return None
        if not self.ctx.locks.acquire(address, self):
            logout()
            log.info(
                "pop3 maildrop in use client={client} user={user}", client=self.peer, user=address
            )
            self.err("[IN-USE] Maildrop is locked by another POP3 session")
            return None
        self._address, self._logout = address, logout
        d = threads.deferToThread(account.maildrop)  # a snapshot of the INBOX
        d.addCallbacks(self._opened, self._open_failed)
        return d

    def _opened(self, drop: Maildrop) -> None:
        if self.closing:
            return
        self._drop = drop
        self._state = TRANSACTION
        log.info(
            "pop3 login client={client} user={user} tls={tls} messages={count}",
            client=self.peer,
            user=self._address,
            tls=self.tls,
            count=len(drop.messages),
        )
        self.ok(f"Logged in, maildrop has {len(drop.messages)} messages ({drop.total_size} octets)")

    def _open_failed(self, failure: Failure) -> None:
        log.failure("cannot open the maildrop of {user}", failure, user=self._address)
        self._release()
        if failure.check(ValueError):  # an address the store refuses as a path: not temporary
            self.err("[SYS/PERM] Cannot open the maildrop")
        else:
            self.err("[SYS/TEMP] Cannot open the maildrop, try again later")

    # --- TRANSACTION --------------------------------------------------------------------------

    def _live(self) -> list[int]:
        """0-based indices of the messages not marked deleted."""
        return [i for i in range(len(self._drop.messages)) if i not in self._deleted]

    def _message_index(self, arg: bytes) -> int | None:
        """The 0-based index of message number ``arg``, or None after an -ERR."""
        if not arg.isdigit():
            self._error("Syntax: a message number is required")
            return None
        number = int(arg)
        if not 1 <= number <= len(self._drop.messages):
            self._error(f"No such message {number}")
            return None
        if number - 1 in self._deleted:
            self._error(f"Message {number} already deleted")
            return None
        return number - 1

    def _summary(self) -> str:
        live = self._live()
        octets = sum(self._drop.messages[i].size for i in live)
        return f"{len(live)} messages ({octets} octets)"

    def pop3_STAT(self, arg: bytes) -> None:
        if arg:
            self._error("Syntax: STAT")
            return
        live = self._live()
        self.ok(f"{len(live)} {sum(self._drop.messages[i].size for i in live)}")

    def pop3_LIST(self, arg: bytes) -> None:
        self._listing(arg, "size")

    def pop3_UIDL(self, arg: bytes) -> None:
        self._listing(arg, "uidl")

    def _listing(self, arg: bytes, attribute: str) -> None:
        messages = self._drop.messages
        if arg:
            index = self._message_index(arg)
            if index is not None:
                self.ok(f"{index + 1} {getattr(messages[index], attribute)}")
            return
        lines = [f"{i + 1} {getattr(messages[i], attribute)}" for i in self._live()]
        self.multiline(self._summary() if attribute == "size" else "Unique-ID listing", lines)

    def pop3_RETR(self, arg: bytes) -> Deferred | None:
        index = self._message_index(arg)
        if index is None:
            return None
        return self._send_message(index, None)

    def pop3_TOP(self, arg: bytes) -> Deferred | None:
        number, _, lines = arg.partition(b" ")
        lines = lines.strip(b" ")
        if not lines.isdigit():
            self._error("Syntax: TOP message lines")
            return None
        index = self._message_index(number)
        if index is None:
            return None
        return self._send_message(index, int(lines))

    def _send_message(self, index: int, top_lines: int | None) -> Deferred:
        message = self._drop.messages[index]
        d = threads.deferToThread(self._drop.open, message)

        def opened(fh) -> Deferred | None:
            if self.closing:
                fh.close()
                return None
            if top_lines is None:
                self.ok(f"{message.size} octets")
            else:
                self.ok("Top of message follows")
            sender = MessageSender(fh, top_lines, on_chunk=self.resetTimeout)
            return sender.send(self.transport).addCallbacks(sent, broken)

        def sent(_count: int) -> None:
            if top_lines is None:
                self._retrieved.add(index)

        def broken(failure: Failure) -> None:
            if not failure.check(SendAborted):
                # The response is half sent: the client cannot resynchronise, so hang up.
                log.failure("reading message {base} failed", failure, base=message.base)
                self.close_session()

        def gone(failure: Failure) -> None:
            failure.trap(MessageGone)
            self.err(f"Message {index + 1} was removed by another session")

        return d.addCallbacks(opened, gone)

    def pop3_DELE(self, arg: bytes) -> None:
        index = self._message_index(arg)
        if index is not None:
            self._deleted.add(index)
            self.ok(f"Message {index + 1} deleted")

    def pop3_RSET(self, arg: bytes) -> None:
        if arg:
            self._error("Syntax: RSET")
            return
        # Like Dovecot: RSET forgets the deletions and the "retrieved, mark as seen" notes.
        self._deleted.clear()
        self._retrieved.clear()
        self.ok(f"Maildrop has {self._summary()}")

    def pop3_NOOP(self, arg: bytes) -> None:
        if arg:
            self._error("Syntax: NOOP")
            return
        self.ok()

    # --- UPDATE -------------------------------------------------------------------------------

    def _update(self) -> Deferred | None:
        """QUIT in TRANSACTION: delete what DELE marked, mark retrieved mail seen, then close."""
        self._state = UPDATE
        drop = self._drop
        deleted = [drop.messages[i] for i in sorted(self._deleted)]
        seen = [drop.messages[i] for i in sorted(self._retrieved - self._deleted)]
        goodbye = f"{self.ctx.hostname} POP3 mailsuite signing off"
        if not deleted and not seen:
            self._release()
            self.close("+OK", goodbye)
            return None
        self._updating = True
        d = threads.deferToThread(drop.commit, deleted, seen)

        def committed(result) -> None:
            log.info(
                "pop3 update user={user} deleted={deleted} already_gone={gone} failed={failed}",
                user=self._address,
                deleted=result.deleted,
                gone=result.already_gone,
                failed=len(result.failed),
            )
            if result.seen_failed:
                log.warn("could not mark {n} messages seen", n=len(result.seen_failed))
            if result.failed:
                self.close("-ERR", "[SYS/TEMP] Some deleted messages not removed")
            else:
                self.close("+OK", f"{goodbye} ({len(deleted)} messages deleted)")

        def failed(failure: Failure) -> None:
            log.failure("pop3 update of {user} failed", failure, user=self._address)
            self.close("-ERR", "[SYS/TEMP] Some deleted messages not removed")

        def finished(_: object) -> None:
            self._updating = False
            self._release()

        return d.addCallbacks(committed, failed).addBoth(finished)


def POP3Factory(context: POP3Context, implicit_tls: bool) -> SessionFactory:
    """Sessions of one listener (see SessionFactory)."""
    return SessionFactory(POP3Server, context, implicit_tls)
