"""Is the certificate usable: valid now and for a while, naming what clients connect to, and
trusted by a stock client?

The certificate judged is the one the listeners presented (several, if different listeners
present different ones); when none could be reached, the configured file (tls.cert_file) or
the one the server generated under <data>/tls. The public host name must be covered (every
client and MTA-STS need it: fail); ``autoconfig.<D>`` and ``mta-sts.<D>`` only serve the
autoconfiguration and MTA-STS pages over HTTPS (warn).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import idna
from cryptography import x509
from cryptography.x509.oid import NameOID

from mailsuite.doctor.listeners import IMPLICIT_TLS, PresentedCertificates, probe
from mailsuite.doctor.probes import ProbeError, connect_host
from mailsuite.doctor.result import CheckResult, failed, passed, warned
from mailsuite.doctor.target import Target
from mailsuite.runtime.tls import GENERATED_CERT

EXPIRY_WARNING = datetime.timedelta(days=14)


def _renew_fix(target: Target) -> str:
    if target.config.acme.enabled:
        return "ACME should have renewed it: see the server log for why it did not"
    return "renew it, or let the server do it: acme.enabled = true"


def _names_fix(target: Target, names: list[str]) -> str:
    if target.config.acme.enabled:
        return f"ACME adds names it can validate: make {', '.join(names)} point to this server"
    return f"get a certificate whose subjectAltName includes {', '.join(names)}"


def certificate_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate is for: its subjectAltName, or, for an old
    certificate without one, its subject CN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(cn.value).lower() for cn in cns], []
    dns_names = [name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName)]
    addresses = [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    return dns_names, addresses


def _a_label(name: str) -> str:
    name = name.lower().rstrip(".")
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return name


def covers(cert: x509.Certificate, host: str) -> bool:
    """Does the certificate name ``host`` (RFC 6125: a ``*.`` wildcard is one whole label)?"""
    dns_names, addresses = certificate_names(cert)
    try:
        return str(ipaddress.ip_address(host)) in addresses
    except ValueError:
        pass
    host = _a_label(host)
    for name in dns_names:
        if name == host:
            return True
        if name.startswith("*.") and host.partition(".")[2] == name[2:] and "." in name[2:]:
            return True
    return False


def _from_file(target: Target) -> tuple[str, x509.Certificate] | None:
    tls = target.config.tls
    path = Path(tls.cert_file) if tls.cert_file else target.config.tls_dir / GENERATED_CERT
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return None
    return f"file {path}", certs[0]


def check_certificates(target: Target, presented: PresentedCertificates) -> list[CheckResult]:
    found = [
        (f"presented by {p.source}", x509.load_der_x509_certificate(p.der))
        for p in presented.distinct()
    ]
    if not found:
        loaded = _from_file(target)
        if loaded is None:
            where = target.config.tls.cert_file or target.config.tls_dir / GENERATED_CERT
            return [
                failed(
                    "certificate",
                    f"no listener presented one and none can be read at {where}",
                    "start the server once (it makes a certificate) or set tls.cert_file",
                )
            ]
        found = [loaded]
    results: list[CheckResult] = []
    for number, (source, cert) in enumerate(found):
        label = "certificate" if number == 0 else f"certificate #{number + 1}"
        results.append(_validity(target, label, source, cert))
        results.append(_hostname(target, label, cert))
        results.extend(_domain_names(target, label, cert))
    results.append(check_trust(target, presented))
    return results


def _validity(target: Target, label: str, source: str, cert: x509.Certificate) -> CheckResult:
    name = f"{label} validity"
    now = datetime.datetime.now(datetime.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return failed(
            name,
            f"{source}: not valid before {start:%Y-%m-%d %H:%M} UTC",
            "check the system clock, or the certificate's dates",
        )
    if now >= end:
        return failed(name, f"{source}: expired on {end:%Y-%m-%d}", _renew_fix(target))
    left = end - now
    if left < EXPIRY_WARNING:
        return warned(
            name, f"{source}: expires in {left.days} days ({end:%Y-%m-%d})", _renew_fix(target)
        )
    return passed(name, f"{source}: valid until {end:%Y-%m-%d} ({left.days} days)")


def _hostname(target: Target, label: str, cert: x509.Certificate) -> CheckResult:
    name = f"{label} hostname"
    if covers(cert, target.hostname):
        return passed(name, f"covers {target.hostname}")
    dns_names, addresses = certificate_names(cert)
    listed = ", ".join(dns_names + addresses) or "no names"
    return failed(
        name,
        f"does not cover {target.hostname} (it names {listed})",
        _names_fix(target, [target.hostname]),
    )


def _domain_names(target: Target, label: str, cert: x509.Certificate) -> list[CheckResult]:
    results = []
    for domain in target.domains:
        wanted = [f"autoconfig.{domain}", f"mta-sts.{domain}"]
        missing = [host for host in wanted if not covers(cert, host)]
        name = f"{label} names {domain}"
        if missing:
            results.append(
                warned(
                    name,
                    f"does not cover {', '.join(missing)} (HTTPS autoconfiguration / MTA-STS)",
                    _names_fix(target, missing),
                )
            )
        else:
            results.append(passed(name, f"covers {', '.join(wanted)}"))
    return results


def check_trust(target: Target, presented: PresentedCertificates) -> CheckResult:
    """One handshake as a stock client makes it (the system's CAs, the chain the server sends),
    to the first listener that presented a certificate; the name is checked apart, above."""
    name = "certificate trust"
    listeners = presented.distinct()
    if not listeners:
        return warned(
            name,
            "no listener completed TLS, so the chain it sends could not be checked",
            "get the TLS listeners working (see the listener checks above)",
        )
    first = listeners[0]
    context = ssl.create_default_context()
    context.check_hostname = False
    host = connect_host(first.address)
    try:
        probe(target, first.role, host, first.address.port, context)
    except ProbeError as exc:
        if "not trusted" not in str(exc):
            return warned(name, f"{first.source}: could not tell: {exc}", "run the check again")
        return warned(
            name,
            f"{first.source}: {exc} (clients warn; MTA-STS senders refuse it)",
            "use a certificate from a public CA with its full chain: acme.enabled = true, "
            "or tls.cert_file holding the chain",
        )
    how = "TLS from the first byte" if first.role in IMPLICIT_TLS else "STARTTLS"
    return passed(name, f"{first.source}: the chain verifies with the system's CAs ({how})")
