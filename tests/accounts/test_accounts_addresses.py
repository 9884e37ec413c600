"""Syntax and canonical forms of domains and addresses."""

import pytest

from mailsuite.accounts.addresses import (
    AddressError,
    normalize_catchall,
    normalize_domain,
    normalize_mailbox,
    normalize_remote_address,
    split_address,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("mail-1.example.org", "mail-1.example.org"),
        ("r3---sn-abc.example.com", "r3---sn-abc.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.Example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("faß.de", "xn--fa-hia.de"),
        ("bücher。example", "xn--bcher-kva.example"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (".".join(["a" * 61] * 4), ".".join(["a" * 61] * 4)),  # 247 characters
    ],
)
def test_normalize_domain_accepts(text, expected):
    assert normalize_domain(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "a..b",
        ".example.com",
        "example.com..",
        "-a.com",
        "a-.com",
        "a_b.com",
        "a b.com",
        "exa/mple.com",
        "a@b.com",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4),  # 255 characters
        "[127.0.0.1]",
        "[IPv6:::1]",
        "☃.net",
        "xn--zz!.com",
        "xn--a-ecp.ru\x00",
    ],
)
def test_normalize_domain_rejects(text):
    with pytest.raises(AddressError):
        normalize_domain(text)


def test_address_error_is_a_value_error_with_a_readable_message():
    with pytest.raises(ValueError, match=r"invalid domain 'a\.\.b'"):
        normalize_domain("a..b")


def test_split_address_splits_at_the_last_at_sign():
    assert split_address('"a@b"@example.com') == ('"a@b"', "example.com")
    assert split_address("user@example.com") == ("user", "example.com")
    with pytest.raises(AddressError, match="missing '@'"):
        split_address("no-at-sign")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bob@example.com", "bob@example.com"),
        ("Bob.Smith@Example.COM", "bob.smith@example.com"),
        ("user+tag@example.com", "user+tag@example.com"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("a!#$%&'*+=?^_`{|}~-z@example.com", "a!#$%&'*+=?^_`{|}~-z@example.com"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
        ("root@localhost", "root@localhost"),
    ],
)
def test_normalize_mailbox_accepts(text, expected):
    assert normalize_mailbox(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "../x@d",
        "..@example.com",
        ".bob@example.com",
        "bob.@example.com",
        "a..b@example.com",
        "a/b@d",
        "a\\b@example.com",
        "@example.com",
        "bob@",
        "bob",
        "ü@example.com",
        "\u212a@example.com",  # KELVIN SIGN lowercases to ASCII 'k': must not sneak in
        '"bob"@example.com',
        "a b@example.com",
        "a\x00b@example.com",
        "x" * 65 + "@example.com",
        "bob@a..b",
        "bob@[127.0.0.1]",
    ],
)
def test_normalize_mailbox_rejects(text):
    with pytest.raises(AddressError):
        normalize_mailbox(text)


def test_normalize_catchall():
    assert normalize_catchall("@Example.COM") == "@example.com"
    assert normalize_catchall("@bücher.example") == "@xn--bcher-kva.example"
    for bad in ("example.com", "@", "@a..b", "x@example.com"):
        with pytest.raises(AddressError):
            normalize_catchall(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bob@Example.COM", "Bob@example.com"),
        ("ü@example.com", "ü@example.com"),
        ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
        ("a/b@example.com", "a/b@example.com"),
        ('"john doe"@example.com', '"john doe"@example.com'),
        ('"a@b"@example.com', '"a@b"@example.com'),
        ('"quote\\"inside"@example.com', '"quote\\"inside"@example.com'),
        ("first.last@example.com", "first.last@example.com"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ],
)
def test_normalize_remote_address_accepts(text, expected):
    assert normalize_remote_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "@example.com",
        "bob@",
        "bob",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a b@example.com",
        "a\x00b@example.com",
        "a\x85b@example.com",  # C1 control
        '"unterminated@example.com',
        '"a"b@example.com',
        '"bad \x01 char"@example.com',
        "a\ud800b@example.com",  # lone surrogate
        "x" * 65 + "@example.com",
        "ü" * 33 + "@example.com",  # 66 octets in UTF-8
        "bob@[127.0.0.1]",
        "bob@a..b",
        "x" * 64 + "@" + ".".join(["a" * 63] * 3) + ".com",  # over 254 octets
    ],
)
def test_normalize_remote_address_rejects(text):
    with pytest.raises(AddressError):
        normalize_remote_address(text)
