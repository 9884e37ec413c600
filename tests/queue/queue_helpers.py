"""Test peers for outbound delivery, all on 127.0.0.1 and run by the shared reactor thread:

- ``FakeZone``: an authoritative DNS server (twisted.names, UDP and TCP on one port) serving
  MX/A records, null MX, NXDOMAIN and SERVFAIL from a dict the test fills in;
- ``SMTPSink``: a scriptable receiving SMTP server that records what it accepted;
- ``MailInstance``: a whole mailsuite with its own data directory and configuration.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import PASSWORD, RunningSuite
from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.names import common, dns, server


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something true; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- DNS ------------------------------------------------------------------------------------------


class _ZoneResolver(common.ResolverBase):
    def __init__(self, zone: FakeZone) -> None:
        super().__init__()
        self.zone = zone

    def _lookup(self, name, cls, type, timeout):  # noqa: A002 - twisted's signature
        key = name.decode().lower().rstrip(".")
        self.zone.queries.append((key, dns.QUERY_TYPES.get(type, type)))
        if key in self.zone.servfail:
            return defer.fail(RuntimeError(f"SERVFAIL for {key}"))
        if key not in self.zone.records:
            return defer.fail(dns.AuthoritativeDomainError(name))
        answers = [
            dns.RRHeader(name, record.TYPE, dns.IN, 60, record, auth=True)
            for record in self.zone.records[key]
            if record.TYPE == type
        ]
        return defer.succeed((answers, [], []))


class _TruncatingDatagramProtocol(dns.DNSDatagramProtocol):
    """Classic DNS over UDP: answers over 512 bytes are truncated, so resolvers retry over TCP."""

    def writeMessage(self, message, address):
        message.maxSize = 512
        super().writeMessage(message, address)


class FakeZone:
    """Records by lower-case name; a name absent from ``records`` is NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[str, list] = {}
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._ports: list = []

    def add(self, name: str, *records) -> None:
        self.records.setdefault(name.lower(), []).extend(records)

    def mx(self, domain: str, *hosts: tuple[int, str]) -> None:
        self.add(domain, *(dns.Record_MX(pref, host.encode()) for pref, host in hosts))

    def a(self, host: str, *addresses: str) -> None:
        self.add(host, *(dns.Record_A(address) for address in addresses))

    def null_mx(self, domain: str) -> None:
        self.add(domain, dns.Record_MX(0, b""))

    def start(self, reactor) -> None:
        factory = server.DNSServerFactory(authorities=[_ZoneResolver(self)])
        for _ in range(20):
            udp = reactor.listenUDP(0, _TruncatingDatagramProtocol(factory), interface="127.0.0.1")
            port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(port, factory, interface="127.0.0.1")
            except Exception:
                udp.stopListening()
                continue
            self.port, self._ports = port, [udp, tcp]
            return
        raise RuntimeError("no free port for the fake DNS server")

    def stop(self):
        return defer.gatherResults([p.stopListening() for p in self._ports])


# --- SMTP sink ----------------------------------------------------------------------------------


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


# --- mailsuite instances --------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def to_toml(settings: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def instance_settings(hostname: str, dns_port: int, mx_port: int = 25) -> dict[str, dict[str, Any]]:
    """Fast retries, short timeouts, DNS from the fake zone; only the SMTP listeners."""
    return {
        "server": {"hostname": hostname},
        "smtp": {"listen": ["127.0.0.1:0"]},
        "submission": {"listen": ["127.0.0.1:0"]},
        "submissions": {"listen": []},
        "imap": {"listen": []},
        "imaps": {"listen": []},
        "pop3": {"listen": []},
        "pop3s": {"listen": []},
        "limits": {"idle_timeout": 30},
        "auth": {"failure_delay": 0.05, "max_delay": 0.2},
        "queue": {"retry_schedule": [0.2], "lifetime": 60, "delay_warning": 0},
        "client": {
            "mx_port": mx_port,
            "connect_timeout": 2,
            "greeting_timeout": 5,
            "command_timeout": 5,
            "data_init_timeout": 5,
            "data_block_timeout": 5,
            "data_end_timeout": 5,
        },
        "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": 2},
    }


def merge(settings: dict[str, dict[str, Any]], overrides: dict[str, Any]) -> dict:
    """``overrides`` as {"section.key": value} on top of ``settings``."""
    merged = {section: dict(values) for section, values in settings.items()}
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        merged.setdefault(section, {})[key] = value
    return merged


class MailInstance(RunningSuite):
    """A started server like conftest's suite, from settings of its own (for several at once)."""

    def __init__(self, reactor_thread, directory: Path, settings: dict) -> None:
        from mailsuite.config import load_config

        directory.mkdir(parents=True, exist_ok=True)
        config_file = directory / "mailsuite.toml"
        config_file.write_text(to_toml(settings))
        self.config_file = config_file
        self.config = load_config(config_file, directory / "data")
        self.reactor = self.reactor_thread = reactor_thread
        self.service = None
        self.start()

    def start(self) -> None:
        from mailsuite.service import make_service

        def start():
            service = make_service(self.config)
            service.privilegedStartService()
            service.startService()
            return service

        self.service = self.reactor_thread.call(start)

    def stop(self) -> None:
        if self.service is not None:
            service, self.service = self.service, None
            self.reactor_thread.call(service.stopService)

    def submit(self, sender: str, recipients: list[str], body: bytes, user: str | None = None):
        """Send through submission with STARTTLS + AUTH as ``user`` (default: the sender)."""
        context = ssl.create_default_context(cafile=str(self.cert_path))
        with smtplib.SMTP("127.0.0.1", self.port("submission"), "client.test", timeout=10) as s:
            s.starttls(context=context)
            s.login(user or sender, PASSWORD)
            return s.sendmail(sender, recipients, body)

    def queue_ids(self) -> list[str]:
        return self.service.queue.list_ids()

    def envelope(self, queue_id: str) -> dict:
        return self.service.queue.load(queue_id)


def tls_server(directory: Path, hostname: str = "127.0.0.1") -> tuple[Any, Path]:
    """Server TLS options with a fresh self-signed certificate for ``hostname``, and its path."""
    from mailsuite.tls import generate_self_signed, server_context_factory

    cert, key = directory / "cert.pem", directory / "key.pem"
    generate_self_signed(cert, key, hostname)
    return server_context_factory(cert, key), cert


def parse_report(raw: bytes):
    """(report, [human, status, headers] parts, per-recipient status blocks) of a DSN."""
    import email
    from email import policy

    report = email.message_from_bytes(raw, policy=policy.default)
    parts = list(report.iter_parts())
    blocks = parts[1].get_payload()
    return report, parts, blocks[1:]
