"""RFC 5322 address lists as IMAP's ENVELOPE sees them (RFC 3501 §7.4.2): groups, source routes,
comments, quoted strings and folding.

``email.utils.getaddresses`` flattens groups (``undisclosed-recipients:;`` vanishes, members lose
their group) and drops the route of an obsolete ``<@relay:user@host>`` address, and
``email.headerregistry`` drops routes too; ENVELOPE must keep both. This parser is lenient, as a
mail store must be with what arrives: it never raises, and whatever it cannot place becomes a
mailbox without a host, as email.utils would make it.

An address is ``[name, route, mailbox, host]`` (None for NIL). A group is a start marker
``[None, None, group name, None]``, its members, and an end marker ``[None, None, None, None]``.
Only markers have a NIL host: a mailbox written without "@host" gets an empty host, or a client
would read it as the start of a group.
"""

from __future__ import annotations

import re
from typing import NamedTuple

Address = list[str | None]


class Token(NamedTuple):
    kind: str
    text: str
    spaced: bool  # whitespace or a comment came before it (phrases keep one space there)

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
    | "(?P<qs>(?:[^"\\]|\\.)*)"?            # quoted string (an unterminated one runs to the end)
    | (?P<dl>\[(?:[^\]\\]|\\.)*\]?)          # domain literal
    | (?P<special>[<>:;@,.])
    | (?P<atom>[^ \t\r\n"()<>\[\]:;@,.\\]+|\\.?|[\])])
    """,
    re.VERBOSE | re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_QUOTES = re.compile(r'[ \t()<>\[\]:;@,\\"]')

# Token kinds.
WORD, QUOTED, LITERAL, SPECIAL, COMMENT = "word", "quoted", "literal", "special", "comment"


def parse(value: str) -> list[Address]:
    """The addresses (and group markers) of an address-list header value, in order."""
    tokens = _tokenize(value)
    out: list[Address] = []
    in_group = False
    pos = 0
    while pos < len(tokens):
        item, pos, end = _item(tokens, pos, group_allowed=not in_group)
        if end == ":":
            out.append([None, None, _phrase(item) or "", None])
            in_group = True
            continue
        address = _mailbox(item)
        if address is not None:
            out.append(address)
        if end == ";" and in_group:
            out.append([None, None, None, None])
            in_group = False
    if in_group:  # "group: a@b" without its ";"
        out.append([None, None, None, None])
    return out


def mailboxes(value: str) -> list[Address]:
    """The addresses of ``parse`` without group markers (what SEARCH compares against)."""
    return [address for address in parse(value) if address[3] is not None]


def _tokenize(value: str) -> list[Token]:
    tokens: list[Token] = []
    pos, end = 0, len(value)
    spaced = False
    while pos < end:
        if value[pos] == "(":
            text, pos = _comment(value, pos)
            tokens.append(Token(COMMENT, text, spaced))
            spaced = True
            continue
        match = _TOKEN.match(value, pos)
        if match is None:  # cannot happen (every character is some token); stay safe
            pos += 1
            continue
        pos = match.end()
        kind = match.lastgroup
        if kind == "ws":
            spaced = True
            continue
        if kind == "qs":
            tokens.append(Token(QUOTED, _QUOTED_PAIR.sub(r"\1", match["qs"]), spaced))
        elif kind == "dl":
            tokens.append(Token(LITERAL, match["dl"], spaced))
        elif kind == "special":
            tokens.append(Token(SPECIAL, match["special"], spaced))
        else:
            tokens.append(Token(WORD, match["atom"], spaced))
        spaced = False
    return tokens


def _comment(value: str, pos: int) -> tuple[str, int]:
    """A (possibly nested) comment starting at ``value[pos] == "("``: its text, and the end."""
    depth = 0
    out: list[str] = []
    end = len(value)
    while pos < end:
        char = value[pos]
        if char == "\\" and pos + 1 < end:
            out.append(value[pos + 1])
            pos += 2
            continue
        if char == "(":
            depth += 1
            if depth > 1:
                out.append(char)
        elif char == ")":
            depth -= 1
            if depth == 0:
                return " ".join("".join(out).split()), pos + 1
            out.append(char)
        else:
            out.append(char)
        pos += 1
    return " ".join("".join(out).split()), pos


def _item(tokens: list[Token], pos: int, group_allowed: bool) -> tuple[list[Token], int, str]:
    """Tokens up to the next "," or ";" outside angle brackets (or a group's ":"): the item, the
    position after its end, and that end ("" at the end of the value)."""
    item: list[Token] = []
    angle = False
    seen_at = False
    while pos < len(tokens):
        token = tokens[pos]
        kind, text = token.kind, token.text
        pos += 1
        if kind == SPECIAL:
            if text == "<":
                angle = True
            elif text == ">":
                angle = False
            elif text == "@" and not angle:
                seen_at = True
            elif not angle and text in ",;":
                return item, pos, text
            elif text == ":" and not angle and not seen_at and group_allowed:
                return item, pos, ":"
        item.append(token)
    return item, pos, ""


def _find(tokens: list[Token], special: str, default: int | None = None) -> int | None:
    return next(
        (i for i, t in enumerate(tokens) if t.kind == SPECIAL and t.text == special), default
    )


def _mailbox(item: list[Token]) -> Address | None:
    comments = [t.text for t in item if t.kind == COMMENT]
    tokens = [t for t in item if t.kind != COMMENT]
    if not tokens:
        return None
    name: str | None = None
    route: str | None = None
    opening = _find(tokens, "<")
    if opening is not None:
        name = _phrase(tokens[:opening])
        inner = tokens[opening + 1 :]
        inner = inner[: _find(inner, ">", len(inner))]
        if inner and inner[0].kind == SPECIAL and inner[0].text == "@":
            colon = _find(inner, ":")
            if colon is not None:
                route = "".join(t.text for t in inner[:colon]) or None
                inner = inner[colon + 1 :]
        mailbox, host = _addr_spec(inner)
    else:
        mailbox, host = _addr_spec(tokens)
    if not name and comments:  # "user@host (Name)": the comment names the mailbox
        name = comments[-1] or None
    if mailbox is None:  # "Name <>", a lone "@host": nothing to address
        return None
    return [name or None, route, mailbox, host]


def _addr_spec(tokens: list[Token]) -> tuple[str | None, str]:
    at = _find(tokens, "@")
    local_tokens = tokens if at is None else tokens[:at]
    local = "".join(_local_text(t.kind, t.text) for t in local_tokens)
    host = ""
    if at is not None:
        host = "".join(t.text for t in tokens[at + 1 :] if t.kind != SPECIAL or t.text == ".")
    return local or None, host


def _local_text(kind: str, text: str) -> str:
    if kind == QUOTED and (not text or _NEEDS_QUOTES.search(text)):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _phrase(tokens: list[Token]) -> str | None:
    """A display name as written, with each run of whitespace (and comments) as one space."""
    out: list[str] = []
    for token in tokens:
        if token.kind == SPECIAL and token.text != ".":
            continue
        if token.spaced and out:
            out.append(" ")
        out.append(token.text)
    return "".join(out) or None
