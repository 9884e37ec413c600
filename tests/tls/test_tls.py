"""TLS: certificate generation and checks, and real handshakes against a Twisted TLS listener."""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import stat
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import endpoints, protocol

from mailsuite.config import ConfigError
from mailsuite.runtime.tls import (
    TLSConfigError,
    certificate_fingerprint,
    ensure_certificate,
    server_context_factory,
)

# --- helpers: a small private PKI for the configured-certificate cases ---------------------------


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(subject, subject_key, issuer=None, issuer_key=None, ca=False, sans=()):
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key or subject_key, hashes.SHA256())


def make_chain(directory: Path) -> dict[str, Path]:
    """root CA -> intermediate CA -> leaf; writes fullchain (leaf + intermediate), key, root."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue("Test Root", root_key, ca=True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _issue("Test Intermediate", inter_key, root, root_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue(
        "localhost",
        leaf_key,
        inter,
        inter_key,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    pem = serialization.Encoding.PEM
    paths = {
        "fullchain": directory / "fullchain.pem",
        "key": directory / "privkey.pem",
        "root": directory / "root.pem",
        "other_key": directory / "other.pem",
    }
    paths["fullchain"].write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    paths["key"].write_bytes(_pem_key(leaf_key))
    paths["root"].write_bytes(root.public_bytes(pem))
    paths["other_key"].write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    return paths


# --- certificate generation and configured files ------------------------------------------------


def test_generated_certificate_is_a_leaf_for_the_host(tmp_path):
    tls_dir = tmp_path / "tls"
    cert_path, key_path = ensure_certificate(None, None, tls_dir, "mail.example.org")

    assert (cert_path, key_path) == (tls_dir / "cert.pem", tls_dir / "key.pem")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert [p.name for p in tls_dir.iterdir() if p.name.startswith(".")] == []
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mail.example.org", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=700) < lifetime < datetime.timedelta(days=740)


def test_generated_pair_is_reused_on_the_next_start(tmp_path):
    cert_path, _ = ensure_certificate(None, None, tmp_path, "mail.example.org")
    first = certificate_fingerprint(cert_path)
    ensure_certificate(None, None, tmp_path, "mail.example.org")
    assert certificate_fingerprint(cert_path) == first


def test_half_written_pair_is_regenerated(tmp_path):
    cert_path, key_path = ensure_certificate(None, None, tmp_path, "h.example")
    first = certificate_fingerprint(cert_path)
    cert_path.unlink()  # as if we crashed between writing the key and the certificate
    ensure_certificate(None, None, tmp_path, "h.example")
    assert certificate_fingerprint(cert_path) != first
    server_context_factory(cert_path, key_path)  # and the new pair matches


def test_fingerprint_format(tmp_path):
    cert_path, _ = ensure_certificate(None, None, tmp_path, "h.example")
    fingerprint = certificate_fingerprint(cert_path)
    assert re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2}){31}", fingerprint)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert fingerprint.replace(":", "").lower() == cert.fingerprint(hashes.SHA256()).hex()


def test_configured_chain_is_returned(tmp_path):
    paths = make_chain(tmp_path)
    result = ensure_certificate(paths["fullchain"], paths["key"], tmp_path / "tls", "h")
    assert result == (paths["fullchain"], paths["key"])
    assert not (tmp_path / "tls").exists()


def test_mismatched_key_is_reported_naming_the_key(tmp_path):
    paths = make_chain(tmp_path)
    with pytest.raises(TLSConfigError) as info:
        ensure_certificate(paths["fullchain"], paths["other_key"], tmp_path, "h")
    assert info.value.key == "tls.key_file"
    assert "does not match" in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_unreadable_or_non_pem_files_name_the_key(tmp_path):
    paths = make_chain(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    cases = [
        (tmp_path / "missing.pem", paths["key"], "tls.cert_file"),
        (garbage, paths["key"], "tls.cert_file"),
        (paths["fullchain"], tmp_path / "missing.pem", "tls.key_file"),
        (paths["fullchain"], garbage, "tls.key_file"),
        (paths["fullchain"], paths["fullchain"], "tls.key_file"),
    ]
    for cert_file, key_file, key in cases:
        with pytest.raises(TLSConfigError) as info:
            ensure_certificate(cert_file, key_file, tmp_path, "h")
        assert info.value.key == key, (cert_file, key_file)
        assert str(info.value).startswith(f"config error: {key}: ")


# --- real handshakes ------------------------------------------------------------------------------


class _Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


@pytest.fixture
def tls_server(reactor_thread):
    """Start an implicit-TLS echo listener (SSL4ServerEndpoint) with our options; returns port.

    Uses the session reactor thread from tests/conftest.py, so it coexists with server tests.
    """
    from twisted.internet import reactor

    ports = []

    def start(cert_path: Path, key_path: Path) -> int:
        options = server_context_factory(cert_path, key_path)
        endpoint = endpoints.SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1")
        port = reactor_thread.call(endpoint.listen, protocol.Factory.forProtocol(_Echo))
        ports.append(port)
        return port.getHost().port

    yield start
    for port in ports:
        reactor_thread.call(port.stopListening)


def _client_context(cafile: Path | None, maximum=None, minimum=None, legacy=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile)  # the self-signed leaf is its own trust anchor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 constants
        if legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    return ctx


def _talk(port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost"):
    """Handshake, echo one line, close; returns (TLS version, cipher name, echoed bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as conn:
            conn.sendall(b"ping\r\n")
            data = b""
            while len(data) < 6:
                chunk = conn.recv(64)
                if not chunk:
                    break
                data += chunk
            return conn.version(), conn.cipher()[0], data


@pytest.fixture
def generated(tmp_path):
    return ensure_certificate(None, None, tmp_path / "tls", "mx.example.org")


@pytest.mark.parametrize(
    ("version", "expected"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
)
def test_handshake_verifies_the_generated_certificate(tls_server, generated, version, expected):
    cert_path, key_path = generated
    port = tls_server(cert_path, key_path)
    ctx = _client_context(cert_path, minimum=version, maximum=version)

    negotiated, _, echoed = _talk(port, ctx, "mx.example.org")

    assert (negotiated, echoed) == (expected, b"ping\r\n")


def test_tls12_cipher_is_forward_secret_aead(tls_server, generated):
    port = tls_server(*generated)
    _, cipher, _ = _talk(port, _client_context(None, maximum=ssl.TLSVersion.TLSv1_2))
    assert cipher.startswith("ECDHE-")
    assert "GCM" in cipher or "CHACHA20" in cipher


def test_tls11_client_is_refused(tls_server, generated):
    # OpenSSL 3 at security level >= 1 refuses TLS < 1.2 by itself, so on such a host this
    # guards the end-to-end property rather than raiseMinimumTo alone.
    port = tls_server(*generated)
    ctx = _client_context(
        None, minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1, legacy=True
    )
    with pytest.raises(ssl.SSLError) as info:
        _talk(port, ctx)
    if "NO_PROTOCOLS_AVAILABLE" in str(info.value) or "NO_CIPHERS_AVAILABLE" in str(info.value):
        pytest.skip(f"this OpenSSL cannot offer TLS 1.1: {info.value}")
    assert "PROTOCOL_VERSION" in str(info.value).upper()


def test_configured_fullchain_sends_the_intermediate(tls_server, tmp_path):
    paths = make_chain(tmp_path)
    cert_path, key_path = ensure_certificate(paths["fullchain"], paths["key"], tmp_path, "h")
    port = tls_server(cert_path, key_path)
    # The client trusts only the root: verification succeeds only if the server sends the
    # intermediate from the chain file.
    ctx = ssl.create_default_context(cafile=str(paths["root"]))

    negotiated, _, echoed = _talk(port, ctx)

    assert echoed == b"ping\r\n"
    assert negotiated in ("TLSv1.2", "TLSv1.3")
