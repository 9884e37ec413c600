"""Fixtures for the test peers, registered for every test by tests/conftest.py
(``pytest_plugins``): the fake DNS zone and SMTP sinks, run in the shared reactor thread
(``reactor_thread``), and a Postfix."""

from __future__ import annotations

import pytest

from support.dns import FakeZone
from support.net import free_port
from support.postfix import Postfix
from support.sink import SinkBehaviour, SMTPSink


@pytest.fixture
def zone(reactor_thread):
    """A FakeZone on a free port of 127.0.0.1 (``zone.port``), empty until the test fills it."""
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


@pytest.fixture(scope="module")
def postfix():
    """One Postfix for the module (skipped where none can run); it relays to a mailsuite
    listening on ``postfix.relay_port``."""
    peer = Postfix(free_port())
    yield peer
    peer.stop()
