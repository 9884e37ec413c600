"""Errors of the user database; str() of each is a message fit for an administrator or a log.

Syntax errors in addresses are ``addresses.AddressError`` (a ValueError), not these.
"""

from __future__ import annotations


class AccountsError(Exception):
    """Base class: an expected refusal of the user database, not a bug."""


class SchemaTooNew(AccountsError):
    """The database was written by a newer mailsuite; refuse to touch it."""


class DatabaseClosed(AccountsError):
    def __init__(self) -> None:
        super().__init__("the user database is closed")


class UnknownDomain(AccountsError):
    def __init__(self, domain: str) -> None:
        super().__init__(f"unknown domain {domain}")
        self.domain = domain


class DomainExists(AccountsError):
    def __init__(self, domain: str) -> None:
        super().__init__(f"domain {domain} already exists")
        self.domain = domain


class DomainNotEmpty(AccountsError):
    def __init__(self, domain: str, users: int, aliases: int) -> None:
        super().__init__(
            f"domain {domain} still has {_count(users, 'user')} and {_count(aliases, 'alias')}; "
            "delete them first"
        )
        self.domain = domain


class UserExists(AccountsError):
    def __init__(self, address: str) -> None:
        super().__init__(f"user {address} already exists")
        self.address = address


class UnknownUser(AccountsError):
    def __init__(self, address: str) -> None:
        super().__init__(f"unknown user {address}")
        self.address = address


class AliasExists(AccountsError):
    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"alias {source} -> {target} already exists")
        self.source = source
        self.target = target


class UnknownAlias(AccountsError):
    def __init__(self, source: str, target: str | None = None) -> None:
        shown = source if target is None else f"{source} -> {target}"
        super().__init__(f"unknown alias {shown}")
        self.source = source
        self.target = target


class MailboxDisabled(AccountsError):
    """The recipient exists but every mailbox it leads to is disabled."""

    def __init__(self, address: str) -> None:
        super().__init__(f"mailbox {address} is disabled")
        self.address = address


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{n} {noun if n == 1 else plural}"
