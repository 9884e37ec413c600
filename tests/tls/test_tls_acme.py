"""ACME against a real CA, offline: Debian's ``pebble`` (Let's Encrypt's test server) validates
HTTP-01 challenges by fetching them from our http role, with names resolved through the fake DNS
zone; the issued certificate must then be what imaps and submissions show new clients."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.net import free_port
from support.tools import tool_or_skip
from twisted.logger import formatEvent, globalLogPublisher

from mailsuite.acme.client import ValidationFailed
from mailsuite.acme.names import certificate_names
from mailsuite.acme.renewal import renewal_reason

HOSTNAME = "mx.test.example"
NAMES = {HOSTNAME, "autoconfig.example.com", "mta-sts.example.com"}
VALIDITY = datetime.timedelta(days=7)  # pebble's certificates, shorter than acme.renew_days' 30

# --- pebble ---------------------------------------------------------------------------------------


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _https_identity(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a 127.0.0.1 certificate for pebble's own HTTPS (Debian's package
    ships none of upstream's test certificates); returns (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("pebble test CA"))
        .issuer_name(name("pebble test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    for path, obj in zip(paths, (ca, leaf, key), strict=True):
        path.write_bytes(_pem(obj))
    return paths


@dataclass
class Pebble:
    process: subprocess.Popen
    port: int
    management_port: int
    http_port: int  # where pebble's HTTP-01 validation connects: our http role must listen here
    ca_file: Path  # trust for pebble's own HTTPS
    log: Path

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def issuing_root(self) -> Path:
        """Pebble's (per run) root CA, which its certificates chain to."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            pem = response.read()
        path = self.ca_file.with_name("pebble-root.pem")
        path.write_bytes(pem)
        return path


@pytest.fixture
def pebble(tmp_path, zone):
    """A pebble on free ports of 127.0.0.1, resolving names through the ``zone`` fixture."""
    binary = tool_or_skip("pebble")
    directory = tmp_path / "pebble"
    directory.mkdir()
    ca_file, cert, key = _https_identity(directory)
    port, management, http_port, tls_port = (free_port() for _ in range(4))
    config = directory / "pebble-config.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{port}",
                    "managementListenAddress": f"127.0.0.1:{management}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": http_port,
                    "tlsPort": tls_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                    "certificateValidityPeriod": int(VALIDITY.total_seconds()),
                }
            }
        )
    )
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    log = directory / "pebble.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-config", str(config), "-dnsserver", f"127.0.0.1:{zone.port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    running = Pebble(process, port, management, http_port, ca_file, log)
    try:
        _wait_for_port(port, running)
        yield running
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, pebble: Pebble) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert pebble.process.poll() is None, pebble.log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"pebble never listened: {pebble.log.read_text()}")


@pytest.fixture
def acme_suite(make_suite, pebble, zone):
    """Start a server with ACME against ``pebble``: ``acme_suite(**overrides)``."""

    def start(overrides: dict[str, object] | None = None):
        settings: dict[str, object] = {
            "acme.enabled": True,
            "acme.directory": pebble.directory,
            "acme.ca_file": str(pebble.ca_file),
            "acme.email": "postmaster@example.com",
            "acme.renew_days": 1,  # a fresh VALIDITY-day certificate is kept
            "public.hostname": HOSTNAME,
            "http.listen": [f"127.0.0.1:{pebble.http_port}"],
        }
        return make_suite({**settings, **(overrides or {})})

    return start


# --- what a client sees ---------------------------------------------------------------------------


def served(port: int, root: Path | None = None) -> x509.Certificate:
    """The certificate a new implicit-TLS connection shows; verified for HOSTNAME if ``root``."""
    if root is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOSTNAME) as conn:
            return x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))


def sans(cert: x509.Certificate) -> set[str]:
    extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(extension.value.get_values_for_type(x509.DNSName))


def live_leaf(suite) -> x509.Certificate:
    return x509.load_pem_x509_certificates(
        (suite.config.acme_dir / "live" / "fullchain.pem").read_bytes()
    )[0]


