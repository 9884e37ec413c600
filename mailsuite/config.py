"""Typed configuration: one TOML file over embedded defaults, validated with errors naming the key.

Every key has a default, so the server starts with no file at all (a first try on 127.0.0.1 with
unprivileged ports). The schema below is the single list of keys; etc/mailsuite.toml documents
each of them for a real host.
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration mistake; str() is a one-line message that names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# --- the sections: one frozen dataclass per TOML table, one field per key -------------------------


@dataclass(frozen=True)
class ServerSection:
    hostname: str
    data_dir: Path
    syncfs: bool


@dataclass(frozen=True)
class TLSSection:
    cert_file: Path | None
    key_file: Path | None


@dataclass(frozen=True)
class ListenSection:
    """A role that only says where it listens (submission, submissions, imaps, pop3, pop3s)."""

    listen: tuple[ListenAddress, ...]


@dataclass(frozen=True)
class SMTPSection:
    listen: tuple[ListenAddress, ...]
    offer_auth: bool


@dataclass(frozen=True)
class IMAPSection:
    listen: tuple[ListenAddress, ...]
    command_line: int
    max_connections_per_user: int
    idle_timeout: float


@dataclass(frozen=True)
class LimitsSection:
    message_size: int
    recipients: int
    command_line: int
    idle_timeout: float
    bad_commands: int


@dataclass(frozen=True)
class AuthSection:
    max_failures: int
    failure_delay: float
    max_delay: float


@dataclass(frozen=True)
class QueueSection:
    retry_schedule: tuple[float, ...]
    lifetime: float
    delay_warning: float
    max_connections: int
    max_per_destination: int


@dataclass(frozen=True)
class ClientSection:
    """The SMTP client that delivers the queue."""

    mx_port: int
    connect_timeout: float
    greeting_timeout: float
    command_timeout: float
    data_init_timeout: float
    data_block_timeout: float
    data_end_timeout: float


@dataclass(frozen=True)
class RelaySection:
    host: ListenAddress | None
    username: str
    password: str
    require_tls: bool
    tls_verify: bool
    tls_ca_file: Path | None
    fallback: ListenAddress | None


@dataclass(frozen=True)
class TransportSection:
    map: tuple[tuple[str, ListenAddress], ...]
    require_tls: tuple[str, ...]


@dataclass(frozen=True)
class DNSSection:
    nameservers: tuple[str, ...]
    port: int
    timeout: float


@dataclass(frozen=True)
class DKIMSection:
    sign: bool


@dataclass(frozen=True)
class VerifySection:
    """Checks of mail arriving on the MX (SPF, DKIM, DMARC, iprev) and what failures lead to."""

    enabled: bool
    on_dmarc_reject: str
    on_dmarc_quarantine: str
    on_spf_fail: str
    iprev: bool


@dataclass(frozen=True)
class PublicSection:
    """How the world reaches this server: for autoconfig, the DNS records and the doctor."""

    hostname: str  # the MX / client-facing name ("" in the file: server.hostname)
    ipv4: tuple[str, ...]  # public addresses ([] : not published, e.g. behind NAT unknown)
    ipv6: tuple[str, ...]
    ports: tuple[tuple[str, int], ...]  # role -> public port, where it differs from listen


@dataclass(frozen=True)
class MTASTSSection:
    mode: str  # enforce | testing | none (RFC 8461 §3.2)
    max_age: int


@dataclass(frozen=True)
class ACMESection:
    enabled: bool
    directory: str
    email: str
    ca_file: Path | None  # trust for the ACME server itself (a test CA such as pebble's)
    renew_days: int


@dataclass(frozen=True)
class CheckSection:
    probe_mx: str  # "host:port" the doctor connects to to test outbound port 25 ("": skip)
    blocklists: tuple[str, ...]
    queue_age_hours: float


@dataclass(frozen=True)
class LogSection:
    delivery: bool  # write the delivery log (<data>/log/)
    keep_days: int


@dataclass(frozen=True)
class SandboxSection:
    """The "fake SMTP server" for testing applications: everything is captured, nothing leaves."""

    enabled: bool
    login: str  # the capture mailbox's IMAP/POP3 login (and the one submission login, if set)
    password: str
    accept_any_login: bool  # submission takes any user name and password


@dataclass(frozen=True)
class APISection:
    enabled: bool  # the HTTP send API (/api/v1/...) on the http/https roles


@dataclass(frozen=True)
class WebhooksSection:
    """Delivery outcomes POSTed to the URLs of ``mailsuite-admin webhook add``."""

    enabled: bool
    first_retry: float  # seconds after the first failed call; doubled after each further one
    max_retry: float  # ... up to this
    give_up: float  # seconds after the event: a call still failing is dropped
    timeout: float  # seconds for one call (connect to answer)


# Mail roles whose listeners clients are told about (autoconfig, SRV records, the doctor).
CLIENT_ROLES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")


@dataclass(frozen=True)
class Config:
    """The whole configuration: ``config.<section>.<key>``, as in the TOML file."""

    server: ServerSection
    tls: TLSSection
    smtp: SMTPSection
    submission: ListenSection
    submissions: ListenSection
    imap: IMAPSection
    imaps: ListenSection
    pop3: ListenSection
    pop3s: ListenSection
    limits: LimitsSection
    auth: AuthSection
    queue: QueueSection
    client: ClientSection
    relay: RelaySection
    transport: TransportSection
    dns: DNSSection
    dkim: DKIMSection
    verify: VerifySection
    http: ListenSection
    https: ListenSection
    public: PublicSection
    mta_sts: MTASTSSection
    acme: ACMESection
    check: CheckSection
    metrics: ListenSection
    log: LogSection
    sandbox: SandboxSection
    api: APISection
    webhooks: WebhooksSection

    def public_port(self, role: str) -> int | None:
        """The port clients use for ``role``: ``public.ports`` if set there, else the port of
        its first listen address; None when the role has no listener (disabled)."""
        override = dict(self.public.ports).get(role)
        if override is not None:
            return override
        addresses = getattr(self, role).listen
        return addresses[0].port if addresses else None

    @property
    def public_hostname(self) -> str:
        return self.public.hostname or self.hostname

    @property
    def log_dir(self) -> Path:
        """The delivery log (rotated JSON lines)."""
        return self.data_dir / "log"

    @property
    def acme_dir(self) -> Path:
        """ACME account key, issued certificates, and pending HTTP-01 challenge tokens."""
        return self.data_dir / "acme"

    @property
    def hostname(self) -> str:
        return self.server.hostname

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mailsuite.db"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def spool_dir(self) -> Path:
        """Where incoming messages are written before they are linked into Maildirs or the queue."""
        return self.data_dir / "spool"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def webhooks_dir(self) -> Path:
        """Webhook calls not yet made (outbox/), kept across restarts."""
        return self.data_dir / "webhooks"

    @property
    def dkim_dir(self) -> Path:
        """DKIM private keys: <dkim_dir>/<domain>/<selector>.key (mode 0600)."""
        return self.data_dir / "dkim"


SECTIONS: dict[str, type] = {
    "server": ServerSection,
    "tls": TLSSection,
    "smtp": SMTPSection,
    "submission": ListenSection,
    "submissions": ListenSection,
    "imap": IMAPSection,
    "imaps": ListenSection,
    "pop3": ListenSection,
    "pop3s": ListenSection,
    "limits": LimitsSection,
    "auth": AuthSection,
    "queue": QueueSection,
    "client": ClientSection,
    "relay": RelaySection,
    "transport": TransportSection,
    "dns": DNSSection,
    "dkim": DKIMSection,
    "verify": VerifySection,
    "http": ListenSection,
    "https": ListenSection,
    "public": PublicSection,
    "mta_sts": MTASTSSection,
    "acme": ACMESection,
    "check": CheckSection,
    "metrics": ListenSection,
    "log": LogSection,
    "sandbox": SandboxSection,
    "api": APISection,
    "webhooks": WebhooksSection,
}


# --- value parsers: each takes (key, raw value) and returns the typed value or raises ------------


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {type(value).__name__}")
    return value


def _optional_path(key: str, value: Any) -> Path | None:
    text = _string(key, value)
    return Path(text).expanduser() if text else None


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(key, f"expected a positive whole number, got {value!r}")
    return value


def _positive_seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(key, f"expected a positive number of seconds, got {value!r}")
    return float(value)


def _non_negative_seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(key, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def parse_listen_address(key: str, text: str) -> ListenAddress:
    """Parse ``host:port`` or ``[v6]:port``; an empty host means every interface."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(key, f"expected 'host:port' (e.g. '127.0.0.1:25'), got {text!r}")
    return ListenAddress(host, int(port_text))


