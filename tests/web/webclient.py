"""Small HTTP clients for the web tests: urllib with an explicit Host header (the server picks
the mail domain from it), a raw socket for requests no polite client sends, and curl."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(
    port: int,
    path: str,
    host: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """One request with urllib to 127.0.0.1 (https: to localhost, which the test certificate
    covers), ``Host: host``; an HTTP error status is an Answer too."""
    scheme, address = ("https", "localhost") if context is not None else ("http", "127.0.0.1")
    request = urllib.request.Request(
        f"{scheme}://{address}:{port}{path}",
        data=body,
        method=method,
        headers={"Host": host, **(headers or {})},
    )
    handlers: list = [_NoRedirect()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=10) as response:
            return Answer(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, _lower(error.headers), error.read())


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def raw(port: int, data: bytes, timeout: float = 10) -> Answer:
    """Send ``data`` as it is (as much of it as the server takes) and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: its answer is still there to read
        return read_response(sock)


class Connection:
    """A socket read as a stream of responses (pipelining: one buffer for all of them)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def makefile(self, mode: str) -> _KeptOpen:
        return _KeptOpen(self.file)

    def read_response(self) -> Answer:
        response = http.client.HTTPResponse(self)  # type: ignore[arg-type]
        response.begin()
        return Answer(response.status, _lower(response.headers), response.read())


class _KeptOpen:
    """The connection's buffered file, which HTTPResponse may "close" after each response."""

    def __init__(self, file) -> None:
        self._file = file

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def close(self) -> None:
        pass


def read_response(sock: socket.socket) -> Answer:
    return Connection(sock).read_response()


def curl(*args: str) -> tuple[int, str]:
    """curl's exit code and output (``-s``, a 10 s limit)."""
    from support.tools import tool_or_skip

    result = subprocess.run(
        [tool_or_skip("curl"), "-s", "--max-time", "10", *args],
        capture_output=True,
        timeout=20,
    )
    return result.returncode, result.stdout.decode("utf-8")  # CRLF kept as sent
