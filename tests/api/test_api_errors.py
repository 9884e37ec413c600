"""Every refusal of the send API is a JSON error with its own status, and sends nothing: no key,
a bad or revoked key, bad JSON, wrong types, unknown fields, someone else's address, too big,
too many recipients, unknown recipients, reserved headers."""

from __future__ import annotations

import base64
import http.client
import json
import socket

import pytest
from api_client import ALICE, BOB, MESSAGES, admin, call, new_key, send_json, status_of

HELLO = {"from": ALICE, "to": BOB, "subject": "hi", "text": "hello"}


def refused(answer, status: int, code: str) -> str:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert b"Traceback" not in answer.body
    assert answer.error == code, answer.json
    return answer.json["error"]["message"]


@pytest.fixture
def key(suite):
    return new_key(suite)


def test_keys_missing_malformed_unknown_revoked_or_of_a_disabled_user(suite, key):
    answer = send_json(suite, None, HELLO)
    refused(answer, 401, "unauthorized")
    assert answer.headers["www-authenticate"] == 'Bearer realm="mailsuite"'
    refused(send_json(suite, "not-a-key", HELLO), 401, "unauthorized")
    refused(send_json(suite, "ms_" + "A" * 32, HELLO), 401, "unauthorized")
    refused(
        send_json(suite, key[:-1] + ("B" if key[-1] != "B" else "C"), HELLO), 401, "unauthorized"
    )
    basic = {"Authorization": "Basic " + base64.b64encode(b"alice:x").decode()}
    refused(
        call(suite, "POST", MESSAGES, json.dumps(HELLO).encode(), headers=basic),
        401,
        "unauthorized",
    )

    assert send_json(suite, key, HELLO).status == 202
    key_id = key[3:11]
    assert admin(suite, "apikey", "revoke", key_id) == f"revoked API key {key_id} of {ALICE}\n"
    refused(send_json(suite, key, HELLO), 401, "unauthorized")

    other = new_key(suite)
    suite.db.set_enabled(ALICE, False)
    refused(send_json(suite, other, HELLO), 401, "unauthorized")
    assert len(suite.messages(BOB)) == 1


@pytest.mark.parametrize(
    "body, code, words",
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"\xff\xfe", "invalid_json", "not valid JSON"),
        (b"[1, 2]", "invalid_type", "JSON object"),
        (json.dumps({**HELLO, "to": 5}).encode(), "invalid_type", "to:"),
        (json.dumps({**HELLO, "to": [BOB, 7]}).encode(), "invalid_type", "to:"),
        (json.dumps({**HELLO, "subject": ["x"]}).encode(), "invalid_type", "subject:"),
        (json.dumps({**HELLO, "headers": {"X-A": 1}}).encode(), "invalid_type", "headers:"),
        (json.dumps({**HELLO, "atachments": []}).encode(), "unknown_field", "'atachments'"),
        (json.dumps({"to": BOB, "text": "x"}).encode(), "missing_field", "from:"),
        (
            json.dumps({**HELLO, "attachments": [{"filename": "a", "content": "%%%"}]}).encode(),
            "invalid_base64",
            "attachments[0].content",
        ),
        (
            json.dumps({**HELLO, "attachments": [{"content": "", "size": 1}]}).encode(),
            "unknown_field",
            "'size'",
        ),
    ],
)
def test_malformed_requests_are_400(suite, key, body, code, words):
    message = refused(call(suite, "POST", MESSAGES, body, key=key), 400, code)
    assert words in message
    assert suite.messages(BOB) == []


@pytest.mark.parametrize(
    "fields, code",
    [
        ({**HELLO, "to": "bob@"}, "invalid_address"),
        ({**HELLO, "to": "Bob <bob@example.com"}, "invalid_address"),
        ({**HELLO, "to": "bøb@example.com"}, "invalid_address"),
        ({**HELLO, "to": [], "cc": []}, "no_recipients"),
        ({**HELLO, "to": [f"r{n}@remote.example" for n in range(6)]}, "too_many_recipients"),
        ({**HELLO, "to": "nobody@example.com"}, "unknown_recipient"),
        ({**HELLO, "subject": "hi\r\nBcc: eve@evil.example"}, "invalid_header"),
        ({**HELLO, "headers": {"Received": "from nowhere"}}, "header_not_allowed"),
        ({**HELLO, "headers": {"From": "x@example.com"}}, "header_not_allowed"),
        ({**HELLO, "headers": {"Bad Name": "x"}}, "invalid_header"),
    ],
)
def test_unacceptable_messages_are_422(suite, key, fields, code):
    refused(send_json(suite, key, fields), 422, code)
    assert suite.messages(BOB) == []


