"""DKIM: the streamed body hash, our signatures, and the verifier against a real (fake) zone."""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import Relaxed

from mailsuite.authn import signing
from mailsuite.authn.bodyhash import RelaxedBodyHash
from mailsuite.authn.dkimcheck import verify_signatures
from mailsuite.resolver import Resolver

DATA = Path(__file__).parent.parent / "data"

HEADERS = (
    b"From: Joe  Sixpack <joe@example.com>\r\n"
    b"To: Suzie <suzie@example.net>\r\n"
    b"Subject: Is dinner\r\n ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"List-Id: <dinner.example.com>\r\n"
)
BODY = b"Hi.\r\n\r\nWe lost the game.   Are you hungry yet?  \r\n\r\nJoe.\r\n\r\n\r\n"


@dataclass(frozen=True)
class Key:
    domain: str
    selector: str
    signature_algorithm: bytes
    private_key: bytes


def rsa_key(domain: str, selector: str) -> tuple[Key, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key(domain, selector, b"rsa-sha256", pem), base64.b64encode(public).decode()


def ed25519_key(domain: str, selector: str) -> tuple[Key, str]:
    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Key(domain, selector, b"ed25519-sha256", base64.b64encode(seed)), base64.b64encode(
        public
    ).decode()


def publish(zone, key: Key, public: str) -> None:
    kind = "rsa" if key.signature_algorithm.startswith(b"rsa") else "ed25519"
    record = f"v=DKIM1; k={kind}; p={public}"
    strings = [record[i : i + 255] for i in range(0, len(record), 255)]
    zone.txt(f"{key.selector}._domainkey.{key.domain}", *strings)


def streamed_hash(body: bytes, rng: random.Random) -> bytes:
    hasher = RelaxedBodyHash()
    position = 0
    while position < len(body):
        step = rng.randint(1, 9)
        hasher.feed(body[position : position + step])
        position += step
    return hasher.digest()


def test_streamed_body_hash_equals_dkimpy_for_any_chunking():
    rng = random.Random(7)
    pieces = [b"a", b"b c", b" ", b"\t", b"\r\n", b"  \r\n", b"\t\r\n", b"x\t y"]
    for _ in range(2000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        expected = hashlib.sha256(Relaxed.canonicalize_body(body)).digest()
        assert streamed_hash(body, rng) == expected, body


def test_empty_body_hashes_as_empty():
    assert RelaxedBodyHash().digest() == hashlib.sha256(b"").digest()
    only_blank = RelaxedBodyHash()
    only_blank.feed(b"\r\n\r\n  \r\n")
    assert only_blank.digest() == hashlib.sha256(b"").digest()


def test_the_signed_header_list_oversigns_from_and_takes_list_fields():
    fields = signing.fields_to_sign([(b"From", b"x"), (b"Subject", b"y"), (b"List-Id", b"z")])
    assert fields == [b"from", b"from", b"subject", b"list-id"]


@pytest.fixture
def signed(zone):
    rsa_signing, rsa_public = rsa_key("example.com", "r2026")
    ed_signing, ed_public = ed25519_key("example.com", "e2026")
    publish(zone, rsa_signing, rsa_public)
    publish(zone, ed_signing, ed_public)
    body_hash = streamed_hash(BODY, random.Random(1))
    header = signing.sign(HEADERS, body_hash, [rsa_signing, ed_signing])
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=2)
    return header, resolver


def test_both_signatures_verify(signed):
    header, resolver = signed
    checks = verify_signatures(resolver, header + HEADERS + b"\r\n" + BODY)
    assert [(c.result, c.domain, c.algorithm) for c in checks] == [
        ("pass", "example.com", "rsa-sha256"),
        ("pass", "example.com", "ed25519-sha256"),
    ]
    assert all(c.b for c in checks)


def test_trace_headers_added_above_keep_the_signature_valid(signed):
    header, resolver = signed
    message = b"Received: from x by y; now\r\n" + header + HEADERS + b"\r\n" + BODY
    assert {c.result for c in verify_signatures(resolver, message)} == {"pass"}


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h, b.replace(b"hungry", b"hangry")),
        lambda h, b: (h.replace(b"Is dinner", b"Is lunch"), b),
        lambda h, b: (b"From: Mallory <ceo@example.com>\r\n" + h, b),
        lambda h, b: (h + b"From: Mallory <ceo@example.com>\r\n", b),
    ],
    ids=["body byte", "signed header", "From added on top", "From added below"],
)
def test_a_changed_message_fails(signed, change):
    header, resolver = signed
    headers, body = change(HEADERS, BODY)
    checks = verify_signatures(resolver, header + headers + b"\r\n" + body)
    assert [c.result for c in checks] == ["fail", "fail"]


