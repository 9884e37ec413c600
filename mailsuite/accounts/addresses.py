"""Syntax and canonical form of domains and mail addresses.

Every address that reaches the user database passes through here first, so the database only
ever holds one spelling of each name: lowercase A-label domains, lowercase local parts for local
mailboxes. Local mailbox names later become directory names, which is why their character set is
narrower than RFC 5322 allows.
"""

from __future__ import annotations

import re

import idna

MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_LOCAL_LENGTH = 64
# RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets.
MAX_ADDRESS_LENGTH = 254

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")

# Local mailboxes: RFC 5322 atext without '/', lowercase only, dot-separated atoms.
_MAILBOX_ATOM = r"[a-z0-9!#$%&'*+=?^_`{|}~-]+"
_MAILBOX_LOCAL = re.compile(rf"{_MAILBOX_ATOM}(?:\.{_MAILBOX_ATOM})*\Z")

# Remote addresses: RFC 5321 Dot-string or Quoted-string, widened by RFC 6531 to UTF-8.
# Non-ASCII characters are admitted from U+00A0 up (no C1 controls).
_UTF8_NON_ASCII = "\u00a0-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_UTF8_NON_ASCII}-]+"
_DOT_STRING = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")
_QTEXT = rf"[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8_NON_ASCII}]"
_QUOTED_STRING = re.compile(rf'"(?:{_QTEXT}|\\[\x20-\x7e])*"\Z')


class AddressError(ValueError):
    """A domain or address with invalid syntax; str() is a message fit for a user."""


def normalize_domain(text: str) -> str:
    """Return the lowercase A-label (punycode) form of a domain name, without a trailing dot.

    Unicode names go through IDNA 2008 with UTS 46 mapping; ASCII names only need to be
    letters-digits-hyphen, so existing names such as ``r3---sn.example`` stay valid.
    """
    if not isinstance(text, str) or not text:
        raise AddressError("empty domain")
    name = text[:-1] if text.endswith(".") else text
    if name.startswith("["):
        raise AddressError(f"address literals are not allowed here: {text!r}")
    if name.isascii():
        name = name.lower()
    else:
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise AddressError(f"invalid domain {text!r}: {exc}") from None
    if len(name) > MAX_DOMAIN_LENGTH:
        raise AddressError(f"invalid domain {text!r}: longer than {MAX_DOMAIN_LENGTH} characters")
    for label in name.split("."):
        _check_label(text, label)
    return name


def _check_label(text: str, label: str) -> None:
    if not label:
        raise AddressError(f"invalid domain {text!r}: empty label")
    if len(label) > MAX_LABEL_LENGTH:
        raise AddressError(
            f"invalid domain {text!r}: label longer than {MAX_LABEL_LENGTH} characters"
        )
    if not _LDH_LABEL.match(label):
        raise AddressError(
            f"invalid domain {text!r}: only letters, digits and inner hyphens are allowed"
        )
    if label.startswith("xn--"):
        try:
            label[4:].encode("ascii").decode("punycode")
        except UnicodeError:
            raise AddressError(f"invalid domain {text!r}: bad punycode label {label!r}") from None


def split_address(text: str) -> tuple[str, str]:
    """Split at the last '@' (a quoted local part may itself contain '@')."""
    if not isinstance(text, str):
        raise AddressError("an address must be text")
    local, sep, domain = text.rpartition("@")
    if not sep:
        raise AddressError(f"invalid address {text!r}: missing '@'")
    return local, domain


def normalize_mailbox(text: str) -> str:
    """Canonical ``local@domain`` of a local account or alias source.

    The local part is lowercased and limited to characters that are safe as a directory name.
    """
    local, domain = split_address(text)
    if not local:
        raise AddressError(f"invalid address {text!r}: empty local part")
    if len(local) > MAX_LOCAL_LENGTH:
        raise AddressError(
            f"invalid address {text!r}: local part longer than {MAX_LOCAL_LENGTH} characters"
        )
    # Only ASCII is lowercased: str.lower() maps some non-ASCII letters (KELVIN SIGN) to ASCII.
    local = local.lower() if local.isascii() else local
    if not _MAILBOX_LOCAL.match(local):
        raise AddressError(
            f"invalid local mailbox {text!r}: use letters, digits and !#$%&'*+=?^_`{{|}}~- "
            "with single inner dots"
        )
    return f"{local}@{normalize_domain(domain)}"


def normalize_catchall(text: str) -> str:
    """Canonical ``@domain`` form of a catch-all alias source."""
    if not isinstance(text, str) or not text.startswith("@"):
        raise AddressError(f"invalid catch-all {text!r}: expected '@domain'")
    return "@" + normalize_domain(text[1:])


def normalize_remote_address(text: str) -> str:
    """Validate any RFC 5321/6531 mailbox; only the domain is normalized (local case is kept)."""
    local, domain = split_address(text)
    if not local:
        raise AddressError(f"invalid address {text!r}: empty local part")
    if not (_DOT_STRING.match(local) or _QUOTED_STRING.match(local)):
        raise AddressError(f"invalid address {text!r}: bad local part")
    try:
        local_octets = len(local.encode("utf-8"))
    except UnicodeEncodeError:
        raise AddressError(f"invalid address {text!r}: not valid UTF-8") from None
    if local_octets > MAX_LOCAL_LENGTH:
        raise AddressError(
            f"invalid address {text!r}: local part longer than {MAX_LOCAL_LENGTH} octets"
        )
    address = f"{local}@{normalize_domain(domain)}"
    if len(address.encode("utf-8")) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"invalid address {text!r}: longer than {MAX_ADDRESS_LENGTH} octets")
    return address
