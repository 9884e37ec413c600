"""The sandbox's pure parts, without a server: outcomes, the envelope fields, the capture
Maildir's read side, the JSON of a message, the capture address, the logins."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from zope.interface import Interface

from mailsuite.accounts.cred import IMailUser
from mailsuite.config import ConfigError, load_config
from mailsuite.sandbox.capture import CaptureMailbox, valid_key
from mailsuite.sandbox.describe import detail, summary
from mailsuite.sandbox.envelope import envelope_headers, read_envelope
from mailsuite.sandbox.login import make_sandbox_portal
from mailsuite.sandbox.outcomes import ACCEPT, BOUNCE, DEFER, REJECT, outcome, refusal
from mailsuite.sandbox.settings import capture_address, capture_root, turn_on


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("bounce-1@x.example", BOUNCE),
        ("BOUNCE@x.example", BOUNCE),
        ("defer-a.b@x.example", DEFER),
        ("reject-me@x.example", REJECT),
        ('"reject-q"@x.example', REJECT),
        ("bouncer@x.example", ACCEPT),
        ("user-bounce-1@x.example", ACCEPT),
        ("rejected@x.example", ACCEPT),
    ],
)
def test_outcome_by_local_part(address, expected):
    assert outcome(address) == expected


def test_refusals():
    assert refusal("ok@x.example") is None and refusal("bounce-1@x.example") is None
    assert (refusal("defer-1@x.example").code, refusal("defer-1@x.example").enhanced) == (
        450,
        "4.2.0",
    )
    assert (refusal("reject-1@x.example").code, refusal("reject-1@x.example").enhanced) == (
        550,
        "5.1.1",
    )


def test_envelope_round_trip_ignores_forged_fields_later():
    head = (
        b"Return-Path: <a@b.example>\r\n"
        + envelope_headers("a@b.example", ["c@d.example", "e@f.example", "c@d.example"])
        + b"Received: from x\r\n\tby y\r\n"
        + b"X-Sandbox-Envelope-From: <forged@evil.example>\r\n"
        + b"X-Sandbox-Envelope-To: <forged@evil.example>\r\n\r\n"
    )
    envelope = read_envelope(head)
    assert envelope.sender == "a@b.example"
    assert envelope.recipients == ["c@d.example", "e@f.example"]
    assert read_envelope(head.replace(b"\r\n", b"\n")) == envelope
    assert read_envelope(b"Subject: appended by IMAP\r\n\r\n") is None
    assert read_envelope(envelope_headers("", ["ü@ß.example"])).recipients == ["ü@ß.example"]


@pytest.mark.parametrize(
    "key",
    ["", ".", "..", ".index", "a/b", "a:2,S", "x..y", "a\x00b", "é", "a" * 300],
)
def test_unsafe_keys(key):
    assert not valid_key(key)


def test_capture_mailbox_read_side(tmp_path):
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    later = "1700000002.M000001P7Q2.host,S=10"
    earlier = "1700000001.M999999P7Q1.host,S=10"
    (tmp_path / "new" / later).write_bytes(b"Subject: 2\r\n\r\n")
    (tmp_path / "cur" / f"{earlier}:2,S").write_bytes(b"Subject: 1\r\n\r\n")
    (tmp_path / "cur" / ".hidden").write_bytes(b"")
    mailbox = CaptureMailbox(tmp_path)
    assert [f.key for f in mailbox.files()] == [earlier, later]
    assert mailbox.read(earlier) == b"Subject: 1\r\n\r\n"
    assert mailbox.header_block(later) == b"Subject: 2\r\n\r\n"
    assert mailbox.read("../../etc/passwd") is None
    assert mailbox.delete(earlier) and not mailbox.delete(earlier)
    assert mailbox.clear() == 1
    assert mailbox.files() == [] and os.listdir(tmp_path / "cur") == [".hidden"]
    assert CaptureMailbox(tmp_path / "missing").files() == []


def test_summary_decodes_fields():
    head = (
        envelope_headers("a@b.example", ["c@d.example"])
        + b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        + b"From: =?utf-8?b?Wm/Dqw==?= <zoe@x.example>\r\n"
        + "To: Jürgen <j@x.example>\r\n\r\n".encode()
    )
    entry = summary("k", head, 123, 0.0)
    assert entry["envelope"] == {"sender": "a@b.example", "recipients": ["c@d.example"]}
    assert (entry["subject"], entry["from"], entry["to"]) == (
        "Grüße",
        "Zoë <zoe@x.example>",
        "Jürgen <j@x.example>",
    )
    assert (entry["cc"], entry["size"], entry["captured_at"]) == (
        None,
        123,
        "1970-01-01T00:00:00+00:00",
    )


def test_detail_of_a_delivery_status_notification():
    from mailsuite.queue.dsn import FAILED_ACTION, build_report

    report = build_report(
        reporting_mta="mx.example",
        recipient="a@b.example",
        queue_id="Q1",
        arrival=0.0,
        action=FAILED_ACTION,
        records=[{"address": "x@y.example", "status": "5.1.1", "last_response": "no"}],
        original_headers=b"Subject: original\r\n",
        now=0.0,
        lifetime=60,
    )
    message = detail("k", report)
    types = [part["content_type"] for part in message["parts"]]
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = message["parts"][1]["text"]
    assert "Final-Recipient: rfc822; x@y.example\n" in status and "Status: 5.1.1" in status
    assert message["parts"][2]["text"] == "Subject: original\n"
    assert message["envelope"] == {"sender": None, "recipients": []}


def test_detail_survives_bad_input():
    data = (
        b"Subject: =?x-unknown?q?abc?=\r\nTo: <<<@@@>>>, \r\nContent-Type: text/plain;"
        b" charset=x-bogus\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\xff\r\n"
    )
    message = detail("k", data)
    assert [name for name, _ in message["headers"]][:2] == ["Subject", "To"]
    assert message["parts"][0]["charset"] == "x-bogus"


def test_capture_address_and_switch(tmp_path):
    config = load_config(None, tmp_path)
    assert capture_address(config.sandbox) == "sandbox@sandbox.invalid"
    assert capture_root(config) == tmp_path.resolve() / "mail" / "sandbox.invalid" / "sandbox"
    assert not config.sandbox.enabled and turn_on(config).sandbox.enabled
    upper = replace(config.sandbox, login="Tester")
    assert capture_address(upper) == "tester@sandbox.invalid"
    for bad in ("", "a/b", "../x", "me@example.com", "with space"):
        with pytest.raises(ConfigError, match="sandbox.login"):
            capture_address(replace(config.sandbox, login=bad))


class IMailbox(Interface):
    """Stands for the store's IMAP/POP3 avatar interfaces."""


