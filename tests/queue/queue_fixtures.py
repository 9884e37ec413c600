"""The ``start_instance`` fixture for outbound delivery tests: whole mailsuite instances, started
in the shared reactor thread (``reactor_thread`` from tests/conftest.py), resolving through the
fake DNS zone (``zone`` from support.fixtures). Test modules that use it import it with
``pytest_plugins`` (a tests/queue/conftest.py would shadow the ``conftest`` module that other
test directories import names from).

The shared ``make_suite`` fixture cannot serve here: two instances in one test would share its
data directory."""

from __future__ import annotations

import pytest
from queue_helpers import MailInstance, instance_settings
from support.config import merge


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
