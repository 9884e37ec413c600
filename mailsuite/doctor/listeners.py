"""Is every configured listener up, does it greet, and does TLS complete on it?

One check per listen address of each role: connect, read the greeting the protocol promises
(SMTP 220, IMAP ``* OK``, POP3 ``+OK``, HTTP: ``GET /healthz`` answers 200), and do TLS as the
role does it: STARTTLS (SMTP after EHLO, IMAP STARTTLS, POP3 STLS) or TLS from the first byte
(submissions, imaps, pop3s, https). After STARTTLS one more command proves the session still
works. The certificate each handshake presented is kept for the certificate checks.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mailsuite.config import Config, ListenAddress
from mailsuite.doctor.probes import (
    LineClient,
    ProbeError,
    connect_host,
    http_get,
    smtp_text,
    unverified_context,
)
from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.target import Target

ROLES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http", "https")
IMPLICIT_TLS = frozenset({"submissions", "imaps", "pop3s", "https"})


@dataclass(frozen=True)
class Presented:
    role: str
    address: ListenAddress
    der: bytes  # the leaf certificate

    @property
    def source(self) -> str:
        return listener_name(self.role, self.address)


class PresentedCertificates:
    """The certificates listeners presented, each named by the first listener (in ROLES order)
    that presented it; filled by the listener checks in several threads, read by the
    certificate checks once they are done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[bytes, Presented] = {}

    def add(self, role: str, address: ListenAddress, der: bytes | None) -> None:
        if not der:
            return
        new = Presented(role, address, der)
        with self._lock:
            old = self._seen.get(der)
            if old is None or _order(new) < _order(old):  # not whichever thread came first
                self._seen[der] = new

    def distinct(self) -> list[Presented]:
        """Each different certificate once, in the order of ROLES (not of arrival)."""
        with self._lock:
            seen = list(self._seen.values())
        return sorted(seen, key=_order)


def _order(presented: Presented) -> tuple[int, str, int]:
    return ROLES.index(presented.role), presented.address.host, presented.address.port


def configured(config: Config) -> list[tuple[str, ListenAddress]]:
    """(role, address) for every listen address of every role, in ROLES order."""
    return [(role, address) for role in ROLES for address in getattr(config, role).listen]


# --- one dialog per protocol: raise ProbeError, or return a short summary ---------------------

Dialog = Callable[[LineClient, bool, ssl.SSLContext, str | None, Target], str]


def _smtp(
    client: LineClient, implicit: bool, context: ssl.SSLContext, sni: str | None, target: Target
) -> str:
    if implicit:
        client.start_tls(context, sni)
    code, lines = client.smtp_reply()
    if code != 220:
        raise ProbeError(f"greeting {smtp_text(code, lines)!r}, expected 220")
    code, lines = client.smtp_command(f"EHLO {target.config.hostname}")
    if code != 250:
        raise ProbeError(f"EHLO answered {smtp_text(code, lines)!r}")
    if not implicit:
        if not any(line.upper().split()[:1] == ["STARTTLS"] for line in lines[1:]):
            raise ProbeError("STARTTLS is not offered after EHLO")
        code, lines = client.smtp_command("STARTTLS")
        if code != 220:
            raise ProbeError(f"STARTTLS answered {smtp_text(code, lines)!r}")
        client.start_tls(context, sni)
        code, lines = client.smtp_command(f"EHLO {target.config.hostname}")
        if code != 250:
            raise ProbeError(f"EHLO after STARTTLS answered {smtp_text(code, lines)!r}")
    _quietly(client, "QUIT")
    return "220 greeting, EHLO" + ("" if implicit else ", STARTTLS")


