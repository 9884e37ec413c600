"""Where the capture mailbox lives, and the ``--sandbox`` switch of the twistd plugin.

The capture is the Maildir of ``<login>@sandbox.invalid`` (``<data>/mail/sandbox.invalid/<login>``):
an ordinary store address, so delivery, IMAP and POP3 need nothing new, and a domain under
``.invalid`` (RFC 2606) can never be a real user's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mailsuite.config import Config, ConfigError, SandboxSection
from mailsuite.store.maildir import split_address

CAPTURE_DOMAIN = "sandbox.invalid"


def capture_address(settings: SandboxSection) -> str:
    """The store address of the capture mailbox (the login, lower-cased); ConfigError when the
    login cannot be a Maildir name (it must be a plain name such as "sandbox")."""
    address = f"{settings.login.lower()}@{CAPTURE_DOMAIN}"
    try:
        split_address(address)
    except ValueError:
        raise ConfigError(
            "sandbox.login",
            f"expected a plain name such as 'sandbox' (letters, digits, . - _), "
            f"got {settings.login!r}",
        ) from None
    return address


def capture_root(config: Config) -> Path:
    """The capture Maildir (its INBOX), as MaildirStore.maildir_path() names it."""
    local = capture_address(config.sandbox).partition("@")[0]
    return config.mail_dir / CAPTURE_DOMAIN / local


def turn_on(config: Config) -> Config:
    """``config`` with sandbox mode enabled (``twistd mailsuite --sandbox``)."""
    return replace(config, sandbox=replace(config.sandbox, enabled=True))
