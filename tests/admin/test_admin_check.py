"""mailsuite-admin check: the doctor, in-process, against a real server and a fake DNS zone.

One server, one zone and one SMTP sink serve the whole module (a server start makes keys and a
certificate); every test starts from the healthy zone below, breaks one thing, and the zone is
put back after it. The doctor reads its own settings file, naming the ports the server really
bound (the server's own file says port 0).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_SETTINGS, RunningSuite, start_suite
from support.config import merge, to_toml
from support.dns import FakeZone
from support.net import free_port
from support.sink import SMTPSink
from twisted.names import dns

from mailsuite.admin.cli import main
from mailsuite.authn.keys import DKIMKey, DKIMKeyStore
from mailsuite.queue.entry import iso
from mailsuite.queue.spool import QueueSpool

DOMAIN = "example.com"
HOST = "mx.test.example"  # the suite's host name: its generated certificate names it
ADDRESS = "127.0.0.1"  # the "public" address: where the server really listens
ROLES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http", "https")

# Healthy, with the only warnings this setup cannot avoid: a self-signed certificate for HOST
# alone (not trusted, no autoconfig./mta-sts. names) and an MTA-STS policy that cannot be
# fetched over HTTPS on port 443 (compared with what the server would serve instead).
EXPECTED_WARNINGS = {"certificate trust", f"certificate names {DOMAIN}", f"mta-sts {DOMAIN}"}


@dataclass
class World:
    suite: RunningSuite
    zone: FakeZone
    sink: SMTPSink
    directory: Path
    key: DKIMKey

    def settings(self) -> dict[str, object]:
        """What the doctor's settings file says on top of TEST_SETTINGS."""
        listen = {f"{role}.listen": [f"127.0.0.1:{self.suite.port(role)}"] for role in ROLES}
        return {
            **listen,
            "dns.nameservers": ["127.0.0.1"],
            "dns.port": self.zone.port,
            "dns.timeout": 2,
            "public.hostname": HOST,
            "public.ipv4": [ADDRESS],
            "check.blocklists": ["bl.test"],
            "check.probe_mx": f"127.0.0.1:{self.sink.port}",
        }


def publish_healthy(world: World) -> None:
    zone, suite = world.zone, world.suite
    zone.mx(DOMAIN, (10, HOST))
    zone.a(HOST, ADDRESS)
    zone.ptr(ADDRESS, HOST)
    zone.txt(DOMAIN, "v=spf1 mx -all")
    zone.txt(world.key.dns_name(), *world.key.txt_strings())
    zone.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject; rua=mailto:postmaster@example.com")
    zone.txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=20261207")
    for service, role in (("_submissions._tcp", "submissions"), ("_imaps._tcp", "imaps")):
        record = dns.Record_SRV(0, 1, suite.port(role), HOST.encode())
        zone.add(f"{service}.{DOMAIN}", record)
    zone.cname(f"autoconfig.{DOMAIN}", HOST)


@pytest.fixture(scope="module")
def world(reactor_thread, tmp_path_factory):
    zone, sink = FakeZone(), SMTPSink()
    reactor_thread.call(zone.start, reactor_thread.reactor)
    reactor_thread.call(sink.start, reactor_thread.reactor, 0)
    directory = tmp_path_factory.mktemp("check")
    suite = start_suite(reactor_thread, directory, {"https.listen": ["127.0.0.1:0"]})
    try:
        suite.add_user(f"alice@{DOMAIN}")
        key = DKIMKeyStore(suite.config.dkim_dir).generate(DOMAIN, "rsa")
        built = World(suite, zone, sink, directory, key)
        publish_healthy(built)
        yield built
    finally:
        reactor_thread.call(suite.service.stopService)
        reactor_thread.call(sink.stop)
        reactor_thread.call(zone.stop)


@pytest.fixture(autouse=True)
def healthy_zone(world):
    """Each test breaks the zone its own way; put it back afterwards."""
    saved = {name: list(records) for name, records in world.zone.records.items()}
    yield
    world.zone.records.clear()
    world.zone.records.update(saved)
    world.zone.servfail.clear()
    world.zone.silent.clear()


@dataclass
class Report:
    code: int
    out: str
    err: str

    @property
    def items(self) -> list[dict[str, str]]:
        return json.loads(self.out)

    def item(self, check: str) -> dict[str, str]:
        found = [item for item in self.items if item["check"] == check]
        assert len(found) == 1, (check, [item["check"] for item in self.items])
        return found[0]

    def status(self, check: str) -> str:
        return self.item(check)["status"]

    def not_passed(self) -> dict[str, str]:
        return {i["check"]: i["status"] for i in self.items if i["status"] != "pass"}


