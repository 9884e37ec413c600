"""ACME HTTP-01: the challenge files the ACME client writes are served, nothing else is."""

from __future__ import annotations

import os

from webclient import curl, fetch

pytest_plugins = ["web_fixtures"]  # web

PREFIX = "/.well-known/acme-challenge/"
TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
KEY_AUTHORIZATION = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def write_challenge(web, token: str = TOKEN, content: str = KEY_AUTHORIZATION):
    directory = web.config.acme_dir / "challenges"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / token).write_text(content)
    return directory


def test_challenge_file_is_served_for_any_host(web):
    write_challenge(web)
    for host in ("mx.test.example", "autoconfig.example.com", "unknown.example.org"):
        answer = fetch(web.port("http"), PREFIX + TOKEN, host)
        assert answer.status == 200
        assert answer.body == KEY_AUTHORIZATION.encode()
        assert answer.content_type == "application/octet-stream"


def test_absent_token_and_no_directory_are_404(web):
    assert fetch(web.port("http"), PREFIX + TOKEN, "mx.test.example").status == 404
    write_challenge(web)
    assert fetch(web.port("http"), PREFIX + "other", "mx.test.example").status == 404


def test_nothing_outside_the_directory(web):
    directory = write_challenge(web)
    secret = web.config.data_dir / "secret"
    secret.write_text("secret")
    os.symlink(secret, directory / "link")
    (directory / "subdir").mkdir()
    port = web.port("http")
    for path in [
        PREFIX + "..%2fsecret",
        PREFIX + "%2e%2e%2fsecret",
        PREFIX + "..%2F..%2Fsecret",
        PREFIX + "%2e%2e/secret",
        PREFIX + "../secret",
        PREFIX + "link",  # a symlink is not followed
        PREFIX + "subdir",
        PREFIX + "",
        PREFIX + TOKEN + "/",
        PREFIX + TOKEN + "%00",
        PREFIX + ".",
    ]:
        answer = fetch(port, path, "mx.test.example")
        assert answer.status == 404, path
        assert b"secret" not in answer.body
    # curl --path-as-is sends the dot segments unresolved.
    code, out = curl(
        "--path-as-is", "-w", "%{http_code}", f"http://127.0.0.1:{port}{PREFIX}../../secret"
    )
    assert code == 0 and out.endswith("404") and "secret\n" not in out


def test_curl_fetches_the_challenge(web):
    write_challenge(web)
    code, out = curl(f"http://127.0.0.1:{web.port('http')}{PREFIX}{TOKEN}")
    assert (code, out) == (0, KEY_AUTHORIZATION)
