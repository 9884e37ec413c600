"""Domain names as the mail-authentication checks compare them: normalized, and their
Organizational Domain (RFC 7489 §3.2) from the Public Suffix List.

DMARC's relaxed alignment asks "do these two names belong to one registrant?"; the answer is
the PSL's private suffix (public suffix + one label). The list ships with ``publicsuffixlist``
(no network) and takes a moment to load, so it is loaded once, on first use, for every thread.
"""

from __future__ import annotations

import re
import threading

import idna
from publicsuffixlist import PublicSuffixList

_psl: PublicSuffixList | None = None
_psl_lock = threading.Lock()

# A DNS label as mail domains use it (LDH; "_" allowed for service names such as _dmarc).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")


def _public_suffix_list() -> PublicSuffixList:
    global _psl
    if _psl is None:
        with _psl_lock:
            if _psl is None:
                # The whole list (ICANN and private sections): a user's blog.github.io is its
                # own organization, as the list's private section says it is.
                _psl = PublicSuffixList()
    return _psl


def normalize_domain(domain: str) -> str | None:
    """``domain`` in the form DNS and comparisons use: lower case, A-labels (IDNA), no final
    dot; None when it cannot be a host name (empty label, over-long, bad characters)."""
    name = domain.strip()
    name = name[:-1] if name.endswith(".") else name
    if not name:
        return None
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    name = name.lower()
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def organizational_domain(domain: str) -> str:
    """The registered domain above ``domain`` (``mail.example.co.uk`` -> ``example.co.uk``).

    A public suffix itself (``co.uk``) or a name the list cannot place is its own
    Organizational Domain, so it only ever aligns with itself. Names under a TLD the list does
    not know (``.test``, ``.example``) count that TLD as a public suffix.
    """
    name = normalize_domain(domain) or domain.strip().rstrip(".").lower()
    return _public_suffix_list().privatesuffix(name) or name
