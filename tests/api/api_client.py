"""The send API tests' clients: mailsuite-admin in-process (keys, webhooks), urllib, and curl."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from support.tools import tool_or_skip

from mailsuite.admin.cli import main as admin_main

ALICE, BOB = "alice@example.com", "bob@example.com"
MESSAGES = "/api/v1/messages"


def run_admin(suite, *args: str) -> tuple[int, str, str]:
    """mailsuite-admin against the suite's data directory: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = admin_main(["--data-dir", str(suite.config.data_dir), *args])
    return code, out.getvalue(), err.getvalue()


def admin(suite, *args: str) -> str:
    """The output of a mailsuite-admin run that must succeed."""
    code, out, err = run_admin(suite, *args)
    assert (code, err) == (0, ""), err
    return out


def new_key(suite, user: str = ALICE, *extra: str) -> str:
    """A key made by ``mailsuite-admin apikey add`` (its first output line)."""
    return admin(suite, "apikey", "add", user, *extra).splitlines()[0]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The error code of a JSON error answer."""
        return self.json["error"]["code"]


def call(
    suite,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    key: str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request with urllib; an HTTP error status is an Answer too."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if body is not None:
        sent.setdefault("Content-Type", content_type)
    request = urllib.request.Request(
        f"http://127.0.0.1:{suite.port('http')}{path}", data=body, method=method, headers=sent
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Answer(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, _lower(error.headers), error.read())


def send_json(suite, key: str | None, fields: dict[str, Any]) -> Answer:
    return call(suite, "POST", MESSAGES, json.dumps(fields).encode(), key=key)


def status_of(suite, key: str, message_id: str) -> Answer:
    return call(suite, "GET", f"{MESSAGES}/{message_id}", key=key)


def curl(*args: str, stdin: bytes | None = None) -> tuple[int, dict[str, Any] | str]:
    """curl's HTTP status and JSON answer (``-s -w``; a 20 s limit)."""
    result = subprocess.run(
        [tool_or_skip("curl"), "-s", "--max-time", "20", "-w", "\n%{http_code}", *args],
        input=stdin,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    text, _, code = result.stdout.decode("utf-8").rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
