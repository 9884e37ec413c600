"""Clients of a sandbox-mode server for the sandbox tests: its HTTP API (urllib), IMAPS and
POP3S with the fixed login, and the capture Maildir read straight from the disk."""

from __future__ import annotations

import imaplib
import json
import poplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

LOGIN = PASSWORD = "sandbox"  # the [sandbox] defaults
API = "/api/v1/sandbox/messages"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json", self.headers
        return json.loads(self.body)


def http(suite, path: str, method: str = "GET") -> Answer:
    """One request with urllib to the http role; an error status is an Answer too."""
    request = urllib.request.Request(f"http://127.0.0.1:{suite.port('http')}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return Answer(response.status, headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(
                error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
            )


def listing(suite) -> list[dict[str, Any]]:
    answer = http(suite, API)
    assert answer.status == 200
    return answer.json()


def imaps(suite, user: str = LOGIN, password: str = PASSWORD) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", suite.port("imaps"), ssl_context=suite.tls_context(), timeout=10
    )
    client.login(user, password)
    return client


def pop3s(suite, user: str = LOGIN, password: str = PASSWORD) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(
        "127.0.0.1", suite.port("pop3s"), context=suite.tls_context(), timeout=10
    )
    client.user(user)
    client.pass_(password)
    return client


def captured(suite) -> list[bytes]:
    """The capture Maildir's messages straight from the disk (new/ and cur/), oldest first."""
    root = suite.maildir(f"{LOGIN}@sandbox.invalid")
    files = [p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir()]
    return [p.read_bytes() for p in sorted(files, key=lambda p: p.name)]
