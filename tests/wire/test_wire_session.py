"""The session kernel's decisions, pinned one by one on a StringTransport and a fake clock (no
sockets needed: these are the kernel's own rules, the protocols' tests drive real ones)."""

from __future__ import annotations

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from mailsuite.wire.session import MAX_BUFFERED, LineSession, LineTooLong, SessionLimits


class Transport(StringTransport):
    """A StringTransport that also records STARTTLS and TCP_NODELAY."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_started = False
        self.no_delay = False

    def startTLS(self, options) -> None:
        self.tls_started = True

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


class Echo(LineSession):
    """Records what the kernel hands it; ``hold`` makes the next command asynchronous."""

    def __init__(self, clock: task.Clock) -> None:
        super().__init__(SessionLimits(max_line=10, max_bad_commands=3, idle_timeout=60.0))
        self.callLater = clock.callLater  # TimeoutMixin's timer
        self.lines: list[bytes] = []
        self.too_long: list[bytes] = []
        self.pending: Deferred | None = None
        self.hold = False
        self.raw_left = 0
        self.raw: list[bytes] = []
        self.timed_out = False

    def line_received(self, line: bytes):
        self.lines.append(line)
        if line == b"STARTTLS":
            self.start_tls(object())
        if line.startswith(b"RAW "):
            self.raw_left = int(line[4:])
        if self.hold:
            self.pending = Deferred()
            return self.pending
        return None

    @property
    def raw_mode(self) -> bool:
        return self.raw_left > 0

    def raw_received(self, data: bytes) -> int:
        take = min(self.raw_left, len(data))
        self.raw.append(data[:take])
        self.raw_left -= take
        return take

    def line_too_long(self, head: bytes) -> None:
        self.too_long.append(head)

    def internal_error(self) -> None:
        self.send(b"internal error\r\n")

    def timeoutConnection(self) -> None:
        self.timed_out = True


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def session(clock) -> tuple[Echo, Transport]:
    echo = Echo(clock)
    transport = Transport()
    echo.makeConnection(transport)
    return echo, transport


def test_lines_end_at_lf_with_or_without_cr(session):
    echo, _ = session
    echo.dataReceived(b"one\r\ntwo\nthr")
    echo.dataReceived(b"ee\r\n")
    assert echo.lines == [b"one", b"two", b"three"]


def test_the_limit_counts_the_line_without_its_ending(session):
    echo, _ = session
    echo.dataReceived(b"0123456789\r\n0123456789\n")  # exactly max_line: both fine
    echo.dataReceived(b"0123456789A\r\nnext\r\n")  # one more: refused once, then go on
    assert echo.lines == [b"0123456789", b"0123456789", b"next"]
    assert echo.too_long == [b"0123456789A"]


def test_an_overlong_line_without_its_end_is_answered_once_and_skipped_to_its_end(session):
    echo, _ = session
    echo.dataReceived(b"X" * 12)  # over max_line + 1 before any LF
    echo.dataReceived(b"still the same line")
    echo.dataReceived(b" QUIT\r\nNOOP\r\n")  # "QUIT" is part of the overlong line
    assert echo.too_long == [b"X" * 12]
    assert echo.lines == [b"NOOP"]


def test_an_overlong_continuation_line_goes_to_the_command_waiting_for_it(session):
    echo, _ = session
    waiter = echo.next_line()
    failures: list = []
    waiter.addErrback(failures.append)
    echo.dataReceived(b"Y" * 20 + b"\r\n")
    assert failures and failures[0].check(LineTooLong)
    assert echo.too_long == []  # the waiting command answers it, nobody else
    assert echo.lines == []


def test_continuation_lines_reach_a_running_command_while_the_pipeline_waits(session):
    echo, _ = session
    echo.hold = True
    echo.dataReceived(b"AUTH\r\n")
    answers: list[bytes] = []
    echo.next_line().addCallback(answers.append)
    echo.dataReceived(b"secret\r\nNOOP\r\n")
    assert answers == [b"secret"]
    assert echo.lines == [b"AUTH"]  # NOOP waits for AUTH to finish
    echo.hold = False
    echo.pending.callback(None)
    assert echo.lines == [b"AUTH", b"NOOP"]


def test_an_asynchronous_command_holds_the_pipeline_in_order(session):
    echo, transport = session
    echo.hold = True
    echo.dataReceived(b"A\r\nB\r\nC\r\n")
    assert echo.lines == [b"A"]
    first = echo.pending
    first.callback(None)
    assert echo.lines == [b"A", b"B"]
    echo.hold = False
    echo.pending.callback(None)
    assert echo.lines == [b"A", b"B", b"C"]


def test_reading_pauses_while_a_long_pipeline_waits_and_resumes_after(session):
    echo, transport = session
    echo.hold = True
    echo.dataReceived(b"A\r\n")
    echo.dataReceived(b"B\r\n" * (MAX_BUFFERED // 3 + 1))
    assert transport.producerState == "paused"
    echo.hold = False
    echo.pending.callback(None)
    assert transport.producerState == "producing"
    assert len(echo.lines) == MAX_BUFFERED // 3 + 2


def test_a_failed_step_is_answered_as_an_internal_error_and_the_session_goes_on(session):
    echo, transport = session
    echo.hold = True
    echo.dataReceived(b"A\r\nB\r\n")
    echo.hold = False
    echo.pending.errback(RuntimeError("disk on fire"))
    assert transport.value() == b"internal error\r\n"
    assert echo.lines == [b"A", b"B"]


def test_starttls_drops_what_was_pipelined_in_plaintext(session):
    echo, transport = session
    echo.dataReceived(b"STARTTLS\r\nMAIL FROM:<evil>\r\n")
    assert transport.tls_started and echo.tls
    assert echo.lines == [b"STARTTLS"]
    echo.dataReceived(b"EHLO after\r\n")
    assert echo.lines == [b"STARTTLS", b"EHLO after"]


def test_raw_mode_takes_its_bytes_and_lines_follow(session):
    echo, _ = session
    echo.dataReceived(b"RAW 5\r\nab")
    echo.dataReceived(b"c\r\nNOOP\r\n")  # "abc\r\n" is the raw part
    assert b"".join(echo.raw) == b"abc\r\n"
    assert echo.lines == [b"RAW 5", b"NOOP"]


def test_bad_commands_are_counted_up_to_the_limit(session):
    echo, _ = session
    assert [echo.note_bad_command() for _ in range(3)] == [False, False, True]


def test_tcp_no_delay_is_set_on_every_session(session):
    _, transport = session
    assert transport.no_delay


def test_the_idle_timer_restarts_when_a_long_step_ends(session, clock):
    echo, _ = session
    echo.hold = True
    echo.dataReceived(b"SLOW\r\n")
    clock.advance(50)
    echo.pending.callback(None)  # 50 s of server work: not the client's idleness
    clock.advance(50)
    assert not echo.timed_out
    clock.advance(11)
    assert echo.timed_out


def test_nothing_is_sent_after_the_session_closed(session):
    echo, transport = session
    echo.send(b"one\r\n")
    echo.close_session()
    echo.send(b"two\r\n")
    assert transport.value() == b"one\r\n"
    assert echo.closing
