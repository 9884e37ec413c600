"""The IMAP client of the yardstick: a raw socket (TLS or not), lock-step, that reads in large
chunks and parses no more than it must to find the end of a response (line ends, literal
lengths, the tagged status), so the server, not the client, is what gets timed.

Each workload opens its own session (connect, LOGIN, SELECT INBOX untimed unless the workload is
the SELECT) and returns a dict with ``elapsed`` (seconds of the timed part), ``responses``
(untagged responses), ``bytes`` (response octets), ``literal_bytes`` and ``client_cpu``.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

CHUNK = 1 << 20
COMPACT = 4 << 20
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_FLAGS = re.compile(rb"^\* (\d+) FETCH \(.*FLAGS \(([^)]*)\)")


class IMAPError(RuntimeError):
    pass


def client_context() -> ssl.SSLContext:
    """No verification: the peers use a throwaway self-signed certificate on 127.0.0.1."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_CONTEXT = client_context()


@dataclass
class Response:
    status: bytes  # the tagged line, e.g. b"a1 OK done"
    responses: int = 0  # untagged responses ("* ...")
    bytes: int = 0
    literal_bytes: int = 0
    lines: list[bytes] = field(default_factory=list)  # first lines of untagged responses (keep)

    @property
    def ok(self) -> bool:
        return self.status.split(b" ", 2)[1:2] == [b"OK"]