def _imap(
    client: LineClient, implicit: bool, context: ssl.SSLContext, sni: str | None, target: Target
) -> str:
    if implicit:
        client.start_tls(context, sni)
    greeting = client.readline()
    if not greeting.upper().startswith("* OK"):
        raise ProbeError(f"greeting {greeting[:80]!r}, expected '* OK'")
    if not implicit:
        client.send("d1 STARTTLS")
        answer = client.tagged("d1")
        if not answer.upper().startswith("OK"):
            raise ProbeError(f"STARTTLS answered {answer[:80]!r}")
        client.start_tls(context, sni)
    client.send("d2 CAPABILITY")
    answer = client.tagged("d2")
    if not answer.upper().startswith("OK"):
        raise ProbeError(f"CAPABILITY over TLS answered {answer[:80]!r}")
    _quietly(client, "d3 LOGOUT")
    return "* OK greeting" + ("" if implicit else ", STARTTLS")


def _pop3(
    client: LineClient, implicit: bool, context: ssl.SSLContext, sni: str | None, target: Target
) -> str:
    if implicit:
        client.start_tls(context, sni)
    greeting = client.readline()
    if not greeting.startswith("+OK"):
        raise ProbeError(f"greeting {greeting[:80]!r}, expected '+OK'")
    if not implicit:
        client.send("STLS")
        answer = client.readline()
        if not answer.startswith("+OK"):
            raise ProbeError(f"STLS answered {answer[:80]!r}")
        client.start_tls(context, sni)
    client.send("QUIT")
    answer = client.readline()
    if not answer.startswith("+OK"):
        raise ProbeError(f"QUIT over TLS answered {answer[:80]!r}")
    return "+OK greeting" + ("" if implicit else ", STLS")


def _http(
    client: LineClient, implicit: bool, context: ssl.SSLContext, sni: str | None, target: Target
) -> str:
    if implicit:
        client.start_tls(context, sni)
    status, _ = http_get(client, target.hostname or client.host, "/healthz")
    if status != 200:
        raise ProbeError(f"GET /healthz answered HTTP {status}, expected 200")
    return "GET /healthz 200"


DIALOGS: dict[str, Dialog] = {
    "smtp": _smtp,
    "submission": _smtp,
    "submissions": _smtp,
    "imap": _imap,
    "imaps": _imap,
    "pop3": _pop3,
    "pop3s": _pop3,
    "http": _http,
    "https": _http,
}


def _quietly(client: LineClient, line: str) -> None:
    """A polite goodbye whose answer does not matter."""
    try:
        client.send(line)
        client.readline()
    except ProbeError:
        pass


def probe(
    target: Target, role: str, host: str, port: int, context: ssl.SSLContext
) -> tuple[str, LineClient]:
    """Run ``role``'s dialog against host:port; (summary, the closed client with its TLS info)."""
    with LineClient.connect(host, port) as client:
        summary = DIALOGS[role](client, role in IMPLICIT_TLS, context, target.sni_name(), target)
    return summary, client


def listener_name(role: str, address: ListenAddress) -> str:
    return f"listener {role} {address}"


def check_listener(
    target: Target, role: str, address: ListenAddress, presented: PresentedCertificates
) -> list[CheckResult]:
    name = listener_name(role, address)
    if address.port == 0:
        return [
            warned(
                name,
                "port 0: the system picks a port at each start, so it cannot be probed",
                f"give {role}.listen a fixed port",
            )
        ]
    host = connect_host(address)
    via = "" if host == address.host else f" (via {host})"
    try:
        summary, client = probe(target, role, host, address.port, unverified_context())
    except ProbeError as exc:
        return [failed(name, f"{exc}{via}", _fix(role, str(exc)))]
    tls = client.tls
    if tls is not None:
        presented.add(role, address, tls.certificate)
        summary += f", {tls.version}"
    return [passed(name, f"{summary}{via}")]


def _fix(role: str, reason: str) -> str:
    if "refused" in reason or "no answer" in reason:
        return f"start the server ('twistd mailsuite'), or correct {role}.listen"
    if "TLS" in reason:
        return (
            "check tls.cert_file / tls.key_file (or the generated pair under the data dir's tls/)"
        )
    return f"see the server log for what the {role} listener does wrong"
