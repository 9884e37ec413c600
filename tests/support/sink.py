"""A sink: a scriptable remote SMTP server on 127.0.0.1 that records what it received (the
transactions it accepted, every command line by connection), run in the shared reactor thread
(the ``start_sink`` fixture of support.fixtures). ``SinkBehaviour`` scripts its greeting,
extensions, STARTTLS (working, broken, or with injected plaintext), AUTH and its replies."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.protocol import Factory, Protocol


@dataclass
class Transaction:
    helo: str
    sender: str
    params: list[str]
    recipients: list[str]
    data: bytes
    tls: bool
    auth: str | None
    connection: int


@dataclass
class SinkBehaviour:
    hostname: str = "sink.test"
    greetings: list[str] = field(default_factory=list)  # one per connection, then "220 ..."
    ehlo: bool = True
    extensions: list[str] = field(
        default_factory=lambda: ["PIPELINING", "SIZE 10000000", "8BITMIME", "ENHANCEDSTATUSCODES"]
    )
    tls_options: Any = None  # offers STARTTLS when set
    broken_tls: bool = False  # offers STARTTLS, then answers the handshake with garbage
    inject_after_starttls: str = ""  # a plaintext line sent right after the 220 (an attack)
    users: dict[str, str] = field(default_factory=dict)  # AUTH, offered after TLS only
    auth_mechanisms: str = "PLAIN LOGIN"
    mail_replies: list[str] = field(default_factory=list)  # consumed one per MAIL
    rcpt_replies: dict[str, Any] = field(default_factory=dict)  # address -> reply or list
    data_replies: list[str] = field(default_factory=list)  # consumed one per final dot
    hold_data: bool = False  # never answer the final dot (the transaction dies with the link)
    max_recipients: int = 0  # 452 4.5.3 beyond this many per transaction


class _SinkProtocol(Protocol):
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink
        self.b = sink.behaviour
        self.buf = bytearray()
        self.data: bytearray | None = None
        self.helo = ""
        self.tls = False
        self.auth: str | None = None
        self.auth_step: Callable[[str], None] | None = None
        self.sender: str | None = None
        self.params: list[str] = []
        self.rcpts: list[str] = []

    def connectionMade(self) -> None:
        self.sink.connections += 1
        self.in_data = False
        self.index = self.sink.connections
        greeting = self.b.greetings.pop(0) if self.b.greetings else f"220 {self.b.hostname} ESMTP"
        self.send(greeting)

    def send(self, *lines: str) -> None:
        self.transport.write(b"".join(line.encode() + b"\r\n" for line in lines))

    def dataReceived(self, data: bytes) -> None:
        if getattr(self, "garbage_next", False):  # the client's TLS handshake: answer nonsense
            self.garbage_next = False
            self.transport.write(b"this is not TLS at all\r\n")
            return
        self.buf += data
        commands = []
        while True:
            newline = self.buf.find(b"\r\n")
            if newline < 0:
                break
            line = bytes(self.buf[:newline])
            del self.buf[: newline + 2]
            if self.data is not None:
                if line == b".":
                    self.end_of_data()
                else:
                    self.data += (line[1:] if line.startswith(b".") else line) + b"\r\n"
                continue
            text = line.decode("utf-8", "replace")
            commands.append(text)
            self.command(text)
        if commands:
            self.sink.batches.append(commands)
            self.sink.commands.setdefault(self.index, []).extend(commands)

    def command(self, text: str) -> None:
        if self.auth_step is not None:
            step, self.auth_step = self.auth_step, None
            step(text)
            return
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            if not self.b.ehlo:
                self.send("502 5.5.1 EHLO not implemented")
                return
            self.helo = arg
            extensions = list(self.b.extensions)
            if (self.b.tls_options is not None or self.b.broken_tls) and not self.tls:
                extensions.append("STARTTLS")
            if self.b.users and self.tls:
                extensions.append(f"AUTH {self.b.auth_mechanisms}")
            lines = [self.b.hostname, *extensions]
            self.send(*(f"250{'-' if i < len(lines) - 1 else ' '}{x}" for i, x in enumerate(lines)))
        elif verb == "HELO":
            self.helo = arg
            self.send(f"250 {self.b.hostname}")
        elif verb == "STARTTLS" and self.b.broken_tls:
            self.send("220 2.0.0 Ready to start TLS")
            self.garbage_next = True
        elif verb == "STARTTLS":
            self.send("220 2.0.0 Ready to start TLS", *filter(None, [self.b.inject_after_starttls]))
            self.buf.clear()
            self.transport.startTLS(self.b.tls_options)
            self.tls, self.helo = True, ""
        elif verb == "AUTH":
            self.start_auth(arg)
        elif verb == "MAIL":
            reply = self.b.mail_replies.pop(0) if self.b.mail_replies else "250 2.1.0 Ok"
            if reply.startswith("2"):
                address, _, params = arg[5:].partition(">")
                self.sender, self.params, self.rcpts = address.lstrip("<"), params.split(), []
            self.send(reply)
        elif verb == "RCPT":
            address = arg[3:].strip().strip("<>")
            reply = self.b.rcpt_replies.get(address, "250 2.1.5 Ok")
            if isinstance(reply, list):
                reply = reply.pop(0) if reply else "250 2.1.5 Ok"
            if self.sender is None:
                reply = "503 5.5.1 need MAIL"
            elif self.b.max_recipients and len(self.rcpts) >= self.b.max_recipients:
                reply = "452 4.5.3 Too many recipients"
            if reply.startswith("2"):
                self.rcpts.append(address)
            self.send(reply)
        elif verb == "DATA":
            if self.sender is None or not self.rcpts:
                self.send("554 5.5.1 no valid recipients")
            else:
                self.data = bytearray()
                self.enter_data(True)
                self.send("354 End data with <CR><LF>.<CR><LF>")
        elif verb == "RSET":
            self.sender, self.rcpts = None, []
            self.send("250 2.0.0 Ok")
        elif verb == "NOOP":
            self.send("250 2.0.0 Ok")
        elif verb == "QUIT":
            self.send("221 2.0.0 Bye")
            self.transport.loseConnection()
        else:
            self.send("502 5.5.2 unknown command")

    def start_auth(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        if not (self.tls and self.b.users):
            self.send("503 5.5.1 AUTH not available")
        elif mechanism.upper() == "PLAIN":
            _, user, password = base64.b64decode(initial).decode().split("\0")
            self.check_login(user, password)
        elif mechanism.upper() == "LOGIN":
            self.send("334 VXNlcm5hbWU6")

            def got_user(line: str) -> None:
                user = base64.b64decode(line).decode()
                self.send("334 UGFzc3dvcmQ6")
                self.auth_step = lambda pw: self.check_login(user, base64.b64decode(pw).decode())

            self.auth_step = got_user
        else:
            self.send("504 5.5.4 unknown mechanism")

    def check_login(self, user: str, password: str) -> None:
        if self.b.users.get(user) == password:
            self.auth = user
            self.send("235 2.7.0 Authentication successful")
        else:
            self.send("535 5.7.8 Authentication failed")

    def enter_data(self, entering: bool) -> None:
        """Counts transactions between DATA and its final reply, to check connection limits."""
        if entering != self.in_data:
            self.in_data = entering
            self.sink.in_data += 1 if entering else -1
            self.sink.max_in_data = max(self.sink.max_in_data, self.sink.in_data)

    def connectionLost(self, reason=None) -> None:
        self.enter_data(False)
        if self in self.sink.held:
            self.sink.held.remove(self)

    def end_of_data(self) -> None:
        data, self.data = bytes(self.data), None
        if self.b.hold_data:
            self.held_data = data
            self.sink.held.append(self)
            return
        self.enter_data(False)
        reply = self.b.data_replies.pop(0) if self.b.data_replies else "250 2.0.0 Ok: queued"
        if reply.startswith("2"):
            self.sink.transactions.append(
                Transaction(
                    self.helo,
                    self.sender,
                    self.params,
                    list(self.rcpts),
                    data,
                    self.tls,
                    self.auth,
                    self.index,
                )
            )
        self.sender, self.rcpts = None, []
        self.send(reply)

    def release(self) -> None:
        """Answer a held final dot (accepting the message); the sink keeps holding others."""
        self.sink.held.remove(self)
        hold, self.b.hold_data = self.b.hold_data, False
        self.data = bytearray(self.held_data)
        self.end_of_data()
        self.b.hold_data = hold


class SMTPSink(Factory):
    def __init__(self, behaviour: SinkBehaviour | None = None) -> None:
        self.behaviour = behaviour or SinkBehaviour()
        self.transactions: list[Transaction] = []
        self.batches: list[list[str]] = []
        self.commands: dict[int, list[str]] = {}  # by connection number, from 1
        self.held: list[_SinkProtocol] = []
        self.connections = 0
        self.in_data = 0
        self.max_in_data = 0
        self.port = 0
        self._listening = None

    def buildProtocol(self, addr) -> _SinkProtocol:
        return _SinkProtocol(self)

    def start(self, reactor, port: int = 0) -> None:
        self._listening = reactor.listenTCP(port, self, interface="127.0.0.1")
        self.port = self._listening.getHost().port

    def stop(self):
        for protocol in list(self.held):
            protocol.transport.abortConnection()
        return self._listening.stopListening()

    def recipients(self) -> list[str]:
        return [r for t in self.transactions for r in t.recipients]


def tls_server(directory: Path, hostname: str = "127.0.0.1") -> tuple[Any, Path]:
    """Server TLS options with a fresh self-signed certificate for ``hostname``, and its path."""
    from mailsuite.runtime.tls import generate_self_signed, server_context_factory

    cert, key = directory / "cert.pem", directory / "key.pem"
    generate_self_signed(cert, key, hostname)
    return server_context_factory(cert, key), cert
