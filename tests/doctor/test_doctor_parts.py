"""The doctor's pieces that need no server: name matching, record parsing, the certificate's
dates and names, SMTP reply reading, and the pool that keeps a bad check from spoiling the run."""

from __future__ import annotations

import datetime
import socket
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailsuite.config import load_config
from mailsuite.doctor.authentication import dkim_tags
from mailsuite.doctor.blocklists import query_name
from mailsuite.doctor.certificate import _validity, check_certificates, covers
from mailsuite.doctor.discovery import parse_policy, policy_allows
from mailsuite.doctor.listeners import PresentedCertificates
from mailsuite.doctor.probes import LineClient, ProbeError, http_get
from mailsuite.doctor.result import CheckResult, failed, passed, tally
from mailsuite.doctor.runner import CheckPool, collect
from mailsuite.doctor.target import Target, dns_unsure
from mailsuite.resolver import DNSTemporaryError


def make_certificate(names: list[str], days: float, start_days: float = -1) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start_days))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def target(tmp_path):
    return Target.of(load_config(None, tmp_path / "data"), ["example.com"])


def test_certificate_names_with_wildcards_and_idn():
    cert = make_certificate(["mail.example.com", "*.example.org", "xn--bcher-kva.example"], 90)
    assert covers(cert, "MAIL.example.com.")
    assert covers(cert, "mta-sts.example.org")
    assert not covers(cert, "example.org")  # a wildcard is one whole label, not zero
    assert not covers(cert, "a.b.example.org")
    assert covers(cert, "bücher.example")
    assert not covers(cert, "127.0.0.1")


def test_certificate_dates(target):
    fine = _validity(target, "certificate validity", "file x", make_certificate(["h"], 90))
    assert fine.status == "pass"
    soon = _validity(target, "certificate validity", "file x", make_certificate(["h"], 5.5))
    assert (soon.status, soon.detail.split(":")[1].strip()[:17]) == ("warn", "expires in 5 days")
    assert "acme.enabled = true" in soon.fix
    gone = _validity(target, "certificate validity", "file x", make_certificate(["h"], -1, -9))
    assert gone.status == "fail" and "expired" in gone.detail
    early = _validity(target, "certificate validity", "file x", make_certificate(["h"], 9, 2))
    assert early.status == "fail" and "not valid before" in early.detail


def test_certificate_from_the_file_when_no_listener_answers(target):
    directory = target.config.tls_dir
    directory.mkdir(parents=True)
    cert = make_certificate([target.hostname, "autoconfig.example.com"], 60)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    results = {r.check: r for r in check_certificates(target, PresentedCertificates())}
    assert results["certificate validity"].detail.startswith(f"file {directory / 'cert.pem'}: ")
    assert results["certificate hostname"].status == "pass"
    names = results["certificate names example.com"]
    assert names.status == "warn"
    assert names.detail.startswith("does not cover mta-sts.example.com ")
    assert results["certificate trust"].status == "warn"


def test_blocklist_query_names():
    assert query_name("192.0.2.99", "zen.example") == "99.2.0.192.zen.example"
    name = query_name("2001:db8::1", "bl.example.")
    assert name.startswith("1.0.0.0.") and name.endswith(".8.b.d.0.1.0.0.2.bl.example")
    assert len(name.split(".")) == 32 + 2


def test_mta_sts_policy_matching():
    policy = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\nmx: *.b.test\n")
    assert policy["mode"] == ["enforce"]
    assert policy_allows(policy["mx"], "Mail.Example.com.")
    assert policy_allows(policy["mx"], "mx1.b.test")
    assert not policy_allows(policy["mx"], "b.test")
    assert not policy_allows(policy["mx"], "x.mx1.b.test")


def test_dkim_tags_unfold_the_key():
    tags = dkim_tags("v=DKIM1; k=ed25519;\tp=AAA B\r\n CC; p=second")
    assert tags == {"v": "DKIM1", "k": "ed25519", "p": "AAABCC"}


def test_dns_errors_read_short():
    exc = DNSTemporaryError(
        "DNS lookup of example.com MX failed: The resolution lifetime expired after 0.6 s"
    )
    assert dns_unsure(exc) == "could not tell: DNS lookup of example.com MX failed (timed out)"


def test_result_lines():
    assert passed("queue", "empty").line() == "PASS  queue: empty"
    line = failed("mx a.test", "no MX record", "publish one").line()
    assert line == "FAIL  mx a.test: no MX record  -> fix: publish one"
    assert tally([passed("a", "x"), passed("b", "y")])["pass"] == 2


def _serve(script: bytes) -> tuple[socket.socket, int]:
    """A one-shot server on 127.0.0.1 that sends ``script`` to its client, then ends."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(script)
            connection.shutdown(socket.SHUT_WR)  # EOF after the script; read until the client
            connection.settimeout(5)  # leaves, so no unread request makes the close a reset
            while connection.recv(4096):
                pass

    threading.Thread(target=answer, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_smtp_replies_and_http_over_a_real_socket():
    listener, port = _serve(b"220-first\r\n220 second\r\n250 ok\r\nnonsense\r\n")
    with listener, LineClient.connect("127.0.0.1", port) as client:
        assert client.smtp_reply() == (220, ["first", "second"])
        assert client.smtp_reply() == (250, ["ok"])
        with pytest.raises(ProbeError, match="not an SMTP reply"):
            client.smtp_reply()
        with pytest.raises(ProbeError, match="closed"):
            client.readline()
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nmx:\r\n2\r\n a\r\n0\r\n\r\n"
    )
    listener, port = _serve(response)
    with listener, LineClient.connect("127.0.0.1", port) as client:
        assert http_get(client, "h.test", "/x") == (200, b"mx: a")


def test_the_pool_turns_crashes_and_slowness_into_failures():
    def crash() -> list[CheckResult]:
        raise RuntimeError("boom")

    release = threading.Event()

    def slow() -> list[CheckResult]:
        release.wait(10)  # overruns the pool's deadline until the test lets it go
        return [passed("slow", "late")]

    with CheckPool(workers=2, deadline=0.3) as pool:
        pending = [pool.submit("crash", crash), pool.submit("slow", slow)]
        results = collect(pending)
        release.set()
    assert [(r.check, r.status) for r in results] == [("crash", "fail"), ("slow", "fail")]
    assert results[0].detail == "the check itself failed: RuntimeError: boom"
    assert results[1].detail == "did not finish in time"
