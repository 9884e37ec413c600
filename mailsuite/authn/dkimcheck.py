"""DKIM verification of every signature of a received message (RFC 6376, RFC 8463), and ARC.

dkimpy does the cryptography and canonicalization; this module asks DNS through the server's
one resolver and turns dkimpy's booleans and exceptions into RFC 8601 results, so that a key
that is missing (permerror), a DNS failure (temperror) and a broken signature (fail) stay apart.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import dkim

from mailsuite.resolver import DNSTemporaryError, Resolver

_SIGNATURE_FIELD = b"dkim-signature"
# dkimpy logs every failure at error level; the result is reported in the header instead.
_QUIET = logging.getLogger("mailsuite.authn.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True)
class DKIMCheck:
    """The result of one DKIM-Signature field (RFC 8601 §2.7.1)."""

    result: str  # pass | fail | neutral | temperror | permerror | policy
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    b: str  # the first characters of b=, to tell signatures apart (RFC 6008)
    reason: str = ""


class _KeyLookup:
    """dkimpy's ``dnsfunc``, through our resolver; remembers whether the last key was absent
    (dkimpy folds "no key" into a plain False, which RFC 8601 calls permerror, not fail)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.missing = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        answer = self.resolver.query(name.decode("ascii", "replace"), "TXT")
        texts = answer.texts
        keys = [t for t in texts if b"p=" in t] or texts
        self.missing = not keys
        return keys[0] if keys else None


def _tag(value: bytes | None) -> str:
    return (value or b"").decode("ascii", "replace")


def verify_signatures(resolver: Resolver, message: bytes) -> list[DKIMCheck]:
    """One DKIMCheck per DKIM-Signature field, top to bottom; [] when there is none."""
    end = message.find(b"\r\n\r\n")
    if _SIGNATURE_FIELD not in message[: end if end >= 0 else len(message)].lower():
        return []  # the common unsigned case costs a scan of the header block, not a parse
    try:
        verifier = dkim.DKIM(message, logger=_QUIET, minkey=1024)
    except Exception as exc:  # a message dkimpy cannot even parse
        return [DKIMCheck("permerror", "", "", "", "", f"unparsable message: {exc}")]
    count = sum(1 for name, _ in verifier.headers if name.lower() == _SIGNATURE_FIELD)
    dnsfunc = _KeyLookup(resolver)
    return [_verify_one(verifier, index, dnsfunc) for index in range(count)]


def _verify_one(verifier: dkim.DKIM, index: int, dnsfunc: _KeyLookup) -> DKIMCheck:
    fields = _fields_of(verifier, index)
    domain, selector = _tag(fields.get(b"d")).lower(), _tag(fields.get(b"s"))
    algorithm = _tag(fields.get(b"a"))
    b = re.sub(r"\s+", "", _tag(fields.get(b"b")))[:12]

    def check(result: str, reason: str = "") -> DKIMCheck:
        return DKIMCheck(result, domain, selector, algorithm, b, reason)

    if algorithm == "rsa-sha1":
        return check("fail", "rsa-sha1 is not accepted (RFC 8301)")
    dnsfunc.missing = False
    try:
        valid = verifier.verify(index, dnsfunc=dnsfunc)
    except DNSTemporaryError as exc:
        return check("temperror", str(exc))
    except dkim.ValidationError as exc:
        return check("fail", _short(exc))
    except dkim.KeyFormatError as exc:
        if "missing public key" in str(exc):
            return check("permerror", "no key published for this selector")
        return check("permerror", _short(exc))
    except dkim.DKIMException as exc:
        return check("permerror", _short(exc))
    except Exception as exc:  # dkimpy on input it did not expect: never a crash of the check
        return check("permerror", f"unverifiable: {type(exc).__name__}")
    if valid:
        return check("pass")
    if dnsfunc.missing:
        return check("permerror", "no key published for this selector")
    return check("fail", "signature did not verify")


def _fields_of(verifier: dkim.DKIM, index: int) -> dict[bytes, bytes]:
    signatures = [v for n, v in verifier.headers if n.lower() == _SIGNATURE_FIELD]
    try:
        return dict(dkim.util.parse_tag_value(signatures[index]))
    except Exception:
        return {}


def verify_arc(resolver: Resolver, message: bytes) -> str:
    """The ARC chain's validation (RFC 8617): "none", "pass" or "fail"."""
    if b"arc-seal" not in message[: message.find(b"\r\n\r\n")].lower():
        return "none"
    try:
        result, _, _ = dkim.arc_verify(message, logger=_QUIET, dnsfunc=_KeyLookup(resolver))
    except DNSTemporaryError:
        return "fail"
    except Exception:
        return "fail"
    return _tag(result) or "none"


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
