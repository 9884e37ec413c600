"""The POP3 client of the yardstick: one lock-step session on a raw socket (TLS or not) timed
phase by phase: USER/PASS, STAT, UIDL, LIST, then RETR of some messages. It ends with RSET and
QUIT, so neither server marks the retrieved messages seen (both do at QUIT otherwise) and every
round finds the maildrop as the last one left it."""

from __future__ import annotations

import time

from imap_load import RawSession

_END = b"\r\n.\r\n"


class POP3Error(RuntimeError):
    pass


class POP3Session(RawSession):
    error = POP3Error

    def __init__(self, port: int, tls: bool = True, timeout: float = 300.0) -> None:
        super().__init__(port, tls, timeout)
        self.greeting = self._status()

    def _status(self) -> bytes:
        line = self._line()
        if not line.startswith(b"+OK"):
            raise POP3Error(line[:200].decode("latin-1"))
        return line

    def simple(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self._status()

    def _more(self) -> int:
        """Read more; returns how far compaction moved the buffer (subtract it from offsets)."""
        before = self.pos
        self._fill()
        return before - self.pos

    def multi(self, line: bytes) -> tuple[int, int]:
        """A multi-line command: (payload octets, payload lines), dot-stuffing left in."""
        self.sock.sendall(line + b"\r\n")
        self._status()
        payload = self.pos  # stays put until the end, so compaction never drops the payload
        while len(self.buf) - payload < 3:
            payload -= self._more()
        if self.buf.startswith(b".\r\n", payload):
            self.pos = payload + 3
            return 0, 0
        scan = payload
        while (end := self.buf.find(_END, scan)) < 0:
            scan = max(payload, len(self.buf) - 4)
            shift = self._more()
            payload, scan = payload - shift, scan - shift
        size = end + 2 - payload
        lines = self.buf.count(b"\r\n", payload, end + 2)
        self.pos = end + len(_END)
        return size, lines


def run_pop3(
    port: int, user: str, password: str, retrieve: list[int], tls: bool = True, timeout=300.0
) -> dict:
    """One session; seconds per phase, and what each phase returned."""
    phases: dict[str, float] = {}
    out: dict = {}
    cpu = time.process_time()
    session = POP3Session(port, tls, timeout)
    try:
        started = time.perf_counter()
        session.simple(b"USER " + user.encode())
        session.simple(b"PASS " + password.encode())
        stat = session.simple(b"STAT").split()
        phases["login"] = time.perf_counter() - started
        out["messages"], out["octets"] = int(stat[1]), int(stat[2])
        for name in ("UIDL", "LIST"):
            started = time.perf_counter()
            _, lines = session.multi(name.encode())
            phases[name.lower()] = time.perf_counter() - started
            out[f"{name.lower()}_lines"] = lines
        started = time.perf_counter()
        retrieved = 0
        for n in retrieve:
            size, _ = session.multi(b"RETR %d" % n)
            retrieved += size
        phases["retr"] = time.perf_counter() - started
        out["retrieved"], out["retr_bytes"] = len(retrieve), retrieved
        session.simple(b"RSET")
        session.simple(b"QUIT")
    finally:
        session.close()
    out["phases"] = phases
    out["client_cpu"] = time.process_time() - cpu
    return out
