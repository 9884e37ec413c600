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


@dataclass(frozen=True)
class Config:
    hostname: str
    data_dir: Path
    syncfs: bool
    tls_cert_file: Path | None
    tls_key_file: Path | None
    smtp_listen: tuple[ListenAddress, ...]
    smtp_offer_auth: bool
    submission_listen: tuple[ListenAddress, ...]
    submissions_listen: tuple[ListenAddress, ...]
    imap_listen: tuple[ListenAddress, ...]
    imaps_listen: tuple[ListenAddress, ...]
    imap_command_line: int
    imap_max_connections_per_user: int
    imap_idle_timeout: float
    pop3_listen: tuple[ListenAddress, ...]
    pop3s_listen: tuple[ListenAddress, ...]
    max_message_size: int
    max_recipients: int
    max_command_line: int
    idle_timeout: float
    max_bad_commands: int
    auth_max_failures: int
    auth_failure_delay: float
    auth_max_delay: float
    # Outbound delivery: the queue, its SMTP client, routing.
    queue_retry_schedule: tuple[float, ...]
    queue_lifetime: float
    queue_delay_warning: float
    queue_max_connections: int
    queue_max_per_destination: int
    client_mx_port: int
    client_connect_timeout: float
    client_greeting_timeout: float
    client_command_timeout: float
    client_data_init_timeout: float
    client_data_block_timeout: float
    client_data_end_timeout: float
    relay_host: ListenAddress | None
    relay_username: str
    relay_password: str
    relay_require_tls: bool
    relay_tls_verify: bool
    relay_tls_ca_file: Path | None
    relay_fallback: ListenAddress | None
    transport_map: tuple[tuple[str, ListenAddress], ...]
    transport_require_tls: tuple[str, ...]
    dns_nameservers: tuple[str, ...]
    dns_port: int
    dns_timeout: float

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


# --- the schema: TOML key -> (Config field, parser, default) -----------------------------------

_Parser = Callable[[str, Any], Any]

SCHEMA: dict[str, tuple[str, _Parser, Any]] = {
    "server.hostname": ("hostname", _string, ""),
    "server.data_dir": ("data_dir", _string, "./mailsuite-data"),
    "server.syncfs": ("syncfs", _bool, True),
    "tls.cert_file": ("tls_cert_file", _optional_path, ""),
    "tls.key_file": ("tls_key_file", _optional_path, ""),
    "smtp.listen": ("smtp_listen", _listen_list, ["127.0.0.1:2525"]),
    "smtp.offer_auth": ("smtp_offer_auth", _bool, False),
    "submission.listen": ("submission_listen", _listen_list, ["127.0.0.1:2587"]),
    "submissions.listen": ("submissions_listen", _listen_list, ["127.0.0.1:2465"]),
    "imap.listen": ("imap_listen", _listen_list, ["127.0.0.1:2143"]),
    "imaps.listen": ("imaps_listen", _listen_list, ["127.0.0.1:2993"]),
    "imap.command_line": ("imap_command_line", _positive_int, 65536),
    "imap.max_connections_per_user": ("imap_max_connections_per_user", _positive_int, 20),
    "imap.idle_timeout": ("imap_idle_timeout", _positive_seconds, 1800),
    "pop3.listen": ("pop3_listen", _listen_list, ["127.0.0.1:2110"]),
    "pop3s.listen": ("pop3s_listen", _listen_list, ["127.0.0.1:2995"]),
    "limits.message_size": ("max_message_size", _positive_int, 36_700_160),
    "limits.recipients": ("max_recipients", _positive_int, 100),
    "limits.command_line": ("max_command_line", _positive_int, 2048),
    "limits.idle_timeout": ("idle_timeout", _positive_seconds, 300),
    "limits.bad_commands": ("max_bad_commands", _positive_int, 20),
    "auth.max_failures": ("auth_max_failures", _positive_int, 3),
    "auth.failure_delay": ("auth_failure_delay", _non_negative_seconds, 1.0),
    "auth.max_delay": ("auth_max_delay", _non_negative_seconds, 16.0),
    "queue.retry_schedule": ("queue_retry_schedule", _seconds_list, [60, 300, 900, 1800, 3600]),
    "queue.lifetime": ("queue_lifetime", _positive_seconds, 432_000),
    "queue.delay_warning": ("queue_delay_warning", _non_negative_seconds, 14_400),
    "queue.max_connections": ("queue_max_connections", _positive_int, 20),
    "queue.max_per_destination": ("queue_max_per_destination", _positive_int, 5),
    "client.mx_port": ("client_mx_port", _port, 25),
    "client.connect_timeout": ("client_connect_timeout", _positive_seconds, 30),
    "client.greeting_timeout": ("client_greeting_timeout", _positive_seconds, 300),
    "client.command_timeout": ("client_command_timeout", _positive_seconds, 300),
    "client.data_init_timeout": ("client_data_init_timeout", _positive_seconds, 120),
    "client.data_block_timeout": ("client_data_block_timeout", _positive_seconds, 180),
    "client.data_end_timeout": ("client_data_end_timeout", _positive_seconds, 600),
    "relay.host": ("relay_host", _optional_host_port, ""),
    "relay.username": ("relay_username", _string, ""),
    "relay.password": ("relay_password", _string, ""),
    "relay.require_tls": ("relay_require_tls", _bool, True),
    "relay.tls_verify": ("relay_tls_verify", _bool, True),
    "relay.tls_ca_file": ("relay_tls_ca_file", _optional_path, ""),
    "relay.fallback": ("relay_fallback", _optional_host_port, ""),
    "transport.map": ("transport_map", _transport_map, {}),
    "transport.require_tls": ("transport_require_tls", _domain_list, []),
    "dns.nameservers": ("dns_nameservers", _ip_list, []),
    "dns.port": ("dns_port", _port, 53),
    "dns.timeout": ("dns_timeout", _positive_seconds, 10),
}


def _flatten(table: dict[str, Any]) -> dict[str, Any]:
    sections = {key.split(".")[0] for key in SCHEMA}
    flat: dict[str, Any] = {}
    for section, body in table.items():
        if section not in sections:
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
    values: dict[str, Any] = {}
    for key, (field, parse, default) in SCHEMA.items():
        values[field] = parse(key, flat.get(key, default))
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    values["data_dir"] = Path(values["data_dir"]).expanduser().resolve()
    values["hostname"] = values["hostname"] or socket.getfqdn() or "localhost"
    if (values["tls_cert_file"] is None) != (values["tls_key_file"] is None):
        raise ConfigError("tls.cert_file", "tls.cert_file and tls.key_file must be set together")
    if values["relay_username"] and not values["relay_password"]:
        raise ConfigError("relay.password", "relay.username is set: give its password too")
    for key in ("tls_cert_file", "tls_key_file", "relay_tls_ca_file"):
        if values[key] is not None:
            values[key] = values[key].resolve()
    return Config(**values)
