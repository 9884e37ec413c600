"""Header parsing fast paths agree with the slow, general code they stand in for."""

from __future__ import annotations

import email.utils
import random

import pytest

from mailsuite.store import address_list, mime


def _pairs(addresses):
    """[name, route, mailbox, host] lists as email.utils.getaddresses gives them."""
    return [(a[0] or "", f"{a[2]}@{a[3]}") for a in addresses]


SIMPLE_OR_NOT = [
    "Sender Number 12 <s@e.org>",
    '"Doe, Jane" <jane@example.org>, Bob <bob@x.y>',
    "J. Smith <a@b.c>",
    "a@b, c@d",
    "<a@b>",
    "A  B\t <a@b>",
    "=?utf-8?q?J=C3=B6rg?= <j@x.de>",
    "Müller <m@x.de>",
    "a.b@c.d (comment)",
    "Foo <a@b> junk",
    "a..b@c",
    "Foo <a@[1.2.3.4]>",
    "<a@b>,",
    ", a@b",
    "a@b,,c@d",
    "Foo\x0bBar <a@b>",
    "undisclosed-recipients:;",
    "",
]


@pytest.mark.parametrize("value", SIMPLE_OR_NOT)
def test_the_fast_path_agrees_with_the_general_parser_and_email_utils(value):
    fast = mime.simple_addresses(value)
    if fast is not None:
        assert fast == address_list.parse(value)
        assert _pairs(fast) == email.utils.getaddresses([value])


def test_the_fast_path_takes_the_common_forms():
    for value in SIMPLE_OR_NOT[:8]:
        assert mime.simple_addresses(value) is not None, value


def test_the_fast_path_agrees_on_generated_lists():
    rnd = random.Random(7)
    words = ["Foo", "Bar", "J.", ".", "é", " ", "  ", "\t", "\x0b", "\n", ",", "=?x?=", "O'N", "!"]
    atoms = ["a", "b.c", ".", "é", "+t", "x-y"]

    def name():
        return "".join(rnd.choice(words) for _ in range(rnd.randint(0, 4)))

    def addr():
        local = "".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 3)))
        return local + "@" + "".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 3)))

    forms = [
        lambda: f'"{name()}" <{addr()}>',
        lambda: f"{name()} <{addr()}>",
        addr,
        lambda: f"<{addr()}>",
    ]
    taken = 0
    for _ in range(5000):
        value = rnd.choice([",", ", ", " , "]).join(
            rnd.choice(forms)() for _ in range(rnd.randint(1, 3))
        )
        fast = mime.simple_addresses(value)
        if fast is None:
            continue
        taken += 1
        assert fast == address_list.parse(value), value
        assert _pairs(fast) == email.utils.getaddresses([value]), value
    assert taken > 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "undisclosed-recipients:;",
            [[None, None, "undisclosed-recipients", None], [None, None, None, None]],
        ),
        (
            "A Group: a@b.c, \"Q, R\" <q@r.s>; , last@x.y",
            [
                [None, None, "A Group", None],
                [None, None, "a", "b.c"],
                ["Q, R", None, "q", "r.s"],
                [None, None, None, None],
                [None, None, "last", "x.y"],
            ],
        ),
        ("open: a@b", [[None, None, "open", None], [None, None, "a", "b"], [None] * 4]),
        (
            "Old <@r1.example,@r2.example:user@host.example>",
            [["Old", "@r1.example,@r2.example", "user", "host.example"]],
        ),
        (
            "<user-from (comment)@ (comment) domain.org>",
            [["comment", None, "user-from", "domain.org"]],
        ),
        ("a.b@c.d (The (nested) Name)", [["The (nested) Name", None, "a.b", "c.d"]]),
        ('"john doe"@example.com', [[None, None, '"john doe"', "example.com"]]),
        ('"plain"@example.com', [[None, None, "plain", "example.com"]]),
        ("x@[1.2.3.4]", [[None, None, "x", "[1.2.3.4]"]]),
        ("John Q. Public <jqp@x.y>", [["John Q. Public", None, "jqp", "x.y"]]),
        ("local-only", [[None, None, "local-only", ""]]),
        ("Name <>, <a@b>", [[None, None, "a", "b"]]),
        ('"unterminated <a@b>', [[None, None, '"unterminated <a@b>"', ""]]),
        ("(only a comment)", []),
        ("", []),
    ],
)
def test_address_list_groups_routes_and_comments(value, expected):
    assert address_list.parse(value) == expected