@pytest.fixture
def check(world, tmp_path, capsys):
    """check(*domains, settings={...}, text=False) -> Report of one in-process run."""

    def run(*domains: str, settings: dict | None = None, text: bool = False) -> Report:
        config = tmp_path / "doctor.toml"
        config.write_text(to_toml(merge(TEST_SETTINGS, {**world.settings(), **(settings or {})})))
        argv = ["--config", str(config), "--data-dir", str(world.directory / "data"), "check"]
        code = main([*argv, *([] if text else ["--json"]), *domains])
        out, err = capsys.readouterr()
        return Report(code, out, err)

    return run


def replace(zone: FakeZone, name: str, record_type: int, *records) -> None:
    """Swap the records of one type at ``name`` for ``records`` (none: remove them)."""
    kept = [r for r in zone.records.get(name, []) if r.TYPE != record_type]
    zone.records[name] = kept + list(records)
    if not zone.records[name]:
        del zone.records[name]


# --- the healthy server -------------------------------------------------------------------------


def test_a_healthy_server_passes_with_only_the_expected_warnings(check, world):
    report = check()
    assert (report.code, report.err) == (0, "")
    assert report.not_passed() == {name: "warn" for name in EXPECTED_WARNINGS}
    names = [item["check"] for item in report.items]
    listeners = [f"listener {role} 127.0.0.1:{world.suite.port(role)}" for role in ROLES]
    assert names[: 1 + len(ROLES)] == ["config", *listeners]
    for name in (
        "certificate validity",
        "certificate hostname",
        "dns resolver",
        f"mx {DOMAIN}",
        f"spf {DOMAIN} {ADDRESS}",
        f"dkim {world.key.dns_name()}",
        f"dmarc {DOMAIN}",
        f"srv _submissions._tcp.{DOMAIN}",
        f"srv _imaps._tcp.{DOMAIN}",
        f"autoconfig {DOMAIN}",
        f"reverse dns {ADDRESS}",
        f"blocklist bl.test {ADDRESS}",
        "open relay",
        "outbound port 25",
        "queue",
    ):
        assert name in names
    for item in report.items:
        assert set(item) == {"check", "status", "detail", "fix"}
        assert item["detail"]
        assert (item["fix"] == "") == (item["status"] == "pass"), item
    assert "STARTTLS" in report.item(listeners[0])["detail"]
    assert "GET /healthz 200" in report.item(listeners[-1])["detail"]  # https: TLS, then GET
    assert "policy not fetched" in report.item(f"mta-sts {DOMAIN}")["detail"]
    assert "refused" in report.item("open relay")["detail"]


def test_text_output_is_one_line_per_item_and_a_failure_exits_1(check, world):
    replace(world.zone, f"_dmarc.{DOMAIN}", dns.TXT)
    report = check(text=True)
    assert report.code == 1
    assert (
        report.err == f"mailsuite-admin: error: 1 of {report.out.count(chr(10)) - 1} checks "
        f"failed: dmarc {DOMAIN}\n"
    )
    lines = report.out.splitlines()
    assert lines[0].startswith("PASS  config: ")
    assert all(line[:4] in ("PASS", "WARN", "FAIL") for line in lines[:-1])
    [dmarc] = [line for line in lines if line.startswith("FAIL")]
    assert dmarc.startswith(f"FAIL  dmarc {DOMAIN}: no DMARC record at _dmarc.{DOMAIN}  -> fix: ")
    assert lines[-1].endswith("1 fail")


def test_only_the_named_domains_are_checked(check):
    report = check("Other.Example")
    names = [item["check"] for item in report.items]
    assert "mx other.example" in names and f"mx {DOMAIN}" not in names
    assert report.item("mx other.example")["detail"] == "other.example does not exist in DNS"
    assert report.status("dkim other.example") == "warn"  # no key of ours
    assert report.code == 1


# --- DNS: MX, reverse DNS, SPF, DKIM, DMARC, MTA-STS, discovery --------------------------------


def test_a_missing_mx_fails(check, world):
    replace(world.zone, DOMAIN, dns.MX)
    report = check()
    assert report.code == 1
    item = report.item(f"mx {DOMAIN}")
    assert (item["status"], item["detail"]) == ("fail", "no MX record")
    assert item["fix"] == f'publish "{DOMAIN}. MX 10 {HOST}."'


