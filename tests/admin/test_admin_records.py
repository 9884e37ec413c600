"""mailsuite-admin dns DOMAIN: the records read back with dnspython's zone reader, no DNS needed."""

import io
import json
import re

import dns.rdatatype
import dns.zone
import pytest
from conftest import cli_fails, cli_ok

from mailsuite.admin import records
from mailsuite.admin.cli import main
from mailsuite.authn.keys import DKIMKeyStore
from mailsuite.config import load_config

ok, fails = cli_ok, cli_fails

HOST = "mail.example.com"
FULL = """
[server]
hostname = "mail.example.com"
[public]
ipv4 = ["192.0.2.25"]
ipv6 = ["2001:db8::25"]
ports = { imaps = 9993 }
[https]
listen = ["0.0.0.0:443"]
[pop3]
listen = []
[mta_sts]
mode = "enforce"
"""


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def config_file(tmp_path):
    """write(text) -> the path of a configuration file with that text."""

    def write(text=FULL):
        path = tmp_path / "mailsuite.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def admin(data, config_file, capsys, monkeypatch):
    """run(*args, config=FULL) -> (exit code, stdout, stderr)."""

    def run(*args, config=FULL):
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(["--config", str(config_file(config)), "--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def parse(text, origin="example.com"):
    """{(name, type): [rdata text, or for TXT the joined strings]} of a zone-file fragment."""
    zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    found = {}
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            assert rdataset.ttl == 3600
            key = (name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rdataset.rdtype))
            found[key] = sorted(_value(rdata) for rdata in rdataset)
    return found


def _value(rdata):
    if rdata.rdtype == dns.rdatatype.TXT:
        assert all(len(piece) <= 255 for piece in rdata.strings)
        return b"".join(rdata.strings).decode()
    return rdata.to_text()


def test_zone_has_every_record_and_parses(admin, data, tmp_path):
    ok(admin("domain", "add", "example.com"))
    text = ok(admin("dns", "Example.COM"))
    assert "$ORIGIN example.com.\n$TTL 3600\n" in text
    zone = parse(text)
    expected = {
        ("example.com", "MX"): ["10 mail.example.com."],
        ("mail.example.com", "A"): ["192.0.2.25"],
        ("mail.example.com", "AAAA"): ["2001:db8::25"],
        ("example.com", "TXT"): ["v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 mx ~all"],
        ("_dmarc.example.com", "TXT"): [
            "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"
        ],
        ("mta-sts.example.com", "CNAME"): ["mail.example.com."],
        ("_smtp._tls.example.com", "TXT"): ["v=TLSRPTv1; rua=mailto:postmaster@example.com"],
        ("_submissions._tcp.example.com", "SRV"): ["0 1 2465 mail.example.com."],
        ("_imaps._tcp.example.com", "SRV"): ["0 1 9993 mail.example.com."],  # public.ports
        ("_pop3s._tcp.example.com", "SRV"): ["20 1 2995 mail.example.com."],
        ("_submission._tcp.example.com", "SRV"): ["10 1 2587 mail.example.com."],
        ("_imap._tcp.example.com", "SRV"): ["10 1 2143 mail.example.com."],
        ("_pop3._tcp.example.com", "SRV"): ["0 0 0 ."],  # off: RFC 6186 4 null target
        ("autoconfig.example.com", "CNAME"): ["mail.example.com."],
        ("autodiscover.example.com", "CNAME"): ["mail.example.com."],
        ("_autodiscover._tcp.example.com", "SRV"): ["0 0 443 mail.example.com."],
        ("example.com", "CAA"): ['0 issue "letsencrypt.org"'],
    }
    for key, value in expected.items():
        assert zone.pop(key) == value, key
    policy_id = records.mta_sts_id(load_config(tmp_path / "mailsuite.toml"))
    assert zone.pop(("_mta-sts.example.com", "TXT")) == [f"v=STSv1; id={policy_id}"]
    keys = DKIMKeyStore(data / "dkim").keys("example.com")
    assert len(keys) == 2
    for key in keys:
        assert zone.pop((key.dns_name(), "TXT")) == [key.txt_value()]
    assert zone == {}  # nothing else; the PTRs are comments
    assert re.search(
        r"^; 25\.2\.0\.192\.in-addr\.arpa\. +3600 IN PTR +mail\.example\.com\. ", text, re.M
    )
    assert "ask the provider of 2001:db8::25" in text


def test_long_dkim_txt_is_split_into_quoted_strings_joining_to_the_value(admin, data):
    ok(admin("domain", "add", "example.com"))
    text = ok(admin("dns", "example.com"))
    rsa = next(k for k in DKIMKeyStore(data / "dkim").keys("example.com") if k.algorithm == "rsa")
    assert len(rsa.txt_value()) > 255
    zone = dns.zone.from_text(text, origin="example.com", relativize=False, check_origin=False)
    [rdata] = zone.find_rdataset(f"{rsa.dns_name()}.", "TXT")
    assert len(rdata.strings) == 2
    assert b"".join(rdata.strings).decode() == rsa.txt_value()
    assert [s.decode() for s in rdata.strings] == rsa.txt_strings()


def test_rotated_out_keys_stay_published(admin, data):
    ok(admin("domain", "add", "example.com"))
    ok(admin("dkim", "rotate", "example.com"))
    keys = DKIMKeyStore(data / "dkim").keys("example.com")
    assert len(keys) == 4
    zone = parse(ok(admin("dns", "example.com")))
    assert all(zone[(k.dns_name(), "TXT")] == [k.txt_value()] for k in keys)
    assert "rotated out: keep until retired" in ok(admin("dns", "example.com"))


def test_no_addresses_warns_and_spf_uses_the_mx(admin):
    config = '[server]\nhostname = "mail.example.com"\n'
    ok(admin("domain", "add", "example.com", "--no-dkim", config=config))
    text = ok(admin("dns", "example.com", config=config))
    assert "; WARNING: public.ipv4 and public.ipv6 are not set" in text
    assert "no DKIM keys" in text
    zone = parse(text)
    assert zone[("example.com", "TXT")] == ["v=spf1 mx ~all"]
    assert not [key for key in zone if key[1] in ("A", "AAAA", "PTR")]
    # The embedded defaults have no https listener: every role but https has a port.
    assert zone[("_imaps._tcp.example.com", "SRV")] == ["0 1 2993 mail.example.com."]
    assert "the https role is off" in text

    code, out, err = admin("dns", "example.com", "--format", "json", config=config)
    assert code == 0
    assert "warning: public.ipv4 and public.ipv6 are not set" in err
    assert json.loads(out)  # the warnings stay off stdout


def test_hostname_in_another_zone_is_commented_out(admin):
    config = FULL.replace("mail.example.com", "mx.provider.example")
    ok(admin("domain", "add", "example.com", "--no-dkim", config=config))
    text = ok(admin("dns", "example.com", config=config))
    assert re.search(r"^; mx\.provider\.example\. +3600 IN A +192\.0\.2\.25 ", text, re.M)
    assert "publish in the zone of mx.provider.example" in text
    zone = parse(text)
    assert zone[("example.com", "MX")] == ["10 mx.provider.example."]
    assert not [key for key in zone if key[1] in ("A", "AAAA")]


def test_json_round_trips_with_the_zone(admin):
    ok(admin("domain", "add", "example.com"))
    zone = parse(ok(admin("dns", "example.com")))
    items = json.loads(ok(admin("dns", "example.com", "--format", "json")))
    assert all(set(item) <= {"name", "type", "ttl", "value", "comment"} for item in items)
    assert all(item["ttl"] == 3600 and not item["name"].endswith(".") for item in items)
    ptrs = [item for item in items if item["type"] == "PTR"]
    assert sorted(item["name"] for item in ptrs) == sorted(
        [
            "25.2.0.192.in-addr.arpa",
            "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        ]
    )
    assert all(item["value"] == f"{HOST}." and "provider" in item["comment"] for item in ptrs)
    from_json = {}
    for item in items:
        if item["type"] != "PTR":
            from_json.setdefault((item["name"], item["type"]), []).append(item["value"])
    assert {key: sorted(values) for key, values in from_json.items()} == zone


def test_mta_sts_id_changes_when_mode_mx_or_max_age_change(tmp_path):
    def policy_id(text):
        path = tmp_path / "c.toml"
        path.write_text(text)
        return records.mta_sts_id(load_config(path))

    base = '[server]\nhostname = "mail.example.com"\n'
    ids = {
        policy_id(base),
        policy_id(base + '[mta_sts]\nmode = "enforce"\n'),
        policy_id(base + "[mta_sts]\nmax_age = 86400\n"),
        policy_id(base + '[public]\nhostname = "mx.example.com"\n'),
    }
    assert len(ids) == 4
    assert all(len(i) <= 32 and i.isalnum() for i in ids)  # RFC 8461 3.1
    assert policy_id(base) == policy_id(base + '[public]\nipv4 = ["192.0.2.1"]\n')
    path = tmp_path / "c.toml"
    path.write_text(base + '[mta_sts]\nmode = "enforce"\n')
    assert records.mta_sts_policy(load_config(path)) == (
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"
    )


def test_errors(admin):
    ok(admin("domain", "add", "example.com"))
    err = fails(admin("dns", "example.org"), "example.org is not a local domain")
    assert "mailsuite-admin domain add example.org" in err
    fails(admin("dns", "a..b"), "invalid domain")
    fails(admin("dns", "example.com", config='[server]\nhostname = "bad_host"\n'), "bad_host")
    with pytest.raises(SystemExit) as exit_info:
        admin("dns", "example.com", "--format", "yaml")
    assert exit_info.value.code == 2
