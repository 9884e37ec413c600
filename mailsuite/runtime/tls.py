"""TLS for every listener: the certificate (configured, or self-signed on first start) and options.

A generated certificate is a self-signed *leaf* (CA:FALSE): Thunderbird refuses a self-signed
certificate with CA:TRUE even when the user adds an exception. The key is RSA 2048 rather than
EC P-256 because a mail server talks to a long tail of old MTAs and clients, and RSA is the one
key type every TLS implementation accepts; its slower handshake does not matter at mail volumes.

One ``ReloadableTLSOptions`` is built per server start and shared by STARTTLS
(``transport.startTLS(options)``) and implicit-TLS listeners (``SSL4ServerEndpoint``). It hands
each *new* TLS connection an OpenSSL connection made from the certificate current at that moment,
so a renewed certificate (certbot, ACME, an operator) is served without a restart, while every
open session keeps the context it was made with. mailsuite/runtime/certwatch.py decides when to
load and swap.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import idna
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory, IOpenSSLServerConnectionCreator
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from zope.interface import implementer

from mailsuite.config import ConfigError
from mailsuite.safeio import makedirs_durable, write_file_atomic

# TLS 1.2 suites: forward-secret ECDHE with AEAD only. DHE is left out because it needs DH
# parameters that CertificateOptions does not generate; without them OpenSSL never picks it.
# TLS 1.3 suites are OpenSSL's defaults (all AEAD), which this string does not affect.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"

VALIDITY = datetime.timedelta(days=730)
GENERATED_CERT = "cert.pem"
GENERATED_KEY = "key.pem"


class TLSConfigError(ConfigError):
    """An unusable certificate or key; ``key`` names the config key (or the generated file)."""


def ensure_certificate(
    cert_file: Path | None, key_file: Path | None, tls_dir: Path, hostname: str
) -> tuple[Path, Path]:
    """Return ``(cert, key)`` paths to serve: the configured pair, checked, or a generated one.

    Blocking (it may generate a key): call at startup, before the reactor runs.
    """
    if cert_file is not None or key_file is not None:
        if cert_file is None or key_file is None:
            raise TLSConfigError("tls.cert_file", "tls.cert_file and tls.key_file go together")
        load_pair(cert_file, key_file)
        return cert_file, key_file
    cert_path, key_path = tls_dir / GENERATED_CERT, tls_dir / GENERATED_KEY
    if cert_path.exists() and key_path.exists():
        load_pair(cert_path, key_path, cert_key=str(cert_path), key_key=str(key_path))
    else:
        generate_self_signed(cert_path, key_path, hostname)
    return cert_path, key_path


def load_pair(
    cert_path: Path,
    key_path: Path,
    cert_key: str = "tls.cert_file",
    key_key: str = "tls.key_file",
) -> tuple[list[x509.Certificate], CertificateIssuerPrivateKeyTypes]:
    """Read a PEM chain (leaf first) and its private key; TLSConfigError naming what is wrong."""
    cert_data = _read(cert_path, cert_key)
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise TLSConfigError(cert_key, f"{cert_path} holds no PEM certificate") from None
    key_data = _read(key_path, key_key)
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise TLSConfigError(key_key, f"{key_path} is encrypted; give an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSConfigError(key_key, f"{key_path} holds no usable PEM private key") from None
    if _spki(chain[0].public_key()) != _spki(key.public_key()):
        raise TLSConfigError(
            key_key, f"{key_path} does not match the (first) certificate in {cert_path}"
        )
    return chain, key  # type: ignore[return-value]


def _read(path: Path, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(key, f"cannot read {path}: {exc.strerror}") from None


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _subject_alt_names(hostname: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        try:
            names.append(x509.DNSName(idna.encode(hostname, uts46=True).decode("ascii")))
        except idna.IDNAError:
            pass  # not a usable DNS name: the certificate still covers localhost
    defaults: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    return names + [name for name in defaults if name not in names]


def generate_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    """Write a new RSA key (mode 0600) and a self-signed leaf certificate for ``hostname``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (hostname or "localhost")[:64])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hostname)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    makedirs_durable(cert_path.parent)
    makedirs_durable(key_path.parent)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: the certificate's presence marks a complete pair.
    write_file_atomic(key_path, key_pem, mode=0o600)
    write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def certificate_fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint of the (first) certificate, as ``AB:CD:...`` (what clients show)."""
    cert = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())[0]
    return ":".join(f"{byte:02X}" for byte in cert.fingerprint(hashes.SHA256()))


def server_context_factory(cert_path: Path, key_path: Path) -> CertificateOptions:
    """TLS server options for every protocol: TLS >= 1.2, AEAD ciphers, full chain served."""
    chain, key = load_pair(cert_path, key_path, cert_key=str(cert_path), key_key=str(key_path))
    return _options(chain, key)


def _options(
    chain: list[x509.Certificate], key: CertificateIssuerPrivateKeyTypes
) -> CertificateOptions:
    # pyOpenSSL >= 24.3 takes cryptography objects (and deprecates its own X509/PKey); Twisted
    # hands them straight to pyOpenSSL, whatever its type hints say.
    options = CertificateOptions(
        privateKey=key,  # type: ignore[arg-type]
        certificate=chain[0],  # type: ignore[arg-type]
        extraCertChain=chain[1:],  # type: ignore[arg-type]
        raiseMinimumTo=TLSVersion.TLSv1_2,
        acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(CIPHERS),
    )
    options.getContext()  # build the OpenSSL context now, so problems surface at startup
    return options


# --- hot reload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificatePair:
    """Where one certificate chain (leaf first) and its private key live."""

    cert: Path
    key: Path


# (device, inode, size, mtime, ctime) of the certificate and of the key file; a replaced file
# (rename, certbot's new symlink target, an edit in place) changes at least one of them.
Signature = tuple[tuple[int, ...] | None, tuple[int, ...] | None]


def pair_signature(pair: CertificatePair) -> Signature:
    """What tells whether ``pair``'s files changed on disk (stat follows symlinks). Blocking."""
    return (_stat(pair.cert), _stat(pair.key))


