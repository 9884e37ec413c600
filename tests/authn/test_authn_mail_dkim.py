"""Interoperability with an independent DKIM implementation, Perl's Mail::DKIM (Debian's
libmail-dkim-perl): what our server signs verifies there, what it signs verifies here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.tools import unavailable

from mailsuite.authn.dkimcheck import verify_signatures
from mailsuite.authn.keys import DKIMKeyStore
from mailsuite.resolver import Resolver

pytest_plugins = ["queue_fixtures"]  # start_instance

PERL = Path(__file__).parent / "perl"


def perl(script: str, *args: str, stdin: bytes) -> str:
    probe = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e1"], capture_output=True)
    if probe.returncode != 0:
        unavailable("Perl's Mail::DKIM (libmail-dkim-perl) is not installed")
    done = subprocess.run(
        ["perl", str(PERL / script), *args], input=stdin, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_what_our_server_signs_verifies_with_mail_dkim(zone, start_instance):
    a = start_instance("a", "mx.a.test")
    a.add_user("alice@a.test")
    a.add_user("carol@a.test")
    keys = DKIMKeyStore(a.config.dkim_dir)
    for algorithm in ("rsa", "ed25519"):
        key = keys.generate("a.test", algorithm)
        zone.txt(key.dns_name(), *key.txt_strings())
    body = b"".join(b"line %d with  trailing space \r\n" % n for n in range(2000))
    a.submit(
        "alice@a.test",
        ["carol@a.test"],
        b"From: Alice <alice@a.test>\r\nTo: carol@a.test\r\nSubject: over 64 KiB\r\n"
        b"List-Id: <team.a.test>\r\n\r\n" + body + b"\r\n\r\n",
    )
    [message] = a.messages("carol@a.test")
    lines = sorted(perl("dkim_verify.pl", str(zone.port), stdin=message).splitlines())
    # Debian's Mail::DKIM (1.2023) does not know Ed25519 (RFC 8463): it says so and ignores that
    # signature, as RFC 6376 asks of a verifier, and the RSA one carries the message. That is
    # what dual signing is for. (dkimpy verifies our Ed25519 signatures: test_authn_dkim.py.)
    assert lines == [
        "a.test ed25519-sha256 invalid (unsupported algorithm ed25519-sha256)",
        "a.test rsa-sha256 pass",
    ]


def test_a_large_spilled_message_is_signed_and_verifies(zone, start_instance):
    """Over the in-memory limit the message is a spool file: the signature is spliced in there."""
    a = start_instance("a", "mx.a.test")
    a.add_user("alice@a.test")
    a.add_user("carol@a.test")
    key = DKIMKeyStore(a.config.dkim_dir).generate("a.test", "rsa")
    zone.txt(key.dns_name(), *key.txt_strings())
    body = b"x" * 998 + b"\r\n"
    a.submit(
        "alice@a.test",
        ["carol@a.test"],
        b"From: alice@a.test\r\nSubject: big\r\n\r\n" + body * 600,
    )
    [message] = a.messages("carol@a.test")
    assert message.count(b"DKIM-Signature:") == 1 and message.endswith(body)
    assert perl("dkim_verify.pl", str(zone.port), stdin=message).strip() == (
        "a.test rsa-sha256 pass"
    )


def test_what_mail_dkim_signs_verifies_with_ours(zone, tmp_path):
    store = DKIMKeyStore(tmp_path / "dkim")
    key = store.generate("perl.test", "rsa", selector="perl")
    zone.txt(key.dns_name(), *key.txt_strings())
    key_file = tmp_path / "perl.pem"
    key_file.write_bytes(key.private_key)
    message = (
        b"From: Perl <p@perl.test>\r\nTo: x@y.test\r\nSubject: from Mail::DKIM\r\n"
        b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@perl.test>\r\n\r\n"
        b"Signed  by\tPerl. \r\n\r\n"
    )
    signature = perl("dkim_sign.pl", str(key_file), "perl.test", "perl", stdin=message)
    signed = signature.encode().replace(b"\r\r\n", b"\r\n") + message
    resolver = Resolver(("127.0.0.1",), zone.port, timeout=2)
    [check] = verify_signatures(resolver, signed)
    assert (check.result, check.domain, check.selector) == ("pass", "perl.test", "perl")
    [tampered] = verify_signatures(resolver, signed.replace(b"Perl.", b"Python."))
    assert tampered.result == "fail"


@pytest.fixture(autouse=True)
def _keep_perl_scripts_honest():
    assert (PERL / "dkim_verify.pl").is_file() and (PERL / "dkim_sign.pl").is_file()
