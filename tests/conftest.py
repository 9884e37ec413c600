"""Shared fixtures: a real mailsuite on 127.0.0.1 (ports chosen by the kernel), run by a Twisted
reactor in a background thread, driven from the test thread by real clients over real sockets."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import PASSWORD
from support.config import merge, to_toml

from mailsuite.accounts.passwords import hash_password
from mailsuite.config import Config, load_config

# The peers' fixtures (zone, start_sink), for every test.
pytest_plugins = ["support.fixtures"]

SUITE_USERS = ("alice@example.com", "bob@example.com")  # the ``suite`` fixture's, with PASSWORD

TEST_SETTINGS: dict[str, dict[str, object]] = {
    "server": {"hostname": "mx.test.example"},
    "smtp": {"listen": ["127.0.0.1:0"]},
    "submission": {"listen": ["127.0.0.1:0"]},
    "submissions": {"listen": ["127.0.0.1:0"]},
    "pop3": {"listen": ["127.0.0.1:0"]},
    "pop3s": {"listen": ["127.0.0.1:0"]},
    "imap": {"listen": ["127.0.0.1:0"]},
    "imaps": {"listen": ["127.0.0.1:0"]},
    "http": {"listen": ["127.0.0.1:0"]},
    "metrics": {"listen": ["127.0.0.1:0"]},
    "limits": {"message_size": 1_000_000, "recipients": 5, "idle_timeout": 30},
    "auth": {"failure_delay": 0.05, "max_delay": 0.2},
    # Nothing answers on port 9: remote domains stay deferred in the queue instead of racing
    # a real resolver's NXDOMAIN into a bounce while a test inspects the queue.
    "dns": {"nameservers": ["127.0.0.1"], "port": 9, "timeout": 0.5},
    # Mail authentication asks DNS for every MX message; tests about it turn it on with a zone
    # (tests/authn), the others do not wait for DNS that is not there.
    "verify": {"enabled": False},
}


class ReactorThread:
    """The global reactor, run once per test session in a daemon thread."""

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
        )
        self.thread.start()

    def call(self, fn, *args, **kwargs):
        """Run ``fn`` in the reactor thread and wait for its (possibly Deferred) result."""
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, fn, *args, **kwargs)

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def reactor_thread() -> Iterator[ReactorThread]:
    runner = ReactorThread()
    yield runner
    runner.stop()


@dataclass
class RunningSuite:
    """A started server plus what a test needs to talk to it and to inspect its disk."""

    service: object
    config: Config
    reactor: ReactorThread

    @property
    def db(self):
        return self.service.database

    def port(self, role: str) -> int:
        return self.service.listening_port(role)

    @property
    def cert_path(self) -> Path:
        return self.config.tls_dir / "cert.pem"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        domain = address.rpartition("@")[2]
        if not self.db.has_domain(domain):
            self.db.add_domain(domain)
        self.db.add_user(address, hash_password(password))

    def maildir(self, address: str) -> Path:
        local, _, domain = address.rpartition("@")
        return self.config.mail_dir / domain / local

    def messages(self, address: str) -> list[bytes]:
        new = self.maildir(address) / "new"
        if not new.is_dir():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir())]

    def smtp(self, role: str = "smtp") -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port(role), local_hostname="client.test", timeout=10)

    def submission(self, user: str | None = None, password: str = PASSWORD) -> smtplib.SMTP:
        client = self.smtp("submission")
        client.starttls(context=self.tls_context())
        if user is not None:
            client.login(user, password)
        return client

    def submissions(self, user: str | None = None, password: str = PASSWORD) -> smtplib.SMTP_SSL:
        client = smtplib.SMTP_SSL(
            "127.0.0.1",
            self.port("submissions"),
            local_hostname="client.test",
            context=self.tls_context(),
            timeout=10,
        )
        if user is not None:
            client.login(user, password)
        return client


TWISTD = str(Path(sys.executable).with_name("twistd"))


def cli_ok(result: tuple[int, str, str]) -> str:
    """The output of a mailsuite-admin run, given as (exit code, stdout, stderr), that worked."""
    code, out, err = result
    assert (code, err) == (0, ""), err
    return out


def cli_fails(result: tuple[int, str, str], message: str) -> str:
    """The error of a mailsuite-admin run that failed as it should: one line, exit 1."""
    code, out, err = result
    assert code == 1
    assert out == ""
    assert err.startswith("mailsuite-admin: error: ")
    assert message in err
    assert "Traceback" not in err
    return err


def index_on_disk(folder: Path) -> tuple[dict[str, int], list[tuple[int, str, str]]]:
    """What a folder's index file holds now: its meta values and (uid, key, flags) rows."""
    import sqlite3

    from mailsuite.store.index import INDEX_FILE

    db = sqlite3.connect(folder / INDEX_FILE)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        rows = db.execute("SELECT uid, key, flags FROM messages ORDER BY uid").fetchall()
    finally:
        db.close()
    return meta, rows


def start_twistd(config: Path, data_dir: Path, cwd: Path) -> subprocess.Popen:
    """``twistd -n mailsuite`` as a child process, its output (text) on a pipe."""
    args = [TWISTD, "-n", "--pidfile=", "mailsuite", "--config", str(config)]
    return subprocess.Popen(
        [*args, "--data-dir", str(data_dir)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def start_service(reactor_thread: ReactorThread, config: Config):
    """Build and start the service for ``config`` in the reactor thread; returns it."""
    from mailsuite.service import make_service

    def start():
        service = make_service(config)
        service.privilegedStartService()
        service.startService()
        return service

    return reactor_thread.call(start)


def start_suite(
    reactor_thread: ReactorThread, tmp_path: Path, overrides: dict[str, object] | None = None
) -> RunningSuite:
    """Start a server whose settings are TEST_SETTINGS with ``{"section.key": value}`` on top."""
    config_file = tmp_path / "mailsuite.toml"
    config_file.write_text(to_toml(merge(TEST_SETTINGS, overrides or {})))
    config = load_config(config_file, tmp_path / "data")
    return RunningSuite(start_service(reactor_thread, config), config, reactor_thread)


@pytest.fixture
def make_suite(reactor_thread, tmp_path):
    """Start a server with overridden settings; stopped after the test."""
    started = []

    def make(overrides: dict[str, object]) -> RunningSuite:
        running = start_suite(reactor_thread, tmp_path, overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        reactor_thread.call(running.service.stopService)


@pytest.fixture
def suite(reactor_thread, tmp_path) -> Iterator[RunningSuite]:
    running = start_suite(reactor_thread, tmp_path)
    for user in SUITE_USERS:
        running.add_user(user)
    yield running
    reactor_thread.call(running.service.stopService)
