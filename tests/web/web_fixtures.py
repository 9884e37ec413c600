"""The web tests' server (a pytest plugin: ``pytest_plugins = ["web_fixtures"]``; no conftest.py
here, whose module name ``conftest`` would shadow the top one that other tests import from)."""

from __future__ import annotations

import pytest

# What the web answers tell clients: the test listeners are bound to port 0 (whatever the
# kernel picks), so public ports are set, as behind a NAT or a port forward. The STARTTLS ports
# are not the standard ones: autodiscover must leave those out (Thunderbird would take them for
# implicit TLS).
PUBLIC_PORTS = {
    "imaps": 993,
    "imap": 1143,
    "pop3s": 995,
    "pop3": 1110,
    "submissions": 465,
    "submission": 1587,
}


@pytest.fixture
def web(make_suite):
    """The ``suite`` settings with PUBLIC_PORTS and the domain example.com and no users: the web
    answers depend on domains only, and hashing passwords would cost most of each test's time."""
    suite = make_suite({"public.ports": PUBLIC_PORTS})
    suite.db.add_domain("example.com")
    return suite