def _stat(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class LoadedCertificate:
    """A checked pair turned into server options, with what logs and the file watcher need."""

    pair: CertificatePair
    signature: Signature  # of the files as they were just before they were read
    leaf: x509.Certificate
    options: CertificateOptions

    @property
    def fingerprint(self) -> str:
        return ":".join(f"{byte:02X}" for byte in self.leaf.fingerprint(hashes.SHA256()))


def load_certificate(pair: CertificatePair) -> LoadedCertificate:
    """Read, check and build options for ``pair``; TLSConfigError if unusable. Blocking: at
    start-up, or in a thread."""
    signature = pair_signature(pair)
    chain, key = load_pair(pair.cert, pair.key, cert_key=str(pair.cert), key_key=str(pair.key))
    return LoadedCertificate(pair, signature, chain[0], _options(chain, key))


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ReloadableTLSOptions:
    """The one server TLS configuration every listener and STARTTLS share, with a swappable
    certificate.

    Twisted asks ``serverConnectionForTLS`` once per connection (at accept for implicit TLS, at
    ``startTLS`` for STARTTLS), so handing the call to the options current at that moment is the
    whole of the hot reload: new connections get the new certificate, while an open connection
    keeps the OpenSSL context it was created with. ``swap`` is one attribute assignment, made in
    the reactor thread, so a connection sees either the old options or the new, never a mix.
    """

    def __init__(self, loaded: LoadedCertificate) -> None:
        self._current = loaded

    @property
    def current(self) -> LoadedCertificate:
        return self._current

    def swap(self, loaded: LoadedCertificate) -> None:
        """Serve ``loaded`` to connections from now on."""
        self._current = loaded

    def serverConnectionForTLS(self, protocol: object) -> SSL.Connection:  # noqa: N802
        return self._current.options.serverConnectionForTLS(protocol)  # type: ignore[arg-type]

    def getContext(self) -> SSL.Context:  # noqa: N802 - for code that wants a plain context
        return self._current.options.getContext()