def test_missing_key_is_permerror_and_dns_failure_temperror(zone):
    key, _ = ed25519_key("example.org", "gone")
    header = signing.sign(HEADERS, hashlib.sha256(b"").digest(), [key])
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=0.5)
    [check] = verify_signatures(resolver, header + HEADERS + b"\r\n")
    assert (check.result, check.domain, check.selector) == ("permerror", "example.org", "gone")
    zone.servfail.add("gone._domainkey.example.org")
    resolver.flush()
    [check] = verify_signatures(resolver, header + HEADERS + b"\r\n")
    assert check.result == "temperror"


def test_rsa_sha1_is_not_accepted(zone):
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=0.5)
    message = (
        b"DKIM-Signature: v=1; a=rsa-sha1; d=example.com; s=old; h=from; bh=AAAA; b=AAAA\r\n"
        + HEADERS
        + b"\r\n"
    )
    [check] = verify_signatures(resolver, message)
    assert check.result == "fail" and "8301" in check.reason


def test_rfc8463_appendix_a_message_verifies_with_both_keys(zone):
    """The dual-signed (Ed25519 + RSA) example of RFC 8463 Appendix A, its keys as published."""
    zone.txt(
        "brisbane._domainkey.football.example.com",
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    )
    zone.txt(
        "test._domainkey.football.example.com",
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5"
        "qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4"
        "hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
    )
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=2)
    message = (DATA / "rfc8463-appendix-a.eml").read_bytes()
    checks = verify_signatures(resolver, message)
    assert [(c.result, c.selector, c.algorithm) for c in checks] == [
        ("pass", "brisbane", "ed25519-sha256"),
        ("pass", "test", "rsa-sha256"),
    ]


def test_an_arc_chain_is_verified_and_a_broken_one_fails(zone):
    """ARC (RFC 8617): a forwarder sealed the message (dkimpy's signer); we verify the chain."""
    import dkim

    from mailsuite.authn.dkimcheck import verify_arc

    forwarder, public = rsa_key("list.example", "arc")
    publish(zone, forwarder, public)
    message = (
        b"Authentication-Results: lists.list.example; spf=pass smtp.mailfrom=joe@example.com\r\n"
        + HEADERS
        + b"\r\n"
        + BODY
    )
    seal = b"".join(
        dkim.arc_sign(
            message, b"arc", b"list.example", forwarder.private_key, b"lists.list.example"
        )
    )
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=2)
    assert verify_arc(resolver, seal + message) == "pass"
    assert verify_arc(resolver, seal + message.replace(b"hungry", b"angry")) == "fail"
    assert verify_arc(resolver, message) == "none"


def test_a_long_signed_header_list_folds_between_names_and_verifies(signed, zone):
    """h= longer than a line (MIME fields, List-*, threading): folding must not cut a name."""
    rsa_signing, rsa_public = rsa_key("example.com", "long")
    publish(zone, rsa_signing, rsa_public)
    headers = HEADERS + (
        b"Reply-To: <r@example.com>\r\nCc: <c@example.net>\r\nIn-Reply-To: <0@example.com>\r\n"
        b"References: <0@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"List-Unsubscribe: <mailto:u@example.com>\r\nList-Post: <mailto:l@example.com>\r\n"
    )
    header = signing.sign(
        headers, hashlib.sha256(Relaxed.canonicalize_body(BODY)).digest(), [rsa_signing]
    )
    names = header.split(b"h=", 1)[1].split(b";", 1)[0]
    assert b"\r\n" in names  # long enough to be folded
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=2)
    [check] = verify_signatures(resolver, header + headers + b"\r\n" + BODY)
    assert check.result == "pass"
