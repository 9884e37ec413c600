"""Thunderbird autoconfig (config-v1.1.xml) from a running server: what it lists, for which
domains, and that it never depends on the user."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from web_fixtures import PUBLIC_PORTS
from webclient import curl, fetch, raw

pytest_plugins = ["web_fixtures"]  # web

PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")


def servers(body: bytes, kind: str) -> list[tuple[str, str, int, str, str, str]]:
    """(type, hostname, port, socketType, username, authentication) of each <kind> element."""
    provider = ET.fromstring(body).find("emailProvider")
    return [
        (
            element.get("type"),
            element.findtext("hostname"),
            int(element.findtext("port")),
            element.findtext("socketType"),
            element.findtext("username"),
            element.findtext("authentication"),
        )
        for element in provider.findall(kind)
    ]


def expected(web, rows: list[tuple[str, str, str]]) -> list[tuple]:
    host = web.config.public_hostname
    return [
        (
            kind,
            host,
            PUBLIC_PORTS[role],
            socket_type,
            "%EMAILADDRESS%",
            "password-cleartext",
        )
        for kind, role, socket_type in rows
    ]


ALL_INCOMING = [
    ("imap", "imaps", "SSL"),
    ("imap", "imap", "STARTTLS"),
    ("pop3", "pop3s", "SSL"),
    ("pop3", "pop3", "STARTTLS"),
]
ALL_OUTGOING = [("smtp", "submissions", "SSL"), ("smtp", "submission", "STARTTLS")]


@pytest.mark.parametrize("path", PATHS)
def test_autoconfig_lists_every_server_in_preference_order(web, path):
    answer = fetch(
        web.port("http"), path + "?emailaddress=alice%40example.com", "autoconfig.example.com"
    )
    assert answer.status == 200
    assert answer.content_type == "text/xml; charset=utf-8"
    root = ET.fromstring(answer.body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == "example.com"
    assert [d.text for d in provider.findall("domain")] == ["example.com"]
    assert provider.findtext("displayName") == "example.com"
    assert servers(answer.body, "incomingServer") == expected(web, ALL_INCOMING)
    assert servers(answer.body, "outgoingServer") == expected(web, ALL_OUTGOING)
    assert web.config.public_hostname == "mx.test.example"


def test_same_answer_with_or_without_the_address_and_for_any_user(web):
    web.add_user("alice@example.com")  # exists; nobody@ and bob@ do not
    port = web.port("http")
    reference = fetch(
        port, PATHS[0] + "?emailaddress=alice%40example.com", "autoconfig.example.com"
    )
    assert reference.status == 200
    variants = [
        (PATHS[0], "autoconfig.example.com"),  # no query: the Host names the domain
        (PATHS[0] + "?emailaddress=nobody%40example.com", "autoconfig.example.com"),
        (PATHS[0] + "?emailaddress=Nobody%40EXAMPLE.com.", "autoconfig.example.com"),
        (PATHS[1], "example.com"),
        (PATHS[1], f"example.com:{port}"),
        (PATHS[1], "EXAMPLE.COM."),
        (PATHS[1] + "?emailaddress=bob%40example.com", "example.com"),
        # The address decides, whatever the Host (a proxy, an IP address).
        (PATHS[0] + "?emailaddress=x%40example.com", f"127.0.0.1:{port}"),
        # No usable address in the query: the Host decides.
        (PATHS[0] + "?emailaddress=garbage", "autoconfig.example.com"),
    ]
    for path, host in variants:
        answer = fetch(port, path, host)
        assert (answer.status, answer.body) == (200, reference.body), (path, host)


def test_unknown_domains_get_404(web):
    port = web.port("http")
    for path, host in [
        (PATHS[0] + "?emailaddress=alice%40example.org", "autoconfig.example.org"),
        (PATHS[0] + "?emailaddress=alice%40example.org", "autoconfig.example.com"),
        (PATHS[0], "autoconfig.example.org"),
        (PATHS[1], "example.org"),
        (PATHS[1], "sub.example.com"),
        (PATHS[0], f"127.0.0.1:{port}"),
        (PATHS[0], "[::1]"),
        (PATHS[0], "bad host name"),
    ]:
        answer = fetch(port, path, host)
        assert answer.status == 404, (path, host)
        assert b"example" not in answer.body and len(answer.body) < 100


def test_a_domain_added_while_running_is_served(web):
    port = web.port("http")
    assert fetch(port, PATHS[0], "autoconfig.new.example").status == 404
    web.db.add_domain("new.example")
    answer = fetch(port, PATHS[0], "autoconfig.new.example")
    assert answer.status == 200
    assert ET.fromstring(answer.body).find("emailProvider").get("id") == "new.example"


def test_disabled_roles_are_left_out_and_public_ports_used(make_suite):
    web = make_suite(
        {
            "pop3.listen": [],
            "pop3s.listen": [],
            "submission.listen": [],
            "public.hostname": "mail.example.com",
            "public.ports": {"imaps": 993, "imap": 143, "submissions": 465},
        }
    )
    web.db.add_domain("example.com")
    answer = fetch(web.port("http"), PATHS[1], "example.com")
    assert answer.status == 200
    assert servers(answer.body, "incomingServer") == [
        ("imap", "mail.example.com", 993, "SSL", "%EMAILADDRESS%", "password-cleartext"),
        ("imap", "mail.example.com", 143, "STARTTLS", "%EMAILADDRESS%", "password-cleartext"),
    ]
    assert servers(answer.body, "outgoingServer") == [
        ("smtp", "mail.example.com", 465, "SSL", "%EMAILADDRESS%", "password-cleartext"),
    ]


def test_head_and_other_methods(web):
    port = web.port("http")
    head = fetch(port, PATHS[0], "autoconfig.example.com", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.content_type == "text/xml; charset=utf-8"
    post = fetch(port, PATHS[0], "autoconfig.example.com", method="POST", body=b"x")
    assert post.status == 405
    assert "GET" in post.headers["allow"]


def test_curl_fetches_it_as_thunderbird_would(web):
    port = web.port("http")
    code, out = curl(
        "--resolve",
        f"autoconfig.example.com:{port}:127.0.0.1",
        "-w",
        "\n%{http_code} %{content_type}",
        f"http://autoconfig.example.com:{port}/mail/config-v1.1.xml"
        "?emailaddress=alice%40example.com",
    )
    assert code == 0
    body, _, status = out.rpartition("\n")
    assert status == "200 text/xml; charset=utf-8"
    assert servers(body.encode(), "incomingServer") == expected(web, ALL_INCOMING)


def test_international_domain_names_are_a_labels(web):
    web.db.add_domain("bücher.example")
    port = web.port("http")
    for path, host in [
        (PATHS[0] + "?emailaddress=anna%40B%C3%BCcher.example", "autoconfig.example.net"),
        (PATHS[0], "autoconfig.xn--bcher-kva.example"),
    ]:
        answer = fetch(port, path, host)
        assert answer.status == 200, (path, host)
        provider = ET.fromstring(answer.body).find("emailProvider")
        assert provider.get("id") == provider.findtext("domain") == "xn--bcher-kva.example"


def test_absolute_form_targets_name_the_domain(web):
    """Through an HTTP proxy (as the Thunderbird end-to-end test sets it up), the request line
    carries the URL, whose host counts, not the Host header (RFC 9112 §3.2.2)."""
    port = web.port("http")
    reference = fetch(port, PATHS[0], "autoconfig.example.com")
    for target, host, status in [
        ("http://autoconfig.example.com/mail/config-v1.1.xml", f"127.0.0.1:{port}", 200),
        ("HTTP://example.com:80/.well-known/autoconfig/mail/config-v1.1.xml", "x.test", 200),
        ("http://autoconfig.example.org/mail/config-v1.1.xml", "autoconfig.example.com", 404),
        ("http://autoconfig.example.com", "autoconfig.example.com", 404),  # path "/"
    ]:
        request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        answer = raw(port, request.encode())
        assert answer.status == status, target
        if status == 200:
            assert answer.body == reference.body
    code, out = curl(
        "-x",
        f"http://127.0.0.1:{port}",
        "http://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=alice%40example.com",
    )
    assert code == 0 and out.encode() == reference.body


def serve(suite, site):
    """Listen with ``site`` on a free port of 127.0.0.1; the listening port (IListeningPort)."""
    from twisted.internet import reactor

    return suite.reactor.call(reactor.listenTCP, 0, site, interface="127.0.0.1")


def test_listeners_on_port_0_are_told_by_their_bound_port(make_suite):
    """The composition root may give make_site ``listening_port``: a listener configured on
    port 0 (the kernel picks) is then described with the port it got; without it, such a
    listener is left out rather than described as port 0."""
    from mailsuite.web.site import make_site

    suite = make_suite({})  # every role on port 0, no public.ports
    suite.db.add_domain("example.com")
    with_ports = make_site(suite.config, suite.db, None, suite.service.listening_port)
    without = make_site(suite.config, suite.db, None)
    listeners = [serve(suite, with_ports), serve(suite, without)]
    try:
        answer = fetch(listeners[0].getHost().port, PATHS[0], "autoconfig.example.com")
        assert answer.status == 200
        host = suite.config.public_hostname
        assert servers(answer.body, "incomingServer") == [
            (kind, host, suite.port(role), socket_type, "%EMAILADDRESS%", "password-cleartext")
            for kind, role, socket_type in ALL_INCOMING
        ]
        assert fetch(listeners[1].getHost().port, PATHS[0], "autoconfig.example.com").status == 404
    finally:
        for listening in listeners:
            suite.reactor.call(listening.stopListening)
