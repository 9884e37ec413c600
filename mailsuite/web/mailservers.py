"""The mail servers a client is told about, in the order it should prefer them.

Autoconfig and autodiscover describe the same listeners, so the list is made here, from the
configuration: ``public_hostname`` and each role's public port (a disabled role, whose public
port is None, is left out). Implicit TLS comes before STARTTLS (RFC 8314 prefers it), IMAP
before POP3 (a client that takes the first incoming server gets folders), and only the
submission roles are offered for sending (port 25 is for other servers, not for clients).

A listener configured on port 0 (tests; the kernel picks the port) has no port to tell until
it is bound: ``listening_port(role)``, when the composition root gives one, supplies the bound
port at the time of the request; without it such a role is left out, since "port 0" would
only send a client nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailsuite.config import Config

# (protocol, role, implicit TLS) in the order of preference.
PREFERENCE = (
    ("imap", "imaps", True),
    ("imap", "imap", False),
    ("pop3", "pop3s", True),
    ("pop3", "pop3", False),
    ("smtp", "submissions", True),
    ("smtp", "submission", False),
)

ListeningPort = Callable[[str], int]  # role -> bound port (KeyError: not listening)


@dataclass(frozen=True)
class MailServer:
    protocol: str  # imap | pop3 | smtp
    role: str  # the configuration role it stands for
    hostname: str
    port: int
    implicit_tls: bool

    @property
    def incoming(self) -> bool:
        return self.protocol != "smtp"

    @property
    def socket_type(self) -> str:
        """Thunderbird's name for the connection security: SSL (implicit TLS) or STARTTLS."""
        return "SSL" if self.implicit_tls else "STARTTLS"


def _port(config: Config, role: str, listening_port: ListeningPort | None) -> int | None:
    port = config.public_port(role)
    if port == 0:
        try:
            port = listening_port(role) if listening_port is not None else None
        except KeyError:
            port = None
    return port or None


def offered_servers(
    config: Config, listening_port: ListeningPort | None = None
) -> list[MailServer]:
    """Every enabled client-facing listener of ``config`` with a port to tell."""
    servers = []
    for protocol, role, implicit_tls in PREFERENCE:
        port = _port(config, role, listening_port)
        if port is not None:
            servers.append(MailServer(protocol, role, config.public_hostname, port, implicit_tls))
    return servers