def _listen_list(key: str, value: Any) -> tuple[ListenAddress, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, "expected a list of 'host:port' strings (empty to disable)")
    return tuple(parse_listen_address(key, _string(key, item)) for item in value)


def _port(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(key, f"expected a TCP port (1-65535), got {value!r}")
    return value


def _seconds_list(key: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "expected a non-empty list of seconds, e.g. [60, 300, 900]")
    return tuple(_positive_seconds(key, item) for item in value)


def _optional_host_port(key: str, value: Any) -> ListenAddress | None:
    """``host:port`` of a remote server (a name or an address); "" means none."""
    text = _string(key, value)
    if not text:
        return None
    address = parse_listen_address(key, text)
    if not address.host or address.port == 0:
        raise ConfigError(key, f"expected 'host:port' with a host and a port, got {text!r}")
    return address


def _domain_name(key: str, value: Any) -> str:
    text = _string(key, value).strip().lower().rstrip(".")
    if not text or any(ch.isspace() or ch in "@[]/:" for ch in text):
        raise ConfigError(key, f"expected a domain name, got {value!r}")
    return text


def _domain_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, "expected a list of domain names")
    return tuple(_domain_name(key, item) for item in value)


def _transport_map(key: str, value: Any) -> tuple[tuple[str, ListenAddress], ...]:
    """An inline table ``{ "example.org" = "host:port", ... }``, kept as sorted pairs."""
    if not isinstance(value, dict):
        raise ConfigError(key, 'expected a table of domain = "host:port"')
    pairs: dict[str, ListenAddress] = {}
    for domain, target in value.items():
        address = _optional_host_port(f"{key}.{domain}", target)
        if address is None:
            raise ConfigError(f"{key}.{domain}", "expected 'host:port', got an empty string")
        pairs[_domain_name(key, domain)] = address
    return tuple(sorted(pairs.items()))


