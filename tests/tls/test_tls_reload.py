"""Hot reload of the served certificate: a pair replaced on disk (as certbot does) reaches new
connections, implicit TLS and STARTTLS alike, without a restart, while open sessions go on; a
broken replacement is refused and the old certificate stays. Triggers: a direct reload, the file
watcher's poll, and SIGHUP to a real ``twistd`` process."""

from __future__ import annotations

import datetime
import imaplib
import ipaddress
import os
import signal
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest
from conftest import start_twistd
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import PASSWORD
from support.net import free_port

import mailsuite.runtime.certwatch as certwatch

# --- a certificate pair, and what a server shows -------------------------------------------------


def write_pair(cert_path: Path, key_path: Path, label: str) -> bytes:
    """Replace ``cert_path``/``key_path`` (rename into place, like certbot) with a new self-signed
    pair whose CN is ``label``; returns the certificate's DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _replace(key_path, key_pem)
    _replace(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.DER)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _any_certificate() -> ssl.SSLContext:
    """A client that shows us whatever certificate the server sends (we compare it ourselves)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def implicit_tls(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with _any_certificate().wrap_socket(raw) as conn:
            return conn.getpeercert(binary_form=True)


def smtp_starttls(port: int) -> bytes:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
        client.starttls(context=_any_certificate())
        return client.sock.getpeercert(binary_form=True)


def imap_starttls(port: int) -> bytes:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        client.starttls(ssl_context=_any_certificate())
        return client.sock.getpeercert(binary_form=True)
    finally:
        client.logout()


def served_everywhere(suite) -> dict[str, bytes]:
    """The certificate each TLS entrance shows a new connection."""
    return {
        "imaps": implicit_tls(suite.port("imaps")),
        "submissions": implicit_tls(suite.port("submissions")),
        "pop3s": implicit_tls(suite.port("pop3s")),
        "submission STARTTLS": smtp_starttls(suite.port("submission")),
        "imap STARTTLS": imap_starttls(suite.port("imap")),
    }


def _cn(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture
def pair(tmp_path):
    """Configured certificate files (fullchain.pem, privkey.pem) holding the pair "first"."""
    cert_file, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    first = write_pair(cert_file, key_file, "first")
    return cert_file, key_file, first


def _settings(cert_file: Path, key_file: Path) -> dict[str, object]:
    return {"tls.cert_file": str(cert_file), "tls.key_file": str(key_file)}


def _reload(suite) -> bool:
    return suite.reactor.call(suite.service.certificates.reload, "test")


# --- the tests ------------------------------------------------------------------------------------


def test_new_connections_get_the_new_certificate_while_open_sessions_go_on(make_suite, pair):
    cert_file, key_file, first = pair
    suite = make_suite(_settings(cert_file, key_file))
    suite.add_user("alice@example.com")
    old = imaplib.IMAP4_SSL("127.0.0.1", suite.port("imaps"), ssl_context=_any_certificate())
    old.login("alice@example.com", PASSWORD)
    assert set(served_everywhere(suite).values()) == {first}

    second = write_pair(cert_file, key_file, "second")
    assert _reload(suite) is True

    assert {role: _cn(der) for role, der in served_everywhere(suite).items()} == {
        "imaps": "second",
        "submissions": "second",
        "pop3s": "second",
        "submission STARTTLS": "second",
        "imap STARTTLS": "second",
    }
    assert implicit_tls(suite.port("imaps")) == second
    # The session opened before the reload still talks, over its first certificate.
    assert old.select("INBOX")[0] == "OK"
    assert old.noop()[0] == "OK"
    assert old.sock.getpeercert(binary_form=True) == first
    old.logout()


@pytest.mark.parametrize("damage", ["garbage certificate", "key of another pair", "missing key"])
def test_a_broken_replacement_keeps_the_old_certificate(make_suite, pair, tmp_path, damage):
    cert_file, key_file, first = pair
    suite = make_suite(_settings(cert_file, key_file))
    if damage == "garbage certificate":
        _replace(cert_file, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    elif damage == "key of another pair":
        write_pair(tmp_path / "other.pem", key_file, "other")  # a key the certificate lacks
    else:
        key_file.unlink()

    assert _reload(suite) is False

    assert implicit_tls(suite.port("imaps")) == first
    assert smtp_starttls(suite.port("submission")) == first
    # Repaired, the files are taken on the next reload.
    third = write_pair(cert_file, key_file, "third")
    assert _reload(suite) is True
    assert implicit_tls(suite.port("imaps")) == third


def test_unchanged_files_are_not_reloaded_by_the_poll(make_suite, pair):
    cert_file, key_file, first = pair
    suite = make_suite(_settings(cert_file, key_file))
    watcher = suite.service.certificates
    assert suite.reactor.call(watcher.reload, "poll", False) is False
    assert watcher.options.current.leaf.public_bytes(serialization.Encoding.DER) == first


def test_the_watcher_notices_replaced_files(make_suite, pair, monkeypatch):
    monkeypatch.setattr(certwatch, "POLL_SECONDS", 0.1)
    cert_file, key_file, _ = pair
    suite = make_suite(_settings(cert_file, key_file))

    second = write_pair(cert_file, key_file, "second")

    deadline = time.monotonic() + 20
    while implicit_tls(suite.port("imaps")) != second:
        assert time.monotonic() < deadline, "the watcher never served the new certificate"
        time.sleep(0.05)
    assert smtp_starttls(suite.port("submission")) == second


def test_the_generated_certificate_is_watched_too(make_suite):
    suite = make_suite({})
    watcher = suite.service.certificates
    assert [pair.cert for pair in watcher.candidates] == [suite.cert_path]
    assert implicit_tls(suite.port("imaps")) == watcher.options.current.leaf.public_bytes(
        serialization.Encoding.DER
    )


# --- SIGHUP, to the real program ------------------------------------------------------------------


def _wait_for_port(port: int, process, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, f"server exited early: {process.stdout.read()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} never opened")


def test_sighup_reloads_in_twistd(tmp_path, pair):
    cert_file, key_file, first = pair
    imaps = free_port()
    config = tmp_path / "mailsuite.toml"
    config.write_text(
        '[server]\nhostname = "mx.test.example"\n'
        f'[tls]\ncert_file = "{cert_file}"\nkey_file = "{key_file}"\n'
        "[verify]\nenabled = false\n"
        f'[imaps]\nlisten = ["127.0.0.1:{imaps}"]\n'
        + "".join(
            f"[{role}]\nlisten = []\n"
            for role in ("smtp", "submission", "submissions", "imap", "pop3", "pop3s", "http")
        )
    )
    process = start_twistd(config, tmp_path / "data", tmp_path)
    try:
        _wait_for_port(imaps, process)
        assert implicit_tls(imaps) == first
        second = write_pair(cert_file, key_file, "second")

        process.send_signal(signal.SIGHUP)

        deadline = time.monotonic() + 20
        while implicit_tls(imaps) != second:
            assert time.monotonic() < deadline, "SIGHUP never brought the new certificate"
            time.sleep(0.05)
        assert process.poll() is None  # SIGHUP's default action would have ended it
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # The watcher may have seen the files first; SIGHUP is answered either way.
    assert "(SIGHUP)" in output, output
    assert "Traceback" not in output, output