def test_address_list_never_raises_on_junk():
    rnd = random.Random(11)
    alphabet = 'ab@.,;:<>()[]\\" \t\r\né'
    for _ in range(5000):
        value = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
        for address in address_list.parse(value):
            assert len(address) == 4
            assert address[3] is not None or address[0] is None  # markers carry no name


def test_envelope_takes_the_first_of_each_field_and_defaults_sender_to_from():
    fields = mime.parse_header_fields(
        b"Subject: one\r\nFrom: A <a@b>\r\nSubject: two\r\nReply-To: r@b\r\n\r\n"
    )
    env = mime.envelope(fields)
    assert env["subject"] == "one" and env["sender"] == env["from"] == [["A", None, "a", "b"]]
    assert env["reply_to"] == [[None, None, "r", "b"]]
    wire = mime.envelope_imap(env)
    assert wire == (
        b'(NIL "one" (("A" NIL "a" "b")) (("A" NIL "a" "b")) ((NIL NIL "r" "b")) '
        b"NIL NIL NIL NIL NIL)"
    )


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("plain", b'"plain"'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("tab\there", b"{8}\r\ntab\there"),
        ("é", b"{2}\r\n\xc3\xa9"),
        ("x" * 1024, b"{1024}\r\n" + b"x" * 1024),
        (None, b"NIL"),
    ],
)
def test_imap_string_forms(value, wire):
    assert mime.imap_string(value) == wire


def test_envelope_of_a_block_matches_the_envelope_of_all_its_fields_on_generated_headers():
    """The fast path that skips fields ENVELOPE does not read gives the same ENVELOPE as
    parsing every field, on odd lines too: folds, repeats, names with spaces or no colon,
    stray whitespace, 8-bit bytes and lines before any field."""
    rnd = random.Random(11)
    names = [
        "From", "from", "FROM ", "Subject", "Date", "To", "Cc", "Bcc", "Sender", "Reply-To",
        "In-Reply-To", "Message-ID", "Received", "DKIM-Signature", "X-Subject", "Sub ject",
        "", " Subject", "\tFrom", "To\x0b", "message-id\t",
    ]  # fmt: skip
    values = [
        " a@b.example", " Bob <bob@b.example>, c@d.example", "", " =?utf-8?q?x?=", " \xe9t\xe9",
        ":", " one: two", "  spaced  ", " <m1@x>", " Mon, 7 Feb 2022 10:00:00 +0000",
    ]  # fmt: skip
    folds = ["\t", " ", "  ", "\t \t"]
    for _ in range(3000):
        lines = []
        for _ in range(rnd.randint(0, 12)):
            roll = rnd.random()
            if roll < 0.15:
                lines.append(rnd.choice(folds) + rnd.choice(values).strip())
            elif roll < 0.2:
                lines.append(rnd.choice(["no colon here", "x", "\xe9: y"]))
            else:
                lines.append(rnd.choice(names) + ":" + rnd.choice(values))
        block = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        assert mime.envelope_of(block) == mime.envelope(mime.parse_header_fields(block)), block


def test_field_values_match_parsing_every_field_on_generated_headers():
    """One field's values, unfolded, exactly as parse_header_fields lists them: for SEARCH."""
    rnd = random.Random(13)
    names = ["Subject", "subject ", "SUBJECT", "X-Subject", "Sub ject", "", "From", "\x0b"]
    values = [" hello", "", " =?utf-8?q?x?=", " a: b", "  spaced  ", " \xe9"]
    for _ in range(3000):
        lines = []
        for _ in range(rnd.randint(0, 10)):
            roll = rnd.random()
            if roll < 0.2:
                lines.append(rnd.choice(["\t", " "]) + rnd.choice(values).strip())
            elif roll < 0.25:
                lines.append(rnd.choice(["no colon", ":starts with colon"]))
            else:
                lines.append(rnd.choice(names) + ":" + rnd.choice(values))
        block = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        fields = mime.parse_header_fields(block)
        for wanted in ("subject", "from", "x-subject", "sub ject", ""):
            assert mime.field_values(block, wanted) == [v for n, v in fields if n == wanted], (
                block,
                wanted,
            )
