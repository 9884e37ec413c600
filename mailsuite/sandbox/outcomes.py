"""Simulated outcomes, chosen by the recipient's local part, so an application's error paths
can be tested without a real remote server:

- ``bounce-...@any``: accepted and captured, then a DSN (RFC 3464) for it is captured too;
- ``defer-...@any``:  RCPT answered ``450 4.2.0`` (a temporary failure the client retries);
- ``reject-...@any``: RCPT answered ``550 5.1.1`` (user unknown);
- anything else:      accepted and captured.

The bare word (``bounce@``) counts too, and case does not matter. Deferral happens at RCPT time
rather than as a delay notice later: the client sees it at once and deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCEPT = "accept"
BOUNCE = "bounce"
DEFER = "defer"
REJECT = "reject"


@dataclass(frozen=True)
class Refusal:
    """The RCPT reply for a refused recipient."""

    code: int
    enhanced: str
    text: str


def outcome(address: str) -> str:
    """ACCEPT, BOUNCE, DEFER or REJECT for the recipient ``address`` (or a bare local part)."""
    local = address.rpartition("@")[0] if "@" in address else address
    local = local.strip('"').lower()
    for word in (BOUNCE, DEFER, REJECT):
        if local == word or local.startswith(word + "-"):
            return word
    return ACCEPT


def refusal(address: str) -> Refusal | None:
    """The simulated RCPT refusal for ``address``, or None when it is accepted."""
    kind = outcome(address)
    if kind == DEFER:
        return Refusal(450, "4.2.0", f"<{address}>: mailbox busy (sandbox: simulated deferral)")
    if kind == REJECT:
        text = f"<{address}>: Recipient address rejected: user unknown (sandbox: simulated)"
        return Refusal(550, "5.1.1", text)
    return None


def bounce_diagnostic(address: str) -> str:
    """The remote reply a bounced recipient's DSN reports."""
    return f"550 5.1.1 <{address}>: user unknown (sandbox: simulated bounce)"
