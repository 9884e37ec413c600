"""The SMTP probes: our MX refuses to relay for strangers, and we can reach other MXes.

An open relay is found and abused within hours, then every blocklist lists the address; the
probe asks the smtp role, unauthenticated, to take mail from one outside domain to another.
Outbound port 25 is blocked by many hosting and home providers, and nothing in the queue says
so until messages time out: one connection to ``check.probe_mx`` tells at once.
"""

from __future__ import annotations

import ipaddress

from mailsuite.config import ConfigError, parse_listen_address
from mailsuite.doctor.probes import LineClient, ProbeError, connect_host, smtp_text
from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.routing import host_addresses
from mailsuite.doctor.target import Target, dns_unsure
from mailsuite.resolver import DNSTemporaryError

PROBE_SENDER = "probe@example.org"
PROBE_RECIPIENT = "probe@example.net"


def check_open_relay(target: Target) -> list[CheckResult]:
    name = "open relay"
    listen = target.config.smtp.listen
    if not listen:
        return [passed(name, "no smtp listener: nothing to relay through")]
    if listen[0].port == 0:
        return [warned(name, "not probed: smtp.listen has port 0", "give smtp.listen a fixed port")]
    host, port = connect_host(listen[0]), listen[0].port
    try:
        with LineClient.connect(host, port) as client:
            code, lines = client.smtp_reply()
            if code != 220:
                raise ProbeError(f"greeting {smtp_text(code, lines)!r}")
            code, lines = client.smtp_command(f"EHLO {target.config.hostname}")
            if code != 250:
                raise ProbeError(f"EHLO answered {smtp_text(code, lines)!r}")
            code, lines = client.smtp_command(f"MAIL FROM:<{PROBE_SENDER}>")
            if code != 250:
                return [
                    passed(name, f"MAIL FROM:<{PROBE_SENDER}> refused: {smtp_text(code, lines)}")
                ]
            code, lines = client.smtp_command(f"RCPT TO:<{PROBE_RECIPIENT}>")
            reply = smtp_text(code, lines)
            for line in ("RSET", "QUIT"):
                client.send(line)
    except ProbeError as exc:
        return [
            warned(
                name,
                f"could not probe {host}:{port}: {exc}",
                "get the smtp listener working (see its listener check), then run check again",
            )
        ]
    if 200 <= code < 400:
        return [
            failed(
                name,
                f"{host}:{port} accepted RCPT TO:<{PROBE_RECIPIENT}> without AUTH ({reply}): "
                "anyone can send mail through this server",
                "stop the server now; relaying must need AUTH (report this as a bug)",
            )
        ]
    return [passed(name, f"unauthenticated RCPT to an outside domain refused: {reply}")]


def check_outbound_port_25(target: Target) -> list[CheckResult]:
    name = "outbound port 25"
    text = target.config.check.probe_mx
    if not text:
        return [
            warned(
                name,
                "not probed: check.probe_mx is not set",
                'set check.probe_mx = "<an MX you may connect to>:25" (e.g. a friend\'s MX)',
            )
        ]
    try:
        address = parse_listen_address("check.probe_mx", text if ":" in text else f"{text}:25")
    except ConfigError as exc:
        return [failed(name, str(exc), 'write it as "host:port"')]
    try:
        host = _address_of(target, address.host)
        with LineClient.connect(host, address.port) as client:
            code, lines = client.smtp_reply()
            client.send("QUIT")
    except ProbeError as exc:
        relayed = target.config.relay.host is not None
        report = warned if relayed else failed
        fix = (
            "mail leaves through relay.host, so this only matters without it"
            if relayed
            else "ask your provider to open outbound port 25, or send through relay.host"
        )
        return [report(name, f"{address}: {exc}", fix)]
    if code != 220:
        return [
            warned(
                name,
                f"{address} connected but greeted {smtp_text(code, lines)!r}",
                "pick another check.probe_mx",
            )
        ]
    return [passed(name, f"{address} answered: {smtp_text(code, lines)}")]


def _address_of(target: Target, host: str) -> str:
    """An address for ``host``, looked up through our resolver (dns.nameservers, bounded)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    try:
        addresses = host_addresses(target, host)
    except DNSTemporaryError as exc:
        raise ProbeError(dns_unsure(exc).removeprefix("could not tell: ")) from None
    if not addresses:
        raise ProbeError(f"{host} does not resolve")
    return addresses[0]