def login(portal, user: str, password: str, interface=IMailUser):
    results = []
    portal.login(UsernamePassword(user.encode(), password.encode()), None, interface).addBoth(
        results.append
    )
    return results[0]


@pytest.fixture
def settings(tmp_path):
    return load_config(None, tmp_path).sandbox


def test_fixed_login_opens_the_capture_everywhere(settings):
    portal = make_sandbox_portal(settings, "sandbox@sandbox.invalid", {IMailbox: lambda a: a})
    assert login(portal, "sandbox", "sandbox", IMailbox)[1] == "sandbox@sandbox.invalid"
    assert login(portal, "sandbox", "sandbox")[1].address == "sandbox@sandbox.invalid"


def test_any_login_is_for_submission_only(settings):
    portal = make_sandbox_portal(settings, "sandbox@sandbox.invalid", {IMailbox: lambda a: a})
    assert login(portal, "api-key", "")[1].address == "api-key"
    for user, password in (("api-key", "x"), ("sandbox@sandbox.invalid", "x"), ("sandbox", "x")):
        assert login(portal, user, password, IMailbox).check(UnauthorizedLogin)
    assert login(portal, "bad\r\nname", "x").check(UnauthorizedLogin)
    assert login(portal, "x" * 400, "x").check(UnauthorizedLogin)


def test_only_the_fixed_login_without_accept_any_login(settings):
    strict = replace(settings, accept_any_login=False, password="secret")
    portal = make_sandbox_portal(strict, "sandbox@sandbox.invalid", {IMailbox: lambda a: a})
    assert login(portal, "sandbox", "secret")[1].address == "sandbox@sandbox.invalid"
    assert login(portal, "sandbox", "sandbox").check(UnauthorizedLogin)
    assert login(portal, "other", "secret").check(UnauthorizedLogin)
