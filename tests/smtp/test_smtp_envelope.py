"""MAIL FROM / RCPT TO argument parsing (RFC 5321 §4.1.2, RFC 6531)."""

import pytest

from mailsuite.smtp.envelope import (
    EnvelopeSyntaxError,
    NeedsSMTPUTF8,
    parse_path_and_params,
    split_command_argument,
)


@pytest.mark.parametrize(
    "text, address, params",
    [
        ("<a@example.com>", "a@example.com", {}),
        ("<>", "", {}),
        (
            "<a@Example.COM> SIZE=100 BODY=8BITMIME",
            "a@example.com",
            {"SIZE": "100", "BODY": "8BITMIME"},
        ),
        ('<"john doe"@example.com>', '"john doe"@example.com', {}),
        ('<"a>b"@example.com>', '"a>b"@example.com', {}),
        ("<@relay.example,@b.example:user@example.com>", "user@example.com", {}),
        ("<user@[192.0.2.1]>", "user@[192.0.2.1]", {}),
        ("<x@bücher.example> SMTPUTF8", "x@xn--bcher-kva.example", {"SMTPUTF8": None}),
        ("<jörg@example.com> smtputf8", "jörg@example.com", {"SMTPUTF8": None}),
    ],
)
def test_valid_paths(text, address, params):
    path, got = parse_path_and_params(text, allow_null=True)
    assert path.address == address
    assert got == params


@pytest.mark.parametrize(
    "text",
    [
        "a@example.com",
        "<a@example.com",
        "<a@example.com>junk",
        "<a..b@example.com>",
        "<.a@example.com>",
        "<a@>",
        "<@example.com>",
        "<a@exa mple.com>",
        "<a@-bad-.example>",
        "<" + "x" * 65 + "@example.com>",
        "<a@example.com> SIZE=",
        "<a@example.com> =1",
    ],
)
def test_invalid_paths(text):
    with pytest.raises(EnvelopeSyntaxError):
        parse_path_and_params(text, allow_null=True)


def test_null_path_only_where_allowed():
    with pytest.raises(EnvelopeSyntaxError):
        parse_path_and_params("<>", allow_null=False)


def test_utf8_needs_smtputf8():
    with pytest.raises(NeedsSMTPUTF8):
        parse_path_and_params("<jörg@example.com>", allow_null=False)
    path, _ = parse_path_and_params("<jörg@example.com>", allow_null=False, smtputf8=True)
    assert path.local == "jörg"


def test_split_command_argument_tolerates_space():
    assert split_command_argument("FROM:<a@b>", "FROM:") == "<a@b>"
    assert split_command_argument("from: <a@b>", "FROM:") == "<a@b>"
    assert split_command_argument("TO:<a@b>", "FROM:") is None