class RawSession:
    """A socket (TLS or not) read in large chunks into one buffer; ``timeout`` bounds each read.

    The base of the IMAP and the POP3 client: both parse lines out of ``buf`` from ``pos``.
    """

    error: type[Exception] = RuntimeError

    def __init__(self, port: int, tls: bool = True, timeout: float = 300.0) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = _CONTEXT.wrap_socket(sock) if tls else sock
        self.buf = bytearray()
        self.pos = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        if self.pos > COMPACT:
            del self.buf[: self.pos]
            self.pos = 0
        data = self.sock.recv(CHUNK)
        if not data:
            raise self.error("connection closed by the server")
        self.buf += data

    def _line(self) -> bytes:
        while (eol := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = bytes(self.buf[self.pos : eol])
        self.pos = eol + 2
        return line


class Session(RawSession):
    """One IMAP connection."""

    error = IMAPError

    def __init__(self, port: int, tls: bool = True, timeout: float = 300.0) -> None:
        super().__init__(port, tls, timeout)
        self.counter = 0
        self.greeting = self._line()

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\r\n")

    def command(self, line: bytes, keep: bool = False) -> Response:
        """Send ``<tag> line`` and read up to the tagged response; raise unless it is OK."""
        response = self.request(line, keep)
        if not response.ok:
            raise IMAPError(f"{line[:60]!r}: {response.status[:200]!r}")
        return response

    def request(self, line: bytes, keep: bool = False) -> Response:
        self.counter += 1
        tag = b"T%05d" % self.counter
        self.send(tag + b" " + line)
        return self.read_response(tag, keep)

    def read_response(self, tag: bytes, keep: bool = False) -> Response:
        tagged = tag + b" "
        response = Response(b"")
        start = True  # at the start of a response (not after a literal)
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n", self.pos)
            if eol < 0:
                self._fill()
                buf = self.buf
                continue
            begin = self.pos
            if start:
                if buf.startswith(tagged, begin):
                    response.status = bytes(buf[begin:eol])
                    response.bytes += eol + 2 - begin
                    self.pos = eol + 2
                    return response
                if buf.startswith(b"* ", begin):
                    response.responses += 1
                    if keep:
                        response.lines.append(bytes(buf[begin:eol]))
            literal = 0
            if eol > begin and buf[eol - 1] == 0x7D:  # "}"
                match = _LITERAL.search(buf, max(begin, eol - 24), eol)
                if match:
                    literal = int(match.group(1))
            end = eol + 2 + literal
            while len(self.buf) < end:
                before = self.pos  # == begin; compaction in _fill moves the buffer by it
                self._fill()
                shift = before - self.pos
                begin, end = begin - shift, end - shift
            buf = self.buf
            response.bytes += end - begin
            response.literal_bytes += literal
            self.pos = end
            start = literal == 0

    def login(self, user: str, password: str) -> None:
        self.command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    def select(self, mailbox: bytes = b"INBOX") -> int:
        """SELECT; returns EXISTS."""
        response = self.command(b"SELECT " + mailbox, keep=True)
        for line in response.lines:
            if line.endswith(b" EXISTS"):
                return int(line.split()[1])
        raise IMAPError("SELECT without EXISTS")

    def logout(self) -> None:
        try:
            self.request(b"LOGOUT")
        except (OSError, IMAPError):
            pass


@dataclass(frozen=True)
class Target:
    port: int
    user: str
    password: str
    tls: bool = True
    timeout: float = 300.0

    def session(self) -> Session:
        return Session(self.port, self.tls, self.timeout)

    def selected(self) -> tuple[Session, int]:
        session = self.session()
        try:
            session.login(self.user, self.password)
            exists = session.select()
        except BaseException:
            session.close()
            raise
        return session, exists


def _result(response: Response, elapsed: float, cpu: float, **extra) -> dict:
    out = {
        "elapsed": elapsed,
        "responses": response.responses,
        "bytes": response.bytes,
        "literal_bytes": response.literal_bytes,
        "client_cpu": cpu,
    }
    out.update(extra)
    return out


def login_select(target: Target) -> dict:
    """Connect (and TLS) untimed, then time LOGIN + SELECT INBOX."""
    started = time.perf_counter()
    with target.session() as session:
        connected = time.perf_counter()
        cpu = time.process_time()
        session.login(target.user, target.password)
        response = session.command(b"SELECT INBOX", keep=True)
        elapsed = time.perf_counter() - connected
        cpu = time.process_time() - cpu
        session.logout()
    exists = next(
        (int(line.split()[1]) for line in response.lines if line.endswith(b" EXISTS")), -1
    )
    return _result(response, elapsed, cpu, exists=exists, connect=connected - started)


def timed_command(target: Target, line: bytes, keep: bool = False) -> tuple[dict, Response]:
    """LOGIN + SELECT untimed, then time one command."""
    session, exists = target.selected()
    with session:
        cpu = time.process_time()
        started = time.perf_counter()
        response = session.command(line, keep)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        session.logout()
    return _result(response, elapsed, cpu, exists=exists), response


def fetch_envelopes(target: Target) -> dict:
    return timed_command(target, b"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")[0]


def fetch_headers(target: Target) -> dict:
    line = b"UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (From Subject Date)])"
    return timed_command(target, line)[0]


def sequence_set(numbers: list[int]) -> bytes:
    """[1, 2, 3, 7] -> b"1:3,7"."""
    parts: list[str] = []
    run_start = previous = None
    for n in sorted(numbers):
        if previous is not None and n == previous + 1:
            previous = n
            continue
        if run_start is not None:
            parts.append(f"{run_start}:{previous}" if previous != run_start else str(run_start))
        run_start = previous = n
    if run_start is not None:
        parts.append(f"{run_start}:{previous}" if previous != run_start else str(run_start))
    return ",".join(parts).encode()


def fetch_bodies(target: Target, numbers: list[int]) -> dict:
    """Whole messages, BODY.PEEK[] so that no round changes \\Seen for the next one."""
    return timed_command(target, b"FETCH " + sequence_set(numbers) + b" BODY.PEEK[]")[0]


def search_subject(target: Target, word: str) -> dict:
    result, response = timed_command(target, b'UID SEARCH SUBJECT "%s"' % word.encode(), True)
    hits = sum(len(line.split()) - 2 for line in response.lines if line.startswith(b"* SEARCH"))
    result["matches"] = hits
    return result


def store_seen(target: Target) -> dict:
    """Time ``STORE 1:* +FLAGS (\\Seen)``; before it (untimed) note which messages were unseen,
    after it (untimed) take \\Seen off them again, so every round does the same work."""
    session, exists = target.selected()
    with session:
        before = session.command(b"FETCH 1:* (FLAGS)", keep=True)
        unseen = []
        for line in before.lines:
            match = _FLAGS.match(line)
            if match and b"\\Seen" not in match.group(2):
                unseen.append(int(match.group(1)))
        cpu = time.process_time()
        started = time.perf_counter()
        response = session.command(b"STORE 1:* +FLAGS (\\Seen)")
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if unseen:
            session.command(b"STORE " + sequence_set(unseen) + b" -FLAGS.SILENT (\\Seen)")
        session.logout()
    return _result(response, elapsed, cpu, exists=exists, unseen=len(unseen))


class IdleCrowd:
    """``count`` sessions logged in, INBOX selected, in IDLE; opened by a few threads, each
    bounded by the session timeout; closed (DONE, LOGOUT) on exit."""

    def __init__(self, target: Target, count: int, workers: int = 8) -> None:
        self.target, self.count, self.workers = target, count, workers
        self.sessions: list[Session] = []
        self.errors: list[str] = []
        self.opened_in = 0.0

    def _open(self, _: int) -> Session | None:
        try:
            session, _exists = self.target.selected()
        except (OSError, IMAPError) as exc:
            self.errors.append(str(exc)[:200])
            return None
        try:
            session.counter += 1
            session.send(b"I%05d IDLE" % session.counter)
            line = session._line()
            if not line.startswith(b"+"):
                raise IMAPError(f"IDLE refused: {line[:100]!r}")
        except (OSError, IMAPError) as exc:
            self.errors.append(str(exc)[:200])
            session.close()
            return None
        return session

    def __enter__(self) -> IdleCrowd:
        started = time.perf_counter()
        with ThreadPoolExecutor(self.workers) as pool:
            self.sessions = [s for s in pool.map(self._open, range(self.count)) if s is not None]
        self.opened_in = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        for session in self.sessions:
            try:
                session.send(b"DONE\r\nZ LOGOUT")
            except OSError:
                pass
        for session in self.sessions:
            session.close()
        self.sessions = []


def idle_crowd(target: Target, count: int, while_idle: Callable[[], None] | None = None) -> dict:
    """Open ``count`` idling sessions, call ``while_idle`` (say, to sample memory), then time a
    fresh LOGIN + SELECT while they idle."""
    with IdleCrowd(target, count) as crowd:
        if while_idle is not None:
            while_idle()
        result = login_select(target)
        result.update(
            idling=len(crowd.sessions), idle_errors=crowd.errors[:3], opened_in=crowd.opened_in
        )
    return result
