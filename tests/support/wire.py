"""The one raw client for SMTP, POP3 and IMAP: line-level, over plain TCP, STARTTLS or implicit
TLS, for what smtplib, poplib and imaplib refuse to send or hide (pipelined commands, bad input,
plaintext injected after STARTTLS, exact reply bytes). The transcripts in tests/scenarios run on
it, and so do the Python tests that need the wire itself.

It sends exactly the bytes it is given and hands back the server's lines as they come (with
their line endings); the protocol helpers below only group lines into one reply.
"""

from __future__ import annotations

import socket
import ssl

SERVER_NAME = "mx.test.example"  # the test server's hostname: its certificate is for this name
IMPLICIT_TLS = frozenset({"submissions", "pop3s", "imaps"})  # roles that speak TLS from the start


class RawClient:
    """A connection to 127.0.0.1:``port``; with ``tls``, TLS is started at once (implicit TLS)."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, timeout: float = 10) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=SERVER_NAME)
        self.sock = sock
        self.file = sock.makefile("rb")

    @classmethod
    def connect(cls, suite, role: str) -> RawClient:
        """A client of ``suite``'s ``role`` listener, in TLS at once for the implicit-TLS roles."""
        tls = suite.tls_context() if role in IMPLICIT_TLS else None
        return cls(suite.port(role), tls)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The server's next line with its line ending; b"" once the server has closed."""
        return self.file.readline()

    def starttls(self, context: ssl.SSLContext) -> None:
        """The client's side of STARTTLS/STLS, once the server said go ahead: the handshake on
        this connection (anything the server sent in plaintext after that reply is lost)."""
        self.file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=SERVER_NAME)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        """Close the connection (the socket's reader holds it open until it is closed too)."""
        for closable in (self.file, self.sock):
            try:
                closable.close()
            except (OSError, ssl.SSLError):
                pass

    # --- SMTP ---------------------------------------------------------------------------------

    def reply(self) -> tuple[int, list[bytes]]:
        """One SMTP reply: its code and its lines (without line endings)."""
        lines = []
        while True:
            line = self.line()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def replies(self, count: int) -> list[int]:
        """The codes of the next ``count`` SMTP replies."""
        return [self.reply()[0] for _ in range(count)]

    # --- POP3 ---------------------------------------------------------------------------------

    def multiline(self) -> list[bytes]:
        """The lines of a POP3 multi-line body up to (not including) the "." line, still
        dot-stuffed."""
        lines = []
        while (line := self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line)
        return lines

    # --- IMAP ---------------------------------------------------------------------------------

    def until(self, tag: bytes) -> list[bytes]:
        """The lines up to and including the response tagged ``tag``."""
        lines = []
        while True:
            line = self.line()
            assert line, lines
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def command(self, line: bytes) -> list[bytes]:
        """Send one IMAP command (its tag is its first word) and read up to its tagged reply."""
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until(tag)