def test_an_mx_elsewhere_fails_and_a_backup_mx_warns(check, world):
    world.zone.a("elsewhere.test", "192.0.2.1")
    replace(world.zone, DOMAIN, dns.MX, dns.Record_MX(10, b"elsewhere.test"))
    item = check().item(f"mx {DOMAIN}")
    assert item["status"] == "fail"
    assert "none resolves to this server" in item["detail"]
    world.zone.mx(DOMAIN, (20, HOST))
    item = check().item(f"mx {DOMAIN}")
    assert item["status"] == "warn"
    assert "only a backup" in item["detail"]


def test_without_public_addresses_the_mx_name_is_checked(check, world):
    report = check(settings={"public.ipv4": []})
    assert report.code == 0
    assert report.status(f"mx {DOMAIN}") == "warn"
    assert "cannot be checked" in report.item(f"mx {DOMAIN}")["detail"]
    for name in ("reverse dns", f"spf {DOMAIN}", "blocklists"):
        assert report.status(name) == "warn"
        assert "public.ipv4" in report.item(name)["fix"]
    replace(world.zone, DOMAIN, dns.MX, dns.Record_MX(10, b"elsewhere.test"))
    item = check(settings={"public.ipv4": []}).item(f"mx {DOMAIN}")
    assert (item["status"], item["detail"]) == ("fail", f"MX 10 elsewhere.test, not {HOST}")


def test_reverse_dns_missing_or_naming_another_host_fails(check, world):
    reverse = "1.0.0.127.in-addr.arpa"
    del world.zone.records[reverse]
    item = check().item(f"reverse dns {ADDRESS}")
    assert (item["status"], item["detail"]) == ("fail", "no PTR record")
    assert HOST in item["fix"]
    world.zone.ptr(ADDRESS, "dsl-127-0-0-1.provider.test")
    item = check().item(f"reverse dns {ADDRESS}")
    assert item["status"] == "fail"
    assert item["detail"] == f"PTR names dsl-127-0-0-1.provider.test, not {HOST}"


def test_spf_that_does_not_authorise_us_fails_and_softfail_warns(check, world):
    replace(world.zone, DOMAIN, dns.TXT, dns.Record_TXT(b"v=spf1 ip4:192.0.2.1 -all"))
    report = check()
    item = report.item(f"spf {DOMAIN} {ADDRESS}")
    assert item["status"] == "fail"
    assert item["detail"].startswith("fail")
    assert "ip4:127.0.0.1" in item["fix"]
    assert report.code == 1
    replace(world.zone, DOMAIN, dns.TXT, dns.Record_TXT(b"v=spf1 ip4:192.0.2.1 ~all"))
    assert check().status(f"spf {DOMAIN} {ADDRESS}") == "warn"
    replace(world.zone, DOMAIN, dns.TXT)
    item = check().item(f"spf {DOMAIN} {ADDRESS}")
    assert (item["status"], item["detail"]) == ("fail", "no SPF record")


def test_dkim_not_published_or_another_key_fails(check, world, tmp_path):
    name = world.key.dns_name()
    del world.zone.records[name]
    item = check().item(f"dkim {name}")
    assert item["status"] == "fail"
    assert item["detail"] == f"rsa key {world.key.selector} is not published"
    assert item["fix"] == f"publish it: see 'mailsuite-admin dkim show {DOMAIN}'"
    stranger = DKIMKeyStore(tmp_path / "other").generate(DOMAIN, "rsa")
    world.zone.txt(name, *stranger.txt_strings())
    item = check().item(f"dkim {name}")
    assert item["status"] == "fail"
    assert "another key" in item["detail"]


def test_dmarc_missing_fails_and_p_none_warns(check, world):
    replace(world.zone, f"_dmarc.{DOMAIN}", dns.TXT)
    item = check().item(f"dmarc {DOMAIN}")
    assert item["status"] == "fail"
    assert "v=DMARC1; p=quarantine" in item["fix"]
    world.zone.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=none")
    report = check()
    assert report.status(f"dmarc {DOMAIN}") == "warn"
    assert report.code == 0


def test_an_mx_the_mta_sts_policy_does_not_allow_fails(check, world):
    world.zone.a("backup.test.example", ADDRESS)
    world.zone.mx(DOMAIN, (20, "backup.test.example"))
    report = check()
    assert report.status(f"mx {DOMAIN}") == "pass"
    item = report.item(f"mta-sts {DOMAIN}")
    assert item["status"] == "fail"
    assert "does not allow MX backup.test.example" in item["detail"]


