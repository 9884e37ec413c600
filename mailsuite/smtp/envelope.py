"""Parsing of MAIL FROM / RCPT TO arguments: the path and its ESMTP parameters (RFC 5321 §4.1.2).

The grammar is small enough that a strict hand parser is clearer than a general one; domains are
checked and IDNA-normalised by the accounts layer so that one rule applies everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsuite.accounts.addresses import AddressError, normalize_domain

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_STRING_ASCII = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_UTEXT = r"\u0080-\U0010ffff"
_DOT_STRING_UTF8 = re.compile(rf"[{_UTEXT}{_ATEXT}]+(?:\.[{_UTEXT}{_ATEXT}]+)*\Z")
_QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"\Z')
_ADDRESS_LITERAL = re.compile(r"\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]\Z")
_SOURCE_ROUTE = re.compile(r"@[^,:]+(?:,@[^,:]+)*:")
_PARAM_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")


class EnvelopeSyntaxError(ValueError):
    """The argument does not follow RFC 5321 syntax; str() is the reply text."""


class NeedsSMTPUTF8(EnvelopeSyntaxError):
    """A non-ASCII address was given without the SMTPUTF8 parameter (RFC 6531 §3.5: 553 5.6.7)."""


@dataclass(frozen=True)
class Path:
    """A reverse- or forward-path: ``address`` is "" for the null path ``<>``."""

    address: str
    local: str = ""
    domain: str = ""


def split_command_argument(line: str, keyword: str) -> str | None:
    """Return what follows ``FROM:``/``TO:`` (case-insensitive, space after the colon tolerated)."""
    if line[: len(keyword)].upper() != keyword:
        return None
    return line[len(keyword) :].lstrip(" ")


def parse_path_and_params(
    text: str, allow_null: bool, smtputf8: bool = False
) -> tuple[Path, dict[str, str | None]]:
    """Split ``<path> [KEY[=VALUE] ...]`` into a Path and upper-cased parameter keywords.

    UTF-8 addresses are allowed when ``smtputf8`` (the transaction said so) or the parameters
    carry SMTPUTF8 (RFC 6531 §3.4).
    """
    if not text.startswith("<"):
        raise EnvelopeSyntaxError("address must be enclosed in <>")
    end = _closing_bracket(text)
    inner, rest = text[1:end], text[end + 1 :]
    if rest and not rest.startswith(" "):
        raise EnvelopeSyntaxError("unexpected text after the address")
    params = parse_params(rest.split())
    smtputf8 = smtputf8 or "SMTPUTF8" in params
    return parse_path(inner, allow_null, smtputf8), params


def _closing_bracket(text: str) -> int:
    quoted = False
    i = 1
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
        i += 1
    raise EnvelopeSyntaxError("address is missing its closing >")


def parse_params(words: list[str]) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not _PARAM_KEYWORD.match(key) or (sep and not value):
            raise EnvelopeSyntaxError(f"bad parameter syntax: {word}")
        params[key.upper()] = value if sep else None
    return params


def parse_path(inner: str, allow_null: bool, smtputf8: bool) -> Path:
    if inner == "":
        if allow_null:
            return Path("")
        raise EnvelopeSyntaxError("an empty address is not allowed here")
    route = _SOURCE_ROUTE.match(inner)
    if route:  # RFC 5321 §4.1.2: source routes are accepted and ignored.
        inner = inner[route.end() :]
    local, sep, domain = inner.rpartition("@")
    if not sep or not local or not domain:
        raise EnvelopeSyntaxError("address must be local-part@domain")
    if not inner.isascii() and not smtputf8:
        raise NeedsSMTPUTF8("non-ASCII address requires the SMTPUTF8 parameter")
    pattern = _DOT_STRING_UTF8 if smtputf8 else _DOT_STRING_ASCII
    if not (pattern.match(local) or _QUOTED_STRING.match(local)):
        raise EnvelopeSyntaxError("bad local part syntax")
    if len(local.encode()) > 64:
        raise EnvelopeSyntaxError("local part longer than 64 octets")
    if _ADDRESS_LITERAL.match(domain):
        return Path(f"{local}@{domain}", local, domain.lower())
    try:
        domain = normalize_domain(domain)
    except AddressError as exc:
        raise EnvelopeSyntaxError(str(exc)) from None
    return Path(f"{local}@{domain}", local, domain)
