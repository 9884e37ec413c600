"""The sandbox tests' server (a pytest plugin: ``pytest_plugins = ["sandbox_fixtures"]``; no
conftest.py here, whose module name would shadow the top one). Clients: sandbox_clients.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def sandbox(make_suite):
    """A whole server in sandbox mode, with the test settings (no users, no domains)."""
    return make_suite({"sandbox.enabled": True})
