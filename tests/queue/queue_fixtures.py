"""Fixtures for outbound delivery tests: a fake DNS zone, SMTP sinks and mailsuite instances, all
started in the shared reactor thread (``reactor_thread`` from tests/conftest.py). Test modules
import the ones they use (a tests/queue/conftest.py would shadow the ``conftest`` module that
other test directories import names from).

The shared ``make_suite`` fixture cannot serve here: two instances in one test would share its
data directory, and its TOML writer has no inline tables (``transport.map``)."""

from __future__ import annotations

import pytest
from queue_helpers import FakeZone, MailInstance, SinkBehaviour, SMTPSink, instance_settings, merge


@pytest.fixture
def zone(reactor_thread):
    fake = FakeZone()
    reactor_thread.call(fake.start, reactor_thread.reactor)
    yield fake
    reactor_thread.call(fake.stop)


@pytest.fixture
def start_sink(reactor_thread):
    """start_sink(behaviour=None, port=0) -> a running SMTPSink on 127.0.0.1."""
    sinks = []

    def start(behaviour: SinkBehaviour | None = None, port: int = 0) -> SMTPSink:
        sink = SMTPSink(behaviour)
        reactor_thread.call(sink.start, reactor_thread.reactor, port)
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        reactor_thread.call(sink.stop)


@pytest.fixture
def start_instance(reactor_thread, tmp_path, zone):
    """start_instance(name, hostname, mx_port=25, **{"section.key": value}) -> MailInstance."""
    instances = []

    def start(name: str, hostname: str, mx_port: int = 25, overrides=None) -> MailInstance:
        settings = merge(instance_settings(hostname, zone.port, mx_port), overrides or {})
        instance = MailInstance(reactor_thread, tmp_path / name, settings)
        instances.append(instance)
        return instance

    yield start
    for instance in instances:
        instance.stop()