def test_someone_elses_address_is_403(suite, key):
    suite.db.add_alias("shared@example.com", BOB)  # an alias of bob's: not alice's
    for sender in (BOB, "Bob <bob@example.com>", "shared@example.com", "x@remote.example"):
        message = refused(send_json(suite, key, {**HELLO, "from": sender}), 403, "sender_not_owned")
        assert "alice@example.com may not send as" in message
    raw = b"From: bob@example.com\r\nTo: bob@example.com\r\n\r\nspoof\r\n"
    answer = call(
        suite, "POST", f"{MESSAGES}?from={ALICE}", raw, key=key, content_type="message/rfc822"
    )
    refused(answer, 403, "sender_not_owned")  # the header From: counts too
    assert suite.messages(BOB) == []


def test_too_big_is_413_at_every_stage(suite, key):
    limit = suite.config.limits.message_size
    big = {**HELLO, "text": "x" * 76 + "\n"}
    big["text"] *= limit // 77 + 1
    refused(send_json(suite, key, big), 413, "message_too_large")
    raw = b"From: alice@example.com\r\nTo: bob@example.com\r\n\r\n" + b"y" * limit
    answer = call(suite, "POST", MESSAGES, raw, key=key, content_type="message/rfc822")
    refused(answer, 413, "message_too_large")

    # Past what any message of the limit can take as JSON: refused from its Content-Length,
    # before the body is read, in JSON all the same; without a key, past 64 KiB.
    for authorization, length in ((f"Bearer {key}", limit * 3), (None, 100_000)):
        head = f"POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        if authorization:
            head += f"Authorization: {authorization}\r\n"
        head += f"Content-Length: {length}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", suite.port("http")), timeout=10) as sock:
            sock.sendall(head.encode())
            answer = http.client.HTTPResponse(sock)  # it comes before any of the body is sent
            answer.begin()
            assert answer.status == 413 and answer.headers["content-type"] == "application/json"
            assert json.loads(answer.read())["error"]["code"] == "too_large"
    assert suite.messages(BOB) == []


def test_other_media_types_and_query_parameters(suite, key):
    answer = call(
        suite,
        "POST",
        MESSAGES,
        b"from=alice",
        key=key,
        content_type="application/x-www-form-urlencoded",
    )
    refused(answer, 415, "unsupported_media_type")
    raw = b"From: alice@example.com\r\nTo: bob@example.com\r\n\r\nhi\r\n"
    answer = call(
        suite, "POST", f"{MESSAGES}?tp={BOB}", raw, key=key, content_type="message/rfc822"
    )
    refused(answer, 400, "unknown_field")
    answer = call(
        suite,
        "POST",
        MESSAGES,
        b"To: bob@example.com\r\n\r\nhi\r\n",
        key=key,
        content_type="message/rfc822",
    )
    refused(answer, 422, "missing_from")


def test_status_is_only_for_the_keys_user(suite, key):
    sent = send_json(suite, key, HELLO).json
    bobs = new_key(suite, BOB)
    refused(status_of(suite, bobs, sent["id"]), 404, "not_found")
    refused(status_of(suite, key, "0123456789ABCDEF"), 404, "not_found")
    refused(status_of(suite, key, "../../etc/passwd"), 404, "not_found")
    refused(call(suite, "GET", f"{MESSAGES}/{sent['id']}"), 401, "unauthorized")
    assert status_of(suite, key, sent["id"]).status == 200


def test_the_api_can_be_switched_off(make_suite):
    suite = make_suite({"api.enabled": False})
    suite.add_user(ALICE)
    answer = send_json(suite, new_key(suite), HELLO)
    assert answer.status == 404