def check(suite):
    """One ACME check now, waited for (after any check already running)."""
    return suite.reactor.call(suite.service.acme.check)


def _resolve_to_loopback(zone, *names: str) -> None:
    for name in names:
        zone.a(name, "127.0.0.1")


# --- the tests ------------------------------------------------------------------------------------


def test_pebble_issues_for_the_hostname_and_each_domain_and_clients_see_it(
    acme_suite, pebble, zone
):
    _resolve_to_loopback(zone, *NAMES)
    suite = acme_suite()
    suite.add_user("a@example.com")  # makes example.com a local domain

    check(suite)  # after the start-up check, which may have run before the domain existed

    leaf = live_leaf(suite)
    assert sans(leaf) == NAMES
    root = pebble.issuing_root()
    for role in ("imaps", "submissions", "pop3s"):
        shown = served(suite.port(role), root=root)  # verifies the chain and the hostname
        assert shown.serial_number == leaf.serial_number, role
        assert sans(shown) == NAMES
    files = suite.config.acme_dir
    assert stat.S_IMODE((files / "account.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((files / "live" / "privkey.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((files / "live" / "fullchain.pem").stat().st_mode) == 0o600
    assert list((files / "challenges").iterdir()) == []  # answered challenges are removed
    assert check(suite) is None  # nothing to do: the names are covered and far from expiry


def test_renewal_when_fewer_days_are_left_than_renew_days(acme_suite, zone):
    _resolve_to_loopback(zone, HOSTNAME)
    suite = acme_suite({"acme.renew_days": 30})  # pebble issues for VALIDITY (7 days)

    check(suite)  # the first certificate (here, or by the start-up check already)
    first = live_leaf(suite)
    renewed = check(suite)

    assert renewed is not None and "renewing at 30" in renewed.reason
    second = live_leaf(suite)
    assert second.serial_number != first.serial_number
    assert second.public_key() != first.public_key()  # a renewal rotates the key too
    assert served(suite.port("imaps")).serial_number == second.serial_number
    issues = {p.name for p in (suite.config.acme_dir / "certs").iterdir()}
    assert len(issues) == 2  # the live one and the one before it
    live = os.readlink(suite.config.acme_dir / "live")
    assert live.startswith("certs/") and live.removeprefix("certs/") in issues


def test_a_name_failing_validation_does_not_block_the_others(acme_suite, zone):
    _resolve_to_loopback(zone, HOSTNAME, "mta-sts.example.com")  # no autoconfig.example.com
    suite = acme_suite()
    suite.add_user("a@example.com")

    check(suite)

    leaf = live_leaf(suite)
    assert sans(leaf) == {HOSTNAME, "mta-sts.example.com"}
    assert served(suite.port("imaps")).serial_number == leaf.serial_number
    failed = json.loads((suite.config.acme_dir / "failed.json").read_text())
    assert set(failed) == {"autoconfig.example.com"}
    assert check(suite) is None  # not retried at every check: the CA's limits are spared


def test_until_issued_the_generated_certificate_is_served(acme_suite, zone):
    # The hostname does not resolve: pebble cannot validate it, so nothing is issued.
    suite = acme_suite()
    generated = x509.load_pem_x509_certificate(suite.cert_path.read_bytes())

    with pytest.raises(ValidationFailed) as info:
        check(suite)

    assert info.value.names == [HOSTNAME]
    assert served(suite.port("imaps")).serial_number == generated.serial_number
    assert not (suite.config.acme_dir / "live").exists()


def test_an_unreachable_ca_is_retried_later_and_the_server_goes_on(make_suite):
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        suite = make_suite(
            {
                "acme.enabled": True,
                "acme.directory": f"https://127.0.0.1:{free_port()}/dir",
                "public.hostname": HOSTNAME,
            }
        )
        acme = suite.service.acme
        with pytest.raises(requests.ConnectionError):
            check(suite)  # runs after the start-up check, which failed the same way
    finally:
        globalLogPublisher.removeObserver(events.append)

    logged = [formatEvent(e) for e in events if e.get("log_namespace") == "mailsuite.acme"]
    assert any("not obtained" in line and "retry in 600 s" in line for line in logged), logged
    assert not any(e.get("log_failure") for e in events)  # a one-line error, no traceback
    assert suite.reactor.call(lambda: acme._next is not None and acme._next.active())
    generated = x509.load_pem_x509_certificate(suite.cert_path.read_bytes())
    assert served(suite.port("imaps")).serial_number == generated.serial_number


# --- the decisions, without a CA ----------------------------------------------------------------


def test_names_are_the_hostname_then_two_per_domain():
    assert certificate_names("MX.Example.ORG", ["b.example", "a.example", "bücher.example"]) == [
        "mx.example.org",
        "autoconfig.a.example",
        "mta-sts.a.example",
        "autoconfig.b.example",
        "mta-sts.b.example",
        "autoconfig.xn--bcher-kva.example",
        "mta-sts.xn--bcher-kva.example",
    ]
    assert certificate_names("localhost", []) == []
    assert certificate_names("192.0.2.1", ["d.example"]) == [
        "autoconfig.d.example",
        "mta-sts.d.example",
    ]


def _leaf(names: list[str], days_left: float, now: datetime.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def test_renewal_reasons():
    now = datetime.datetime.now(datetime.UTC)
    names = ["mx.example.org", "autoconfig.example.org"]
    assert renewal_reason(None, names, 30, now) == "no ACME certificate yet"
    assert renewal_reason(_leaf(names, 60, now), names, 30, now) is None
    assert renewal_reason(_leaf(names[::-1], 60, now), names, 30, now) is None  # order is free
    assert "renewing at 30" in renewal_reason(_leaf(names, 10, now), names, 30, now)
    added = renewal_reason(_leaf(names[:1], 60, now), names, 30, now)
    assert added.startswith("names changed") and "autoconfig.example.org" in added
    removed = renewal_reason(_leaf(names, 60, now), names[:1], 30, now)
    assert removed.startswith("names changed")


def _acme_config(tmp_path: Path):
    from mailsuite.config import load_config

    config_file = tmp_path / "mailsuite.toml"
    config_file.write_text('[acme]\nenabled = true\n[public]\nhostname = "mx.test.example"\n')
    return load_config(config_file, tmp_path / "data")


def _self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _pem(key)


def test_a_restart_serves_the_issued_certificate_and_survives_a_broken_one(tmp_path):
    from mailsuite.acme.files import ACMEFiles
    from mailsuite.runtime.certwatch import certificate_candidates, load_first

    config = _acme_config(tmp_path)
    generated = config.tls_dir / "cert.pem"
    assert load_first(certificate_candidates(config)).pair.cert == generated  # none issued yet

    files = ACMEFiles(config.acme_dir)
    cert_pem, key_pem = _self_signed("issued")
    files.install(cert_pem, key_pem)
    loaded = load_first(certificate_candidates(config))
    assert loaded.pair == files.live_pair
    assert loaded.leaf.subject.rfc4514_string() == "CN=issued"

    # A live pair that does not load (here: a key from elsewhere) is skipped at start-up.
    files.live_pair.key.write_bytes(_self_signed("other")[1])
    assert load_first(certificate_candidates(config)).pair.cert == generated


def test_install_switches_live_in_one_rename_and_keeps_one_previous_issue(tmp_path):
    from mailsuite.acme.files import ACMEFiles
    from mailsuite.runtime.tls import TLSConfigError

    files = ACMEFiles(tmp_path / "acme")
    for label in ("one", "two", "three"):
        files.install(*_self_signed(label))
    assert files.current().subject.rfc4514_string() == "CN=three"
    assert len(list(files.certs.iterdir())) == 2
    assert [p.name for p in files.root.iterdir() if p.name.startswith(".")] == []

    cert_pem, _ = _self_signed("mismatch")
    with pytest.raises(TLSConfigError):  # a pair that does not match never becomes live
        files.install(cert_pem, _self_signed("other")[1])
    assert files.current().subject.rfc4514_string() == "CN=three"
    assert len(list(files.certs.iterdir())) == 2