def test_missing_client_discovery_records_warn(check, world):
    del world.zone.records[f"_imaps._tcp.{DOMAIN}"]
    del world.zone.records[f"autoconfig.{DOMAIN}"]
    report = check()
    assert report.code == 0
    item = report.item(f"srv _imaps._tcp.{DOMAIN}")
    assert item["status"] == "warn"
    assert item["fix"] == (
        f'publish "_imaps._tcp.{DOMAIN}. SRV 0 1 {world.suite.port("imaps")} {HOST}."'
    )
    assert report.status(f"autoconfig {DOMAIN}") == "warn"


def test_a_blocklisted_address_fails(check, world):
    world.zone.a("1.0.0.127.bl.test", "127.0.0.2")
    report = check()
    item = report.item(f"blocklist bl.test {ADDRESS}")
    assert (item["status"], item["detail"]) == ("fail", "listed (127.0.0.2)")
    assert report.code == 1


def test_dns_that_does_not_answer_fails_once_and_leaves_the_rest_unsure(check):
    started = time.monotonic()
    report = check(settings={"dns.port": free_port(), "dns.timeout": 0.3})
    assert time.monotonic() - started < 30  # bounded: every lookup times out, none hangs
    assert report.status("dns resolver") == "fail"
    for name in (f"mx {DOMAIN}", f"dmarc {DOMAIN}", f"reverse dns {ADDRESS}"):
        item = report.item(name)
        assert item["status"] == "warn"
        assert item["detail"].startswith("could not tell: DNS lookup of ")


# --- listeners and SMTP probes ------------------------------------------------------------------


def test_a_stopped_listener_fails(check):
    port = free_port()
    report = check(settings={"imaps.listen": [f"127.0.0.1:{port}"]})
    assert report.code == 1
    item = report.item(f"listener imaps 127.0.0.1:{port}")
    assert item["status"] == "fail"
    assert item["detail"] == "connection refused (nothing listens there)"
    assert "twistd mailsuite" in item["fix"]


def test_a_server_that_relays_for_anyone_fails(check, world):
    port = world.sink.port  # the sink answers 250 to every RCPT and offers no STARTTLS
    report = check(settings={"smtp.listen": [f"127.0.0.1:{port}"]})
    item = report.item("open relay")
    assert item["status"] == "fail"
    assert "accepted RCPT TO:<probe@example.net> without AUTH" in item["detail"]
    listener = report.item(f"listener smtp 127.0.0.1:{port}")
    assert (listener["status"], listener["detail"]) == (
        "fail",
        "STARTTLS is not offered after EHLO",
    )


def test_outbound_port_25_unset_warns_and_unreachable_fails(check, world):
    world.zone.a("probe.test", "127.0.0.1")  # a name is looked up through dns.nameservers
    item = check(settings={"check.probe_mx": f"probe.test:{world.sink.port}"}).item(
        "outbound port 25"
    )
    assert (item["status"], item["detail"]) == (
        "pass",
        f"probe.test:{world.sink.port} answered: 220 sink.test ESMTP",
    )
    item = check(settings={"check.probe_mx": ""}).item("outbound port 25")
    assert item["status"] == "warn"
    assert "check.probe_mx" in item["fix"]
    port = free_port()
    item = check(settings={"check.probe_mx": f"127.0.0.1:{port}"}).item("outbound port 25")
    assert item["status"] == "fail"
    assert item["detail"] == f"127.0.0.1:{port}: connection refused (nothing listens there)"


# --- the queue ----------------------------------------------------------------------------------


def test_an_old_queue_entry_warns(check, world, tmp_path):
    message = tmp_path / "message.eml"
    message.write_bytes(b"Subject: stuck\r\n\r\nstill here\r\n")
    spool = QueueSpool(world.suite.config.queue_dir)  # the running server never sees it
    queue_id = spool.enqueue_file(message, f"alice@{DOMAIN}", ["bob@remote.test"])
    try:
        assert check().item("queue")["detail"].startswith("1 message, the oldest 0.0 h old")
        envelope = spool.load(queue_id)
        envelope["created"] = iso(time.time() - 50 * 3600)
        spool.save(queue_id, json.dumps(envelope).encode())
        report = check()
        item = report.item("queue")
        assert item["status"] == "warn"
        assert (
            item["detail"]
            == f"1 of 1 queued messages older than 24 h (oldest {queue_id}, 2.1 days)"
        )
        assert report.code == 0
    finally:
        spool.delete(queue_id)
