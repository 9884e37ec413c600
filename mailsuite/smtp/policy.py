"""The three SMTP listener roles and what each one allows (RFC 5321, RFC 6409, RFC 8314)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RolePolicy:
    """What a listener offers and demands; one instance per role, shared by its connections."""

    name: str
    implicit_tls: bool  # TLS from the first byte (RFC 8314)
    offer_starttls: bool
    offer_auth: bool  # AUTH is advertised and accepted, but only once TLS is active
    require_auth: bool  # MAIL needs AUTH first (submission, RFC 6409 §4.3)
    fix_headers: bool  # add a missing Message-ID/Date (RFC 6409 §8)


def mx_policy(offer_auth: bool = False) -> RolePolicy:
    """Port 25 role: mail for local domains from anyone; relaying only after AUTH."""
    return RolePolicy("smtp", False, True, offer_auth, False, False)


SUBMISSION = RolePolicy("submission", False, True, True, True, True)
SUBMISSIONS = RolePolicy("submissions", True, False, True, True, True)