def _role_ports(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    """``{ submission = 587, ... }``: the public port of a role, where it is not the listen port."""
    if not isinstance(value, dict):
        raise ConfigError(key, "expected a table of role = port, e.g. { submission = 587 }")
    for role in value:
        if role not in CLIENT_ROLES + ("http", "https"):
            raise ConfigError(f"{key}.{role}", f"not a role; one of {', '.join(CLIENT_ROLES)}")
    return tuple(sorted((role, _port(f"{key}.{role}", port)) for role, port in value.items()))


def _ip_version_list(version: int) -> Callable[[str, Any], tuple[str, ...]]:
    def parse(key: str, value: Any) -> tuple[str, ...]:
        addresses = _ip_list(key, value)
        for address in addresses:
            if ipaddress.ip_address(address).version != version:
                raise ConfigError(key, f"not an IPv{version} address: {address}")
        return addresses

    return parse


def _string_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, "expected a list of strings")
    return tuple(_string(key, item) for item in value)


def _choice(*allowed: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        if value not in allowed:
            choices = ", ".join(map(repr, allowed))
            raise ConfigError(key, f"expected one of {choices}, not {value!r}")
        return value

    return parse


def _ip_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, "expected a list of IP addresses (empty: /etc/resolv.conf)")
    result = []
    for item in value:
        try:
            result.append(str(ipaddress.ip_address(_string(key, item))))
        except ValueError:
            raise ConfigError(key, f"not an IP address: {item!r}") from None
    return tuple(result)


# --- the schema: TOML key -> (parser, default); the key's section and name are the field's -------

_Parser = Callable[[str, Any], Any]

