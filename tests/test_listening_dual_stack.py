"""Listing an IPv4 and an IPv6 address on the same port, as etc/mailsuite.toml and quickstart
do: both bind (the IPv6 socket is IPV6_V6ONLY) and both serve, implicit TLS included."""

from __future__ import annotations

import smtplib
import socket

import pytest
from support.net import free_port


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_the_same_port_on_ipv4_and_ipv6(make_suite):
    smtp, imaps = free_port(), free_port()
    suite = make_suite(
        {
            "smtp.listen": [f"127.0.0.1:{smtp}", f"[::1]:{smtp}"],
            "imaps.listen": [f"127.0.0.1:{imaps}", f"[::1]:{imaps}"],
        }
    )
    for host in ("127.0.0.1", "::1"):
        with smtplib.SMTP(host, smtp, timeout=10) as client:
            assert client.ehlo()[0] == 250
        context = suite.tls_context()
        context.check_hostname = False
        with socket.create_connection((host, imaps), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                assert tls.recv(100).startswith(b"* OK")
                assert tls.version() in ("TLSv1.2", "TLSv1.3")

