"""DKIM signatures for what we send (RFC 6376, relaxed/relaxed; RFC 8463 Ed25519 beside RSA).

The body hash comes from ``bodyhash.RelaxedBodyHash``, fed while DATA streams in; this module
needs only the header block. dkimpy does the header canonicalization, selection and folding (the
fiddly, interoperability-critical parts); the private-key operation is OpenSSL's through
``cryptography``, several times faster than dkimpy's pure-Python RSA. Blocking (RSA): call it in a
worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy

_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_HEADER_NAME = b"DKIM-Signature"

# The header fields signed when present (RFC 6376 §5.4.1); From: is signed once more than it
# occurs ("over-signed"), so nobody can add a second From: without breaking the signature.
SIGNED_FIELDS = (
    b"from",
    b"reply-to",
    b"subject",
    b"date",
    b"to",
    b"cc",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)


def fields_to_sign(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """The h= list for these headers: the usual set as present, List-*, From over-signed."""
    counts = Counter(name.strip().lower() for name, _ in headers)
    names = [b"from"] * (counts[b"from"] + 1)
    for field in SIGNED_FIELDS[1:]:
        names += [field] * counts[field]
    for field in sorted(n for n in counts if n.startswith(b"list-")):
        names += [field] * counts[field]
    return names


@lru_cache(maxsize=64)
def _private_key(algorithm: bytes, material: bytes):
    """Parsed once per key: parsing a PEM costs more than the signature itself."""
    if algorithm == b"ed25519-sha256":
        return ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(material))
    key = serialization.load_pem_private_key(material, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def _sign_digest(algorithm: bytes, material: bytes, digest: bytes) -> bytes:
    key = _private_key(algorithm, material)
    if algorithm == b"ed25519-sha256":
        return key.sign(digest)  # RFC 8463 §3: Ed25519 over the SHA-256 of the headers
    return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def sign(header_block: bytes, body_hash: bytes, keys: Iterable, now: float | None = None) -> bytes:
    """``DKIM-Signature:`` header lines (CRLF-terminated), one per key, to put above the headers.

    ``header_block``: the message's header fields as sent (CRLF lines, no empty line);
    ``body_hash``: the raw SHA-256 of the relaxed-canonicalized body; ``keys``: DKIMKey objects
    (``domain``, ``selector``, ``signature_algorithm``, ``private_key``).
    """
    parsed = dkim.DKIM(header_block + b"\r\n", linesep=b"\r\n")
    canonical = _RELAXED.canonicalize_headers(parsed.headers)
    include = fields_to_sign(parsed.headers)
    stamp = str(int(now if now is not None else time.time())).encode()
    out = []
    for key in keys:
        algorithm = key.signature_algorithm
        fields = [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", b"relaxed/relaxed"),
            (b"d", key.domain.encode()),
            (b"s", key.selector.encode()),
            (b"t", stamp),
            # Spaces around the colons: dkim.fold breaks lines at spaces only, so a long h= list
            # without them would be cut inside a field name, which no verifier reads back.
            (b"h", b" : ".join(include)),
            (b"bh", base64.b64encode(body_hash)),
            (b"b", b""),
        ]
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_HEADER_NAME))
        hasher = dkim.HashThrough(hashlib.sha256())
        dkim.hash_headers(hasher, _RELAXED, canonical, include, (_HEADER_NAME, b" " + value), {})
        signature = _sign_digest(algorithm, key.private_key, hasher.digest())
        fields[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(
            b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(_HEADER_NAME)
        )
        out.append(_HEADER_NAME + b": " + value)
    return b"".join(out)


class OutboundSigner:
    """Signs what local users send with the active keys of the From: domain (blocking)."""

    def __init__(self, keys) -> None:
        """``keys``: a DKIMKeyStore (``active(domain)``: cached, sees the CLI's changes)."""
        self._keys = keys

    def keys_for(self, header_block: bytes) -> list:
        """The signing keys: those of the one From: domain, else of its nearest parent with keys
        (d=example.com on From: a@lists.example.com is aligned for DMARC, relaxed mode)."""
        from mailsuite.authn.fromfield import from_domains

        domains = from_domains(header_block)
        if len(domains) != 1:
            return []
        labels = domains[0].split(".")
        for start in range(len(labels) - 1):
            keys = self._keys.active(".".join(labels[start:]))
            if keys:
                return keys
        return []

    def sign(self, header_block: bytes, body_hash: bytes) -> bytes:
        """The DKIM-Signature lines for this message, b"" when its From: domain has no key."""
        keys = self.keys_for(header_block)
        return sign(header_block, body_hash, keys) if keys else b""