SCHEMA: dict[str, tuple[_Parser, Any]] = {
    "server.hostname": (_string, ""),
    "server.data_dir": (_string, "./mailsuite-data"),
    "server.syncfs": (_bool, True),
    "tls.cert_file": (_optional_path, ""),
    "tls.key_file": (_optional_path, ""),
    "smtp.listen": (_listen_list, ["127.0.0.1:2525"]),
    "smtp.offer_auth": (_bool, False),
    "submission.listen": (_listen_list, ["127.0.0.1:2587"]),
    "submissions.listen": (_listen_list, ["127.0.0.1:2465"]),
    "imap.listen": (_listen_list, ["127.0.0.1:2143"]),
    "imaps.listen": (_listen_list, ["127.0.0.1:2993"]),
    "imap.command_line": (_positive_int, 65536),
    "imap.max_connections_per_user": (_positive_int, 20),
    "imap.idle_timeout": (_positive_seconds, 1800),
    "pop3.listen": (_listen_list, ["127.0.0.1:2110"]),
    "pop3s.listen": (_listen_list, ["127.0.0.1:2995"]),
    "limits.message_size": (_positive_int, 36_700_160),
    "limits.recipients": (_positive_int, 100),
    "limits.command_line": (_positive_int, 2048),
    "limits.idle_timeout": (_positive_seconds, 300),
    "limits.bad_commands": (_positive_int, 20),
    "auth.max_failures": (_positive_int, 3),
    "auth.failure_delay": (_non_negative_seconds, 1.0),
    "auth.max_delay": (_non_negative_seconds, 16.0),
    "queue.retry_schedule": (_seconds_list, [60, 300, 900, 1800, 3600]),
    "queue.lifetime": (_positive_seconds, 432_000),
    "queue.delay_warning": (_non_negative_seconds, 14_400),
    "queue.max_connections": (_positive_int, 20),
    "queue.max_per_destination": (_positive_int, 5),
    "client.mx_port": (_port, 25),
    "client.connect_timeout": (_positive_seconds, 30),
    "client.greeting_timeout": (_positive_seconds, 300),
    "client.command_timeout": (_positive_seconds, 300),
    "client.data_init_timeout": (_positive_seconds, 120),
    "client.data_block_timeout": (_positive_seconds, 180),
    "client.data_end_timeout": (_positive_seconds, 600),
    "relay.host": (_optional_host_port, ""),
    "relay.username": (_string, ""),
    "relay.password": (_string, ""),
    "relay.require_tls": (_bool, True),
    "relay.tls_verify": (_bool, True),
    "relay.tls_ca_file": (_optional_path, ""),
    "relay.fallback": (_optional_host_port, ""),
    "transport.map": (_transport_map, {}),
    "transport.require_tls": (_domain_list, []),
    "dns.nameservers": (_ip_list, []),
    "dns.port": (_port, 53),
    "dns.timeout": (_positive_seconds, 10),
    "dkim.sign": (_bool, True),
    "verify.enabled": (_bool, True),
    "verify.on_dmarc_reject": (_choice("reject", "junk", "accept"), "reject"),
    "verify.on_dmarc_quarantine": (_choice("junk", "accept", "reject"), "junk"),
    "verify.on_spf_fail": (_choice("accept", "junk", "reject"), "accept"),
    "verify.iprev": (_bool, True),
    "http.listen": (_listen_list, ["127.0.0.1:2080"]),
    "https.listen": (_listen_list, []),
    "public.hostname": (_string, ""),
    "public.ipv4": (_ip_version_list(4), []),
    "public.ipv6": (_ip_version_list(6), []),
    "public.ports": (_role_ports, {}),
    "mta_sts.mode": (_choice("testing", "enforce", "none"), "testing"),
    "mta_sts.max_age": (_positive_int, 604_800),
    "acme.enabled": (_bool, False),
    "acme.directory": (_string, "https://acme-v02.api.letsencrypt.org/directory"),
    "acme.email": (_string, ""),
    "acme.ca_file": (_optional_path, ""),
    "acme.renew_days": (_positive_int, 30),
    "check.probe_mx": (_string, ""),
    "check.blocklists": (_string_list, ["zen.spamhaus.org"]),
    "check.queue_age_hours": (_positive_seconds, 24),
    "metrics.listen": (_listen_list, ["127.0.0.1:2090"]),
    "log.delivery": (_bool, True),
    "log.keep_days": (_positive_int, 30),
    "sandbox.enabled": (_bool, False),
    "sandbox.login": (_string, "sandbox"),
    "sandbox.password": (_string, "sandbox"),
    "sandbox.accept_any_login": (_bool, True),
    "api.enabled": (_bool, True),
    "webhooks.enabled": (_bool, True),
    "webhooks.first_retry": (_positive_seconds, 10),
    "webhooks.max_retry": (_positive_seconds, 3600),
    "webhooks.give_up": (_positive_seconds, 86_400),
    "webhooks.timeout": (_positive_seconds, 10),
}


def _flatten(table: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, body in table.items():
        if section not in SECTIONS:
            raise ConfigError(section, "unknown section")
        if not isinstance(body, dict):
            raise ConfigError(section, "expected a table ([section])")
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in SCHEMA:
                raise ConfigError(key, "unknown key")
            flat[key] = value
    return flat


def load_config(path: str | Path | None = None, data_dir: str | Path | None = None) -> Config:
    """Build the Config from the TOML file at ``path`` (or defaults only) and --data-dir."""
    table: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    flat = _flatten(table)
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, (parse, default) in SCHEMA.items():
        section, _, name = key.partition(".")
        values[section][name] = parse(key, flat.get(key, default))
    server, tls, relay = values["server"], values["tls"], values["relay"]
    if data_dir is not None:
        server["data_dir"] = str(data_dir)
    server["data_dir"] = Path(server["data_dir"]).expanduser().resolve()
    server["hostname"] = server["hostname"] or socket.getfqdn() or "localhost"
    if (tls["cert_file"] is None) != (tls["key_file"] is None):
        raise ConfigError("tls.cert_file", "tls.cert_file and tls.key_file must be set together")
    if relay["username"] and not relay["password"]:
        raise ConfigError("relay.password", "relay.username is set: give its password too")
    for section, name in (
        ("tls", "cert_file"),
        ("tls", "key_file"),
        ("relay", "tls_ca_file"),
        ("acme", "ca_file"),
    ):
        if values[section][name] is not None:
            values[section][name] = values[section][name].resolve()
    return Config(**{name: SECTIONS[name](**fields) for name, fields in values.items()})
