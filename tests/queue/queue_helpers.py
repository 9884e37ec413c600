"""Outbound delivery tests' own helpers: ``MailInstance``, a whole mailsuite with its own data
directory and configuration (several at once, unlike conftest's suite), and DSN parsing. The
peers they deliver to (``FakeZone``, ``SMTPSink``, Postfix) are in tests/support.
"""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from typing import Any

from conftest import RunningSuite, start_service
from support import PASSWORD
from support.config import to_toml


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
        "http": {"listen": []},
        "metrics": {"listen": []},
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
        self.service = start_service(self.reactor_thread, self.config)

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


def parse_report(raw: bytes):
    """(report, [human, status, headers] parts, per-recipient status blocks) of a DSN."""
    import email
    from email import policy

    report = email.message_from_bytes(raw, policy=policy.default)
    parts = list(report.iter_parts())
    blocks = parts[1].get_payload()
    return report, parts, blocks[1:]
