"""The listener's bounds: oversized or malformed requests get a short 4xx (never a traceback),
slow clients are cut off, and the server goes on serving everyone else."""

from __future__ import annotations

import http.client
import socket
import time

from webclient import Connection, fetch, raw, read_response

import mailsuite.web.limits as limits

pytest_plugins = ["web_fixtures"]  # web


def healthy(web) -> bool:
    answer = fetch(web.port("http"), "/healthz", "mx.test.example")
    return (answer.status, answer.body, answer.content_type) == (
        200,
        b"ok\n",
        "text/plain; charset=utf-8",
    )


def test_healthz_and_short_404s(web):
    assert healthy(web)
    port = web.port("http")
    for path in (
        "/",
        "/nothing",
        "/healthz/",
        "/healthz/x",
        "//healthz",
        "/mail/",
        "/.well-known/",
    ):
        answer = fetch(port, path, "mx.test.example")
        assert (answer.status, answer.body) == (404, b"not found\n"), path
    answer = fetch(port, "/healthz", "mx.test.example", method="DELETE")
    assert answer.status == 405 and answer.headers["allow"] == "GET, HEAD"


def request_with(headers: list[str], path: str = "/healthz") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: mx.test.example", *headers, "", ""]
    return "\r\n".join(lines).encode()


BAD_REQUESTS = [
    ("200 headers", request_with([f"X-Header-{i}: {i}" for i in range(200)]), 431),
    ("100 KB header line", request_with(["X-Big: " + "a" * 100_000]), 431),
    ("30 KB head", request_with([f"X-Header-{i}: " + "b" * 1000 for i in range(30)]), 431),
    ("20 KB request line", request_with([], "/" + "c" * 20_000), 414),
    ("no request line", b"NONSENSE\r\n\r\n", 400),
    ("bad header", b"GET /healthz HTTP/1.1\r\nBroken header line\r\n\r\n", 400),
    ("bad length", b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    ("bad chunk", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
]


def test_bad_requests_get_4xx_and_the_server_goes_on(web):
    for name, request_bytes, status in BAD_REQUESTS:
        answer = raw(web.port("http"), request_bytes)
        assert answer.status == status, name
        assert answer.headers["connection"] == "close", name
        assert len(answer.body) < 100 and b"Traceback" not in answer.body, name
        assert healthy(web), name


def test_within_the_limits_is_fine(web):
    answer = raw(web.port("http"), request_with([f"X-Header-{i}: {i}" for i in range(80)]))
    assert answer.status == 200


def test_keep_alive_and_pipelining(web):
    connection = http.client.HTTPConnection("127.0.0.1", web.port("http"), timeout=10)
    for _ in range(3):
        connection.request("GET", "/healthz", headers={"Host": "mx.test.example"})
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
    connection.close()
    with socket.create_connection(("127.0.0.1", web.port("http")), timeout=10) as sock:
        sock.sendall(request_with([]) * 2 + request_with([], "/missing"))
        responses = Connection(sock)
        assert [responses.read_response().status for _ in range(3)] == [200, 200, 404]


def test_slow_requests_are_cut_off(web, monkeypatch):
    monkeypatch.setattr(limits, "REQUEST_DEADLINE", 0.3)
    with socket.create_connection(("127.0.0.1", web.port("http")), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: mx.test")
        time.sleep(0.2)
        sock.sendall(b".example\r\n")  # a byte now and then does not extend the deadline
        assert read_response(sock).status == 408
    assert healthy(web)


def test_idle_connections_are_closed(web):
    site = web.service.site
    assert site.timeOut == limits.IDLE_TIMEOUT == 60
    assert site.displayTracebacks is False
    web.reactor.call(setattr, site, "timeOut", 0.3)
    try:
        with socket.create_connection(("127.0.0.1", web.port("http")), timeout=10) as sock:
            sock.sendall(request_with([]))
            assert read_response(sock).status == 200
            assert sock.recv(1) == b""  # closed by the server, well before the 10 s timeout
    finally:
        web.reactor.call(setattr, site, "timeOut", limits.IDLE_TIMEOUT)
