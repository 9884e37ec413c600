"""The socket side of the doctor: connect, read lines and replies, start TLS, ask HTTP.

Every step has a timeout, every failure becomes a ``ProbeError`` with a one-line reason, so the
checks that use this only decide what a reply means. TLS here does not verify the chain or the
name (``unverified_context``): a listener that completes a handshake passes, and the certificate
it presented is judged separately by the certificate checks.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from mailsuite.config import ListenAddress
from mailsuite.doctor.target import PROBE_TIMEOUT

MAX_LINE = 8192  # a longer line is not a protocol we speak
MAX_REPLY_LINES = 200  # a multi-line reply longer than this is a broken peer
MAX_BODY = 65536  # an HTTP body the doctor reads, at most
# One connection's whole dialog, at most (seconds): a peer that drips a byte now and then never
# trips the per-read timeout, so the connection has a budget of its own as well.
CONNECTION_BUDGET = 20.0
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


class ProbeError(Exception):
    """A probe step failed; str() says why in a few words ("connection refused", ...)."""


def connect_host(address: ListenAddress) -> str:
    """Where to reach a listener from this machine: a wildcard listen address is reached on
    127.0.0.1 (a dual-stack ``::`` socket accepts IPv4 too)."""
    return "127.0.0.1" if address.host in _WILDCARD_HOSTS else address.host


def unverified_context() -> ssl.SSLContext:
    """TLS that completes with any certificate: the listener checks test the handshake only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the peer"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc)


@dataclass
class TLSInfo:
    version: str  # "TLSv1.3"
    certificate: bytes | None  # the leaf the server presented (DER)


class LineClient:
    """A line-oriented client over one socket (plain, then maybe TLS); close() when done."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self.sock = sock
        self.host, self.port = host, port
        self._buffer = b""
        self.tls: TLSInfo | None = None
        self._deadline = time.monotonic() + CONNECTION_BUDGET

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = PROBE_TIMEOUT) -> LineClient:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ProbeError(_describe(exc)) from None
        sock.settimeout(timeout)
        return cls(sock, host, port)

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # --- bytes ----------------------------------------------------------------------------

    def send(self, line: str) -> None:
        try:
            self.sock.sendall(line.encode("utf-8") + b"\r\n")
        except OSError as exc:
            raise ProbeError(_describe(exc)) from None

    def _recv(self) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ProbeError(f"the peer is too slow: no dialog done in {CONNECTION_BUDGET:g} s")
        try:
            self.sock.settimeout(min(PROBE_TIMEOUT, left))
            data = self.sock.recv(16384)
        except OSError as exc:
            raise ProbeError(_describe(exc)) from None
        return data

    def readline(self) -> str:
        """One line without its line ending; ProbeError on EOF, timeout or an endless line."""
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ProbeError("an over-long line from the peer")
            data = self._recv()
            if not data:
                raise ProbeError("connection closed by the peer")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def read_rest(self, limit: int = MAX_BODY) -> bytes:
        """What the peer sends until it closes (at most ``limit`` bytes); a reset after some
        data ends it too (a server that closes with our request unread resets the link)."""
        data = self._buffer
        self._buffer = b""
        while len(data) < limit:
            try:
                chunk = self._recv()
            except ProbeError:
                if data:
                    break
                raise
            if not chunk:
                break
            data += chunk
        return data[:limit]

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> TLSInfo:
        """Hand the connection to TLS; what the peer sent before is discarded (RFC 3207 §4.2)."""
        self._buffer = b""
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        except (OSError, ValueError) as exc:
            raise ProbeError(_describe(exc)) from None
        self.tls = TLSInfo(self.sock.version() or "TLS", self.sock.getpeercert(binary_form=True))
        return self.tls

    # --- protocol helpers -----------------------------------------------------------------

    def smtp_reply(self) -> tuple[int, list[str]]:
        """One SMTP reply (RFC 5321 §4.2): its code and the text of each line."""
        lines: list[str] = []
        while len(lines) < MAX_REPLY_LINES:
            line = self.readline()
            code = line[:3]
            if not (code.isdigit() and len(line) >= 3 and line[3:4] in ("", " ", "-")):
                raise ProbeError(f"not an SMTP reply: {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(code), lines
        raise ProbeError("an endless SMTP reply")

    def smtp_command(self, line: str) -> tuple[int, list[str]]:
        self.send(line)
        return self.smtp_reply()

    def tagged(self, tag: str) -> str:
        """Lines up to the IMAP tagged response of ``tag``; returns that response."""
        for _ in range(MAX_REPLY_LINES):
            line = self.readline()
            if line.startswith(tag + " "):
                return line[len(tag) + 1 :]
        raise ProbeError(f"no tagged response to {tag}")


def smtp_text(code: int, lines: list[str]) -> str:
    """A reply as one short line for a report: '554 5.7.1 relay denied'."""
    return f"{code} {lines[0] if lines else ''}".strip()[:160]


def http_get(client: LineClient, host: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` over ``client`` (plain or TLS) with Host ``host``: (status, body)."""
    client.send(f"GET {path} HTTP/1.1")
    client.send(f"Host: {host}")
    client.send("User-Agent: mailsuite-doctor")
    client.send("Connection: close")
    client.send("")
    status_line = client.readline()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeError(f"not an HTTP response: {status_line[:80]!r}")
    length: int | None = None
    chunked = False
    for _ in range(MAX_REPLY_LINES):
        header = client.readline()
        if not header:
            break
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    else:
        raise ProbeError("endless HTTP headers")
    body = client.read_rest(min(length, MAX_BODY) if length is not None else MAX_BODY)
    if chunked:
        body = _dechunk(body)
    return int(parts[1]), body


def _dechunk(data: bytes) -> bytes:
    """A chunked body (RFC 9112 §7.1) as its payload; what does not parse is cut off."""
    out = b""
    while data:
        size_line, sep, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if not sep or size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out
