"""The MTA-STS policy: served over https at mta-sts.<local domain> only."""

from __future__ import annotations

import pytest
from web_fixtures import PUBLIC_PORTS
from webclient import curl, fetch

PATH = "/.well-known/mta-sts.txt"


@pytest.fixture
def tls_suite(make_suite):
    suite = make_suite(
        {
            "https.listen": ["127.0.0.1:0"],
            "mta_sts.mode": "enforce",
            "mta_sts.max_age": 604800,
            "public.hostname": "mail.example.com",
            "public.ports": PUBLIC_PORTS,
        }
    )
    suite.db.add_domain("example.com")
    return suite


def test_policy_over_https(tls_suite):
    answer = fetch(
        tls_suite.port("https"), PATH, "mta-sts.example.com", context=tls_suite.tls_context()
    )
    assert answer.status == 200
    assert answer.content_type == "text/plain"
    assert answer.body == (
        b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"
    )
    # Host names are case-insensitive and may carry the port.
    port = tls_suite.port("https")
    again = fetch(port, PATH, f"MTA-STS.Example.COM:{port}", context=tls_suite.tls_context())
    assert again.body == answer.body


def test_not_over_http_nor_for_other_hosts(tls_suite):
    assert fetch(tls_suite.port("http"), PATH, "mta-sts.example.com").status == 404
    for host in ("mta-sts.example.org", "example.com", "autoconfig.example.com", "mta-sts."):
        answer = fetch(tls_suite.port("https"), PATH, host, context=tls_suite.tls_context())
        assert answer.status == 404, host


def test_default_mode_is_served_too(make_suite):
    default = make_suite({"https.listen": ["127.0.0.1:0"]})
    default.db.add_domain("example.com")
    answer = fetch(
        default.port("https"), PATH, "mta-sts.example.com", context=default.tls_context()
    )
    config = default.config
    assert answer.body.decode().split("\r\n") == [
        "version: STSv1",
        f"mode: {config.mta_sts.mode}",
        f"mx: {config.public_hostname}",
        f"max_age: {config.mta_sts.max_age}",
        "",
    ]


def test_autoconfig_over_https_too(tls_suite):
    answer = fetch(
        tls_suite.port("https"),
        "/mail/config-v1.1.xml",
        "autoconfig.example.com",
        context=tls_suite.tls_context(),
    )
    assert answer.status == 200
    assert b"<hostname>mail.example.com</hostname>" in answer.body


def test_curl_fetches_the_policy(tls_suite):
    port = tls_suite.port("https")
    code, out = curl(
        "--cacert",
        str(tls_suite.cert_path),
        "-H",
        "Host: mta-sts.example.com",
        "-w",
        "%{http_code}",
        f"https://localhost:{port}{PATH}",
    )
    assert code == 0
    assert out.startswith("version: STSv1\r\nmode: enforce\r\n") and out.endswith("200")
    code, out = curl(
        "-H",
        "Host: mta-sts.example.com",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"http://127.0.0.1:{tls_suite.port('http')}{PATH}",
    )
    assert (code, out) == (0, "404")
