"""The outbound-delivery configuration keys: parsing, and errors that name the key."""

from __future__ import annotations

import pytest

from mailsuite.config import ConfigError, ListenAddress, load_config


def load(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path, tmp_path / "data")


def test_defaults(tmp_path):
    config = load_config(None, tmp_path)
    assert config.queue.retry_schedule == (60, 300, 900, 1800, 3600)
    assert (config.queue.lifetime, config.queue.delay_warning) == (432000, 14400)
    assert (config.client.mx_port, config.client.data_end_timeout) == (25, 600)
    assert config.relay.host is None and config.relay.fallback is None
    assert config.relay.require_tls and config.relay.tls_verify
    assert config.transport.map == () and config.dns.nameservers == ()


def test_values(tmp_path):
    config = load(
        tmp_path,
        '[relay]\nhost = "smtp.example.net:587"\nusername = "u"\npassword = "p"\n'
        'fallback = "[2001:db8::1]:25"\n'
        '[transport]\nmap = { "Partner.Example" = "gw.partner.example:2525" }\n'
        '[dns]\nnameservers = ["127.0.0.1", "::1"]\nport = 5353\ntimeout = 1.5\n'
        "[queue]\nretry_schedule = [0.5, 2]\n",
    )
    assert config.relay.host == ListenAddress("smtp.example.net", 587)
    assert config.relay.fallback == ListenAddress("2001:db8::1", 25)
    assert config.transport.map == (("partner.example", ListenAddress("gw.partner.example", 2525)),)
    assert config.dns.nameservers == ("127.0.0.1", "::1")
    assert (config.dns.port, config.dns.timeout) == (5353, 1.5)
    assert config.queue.retry_schedule == (0.5, 2.0)


def test_transport_map_as_a_sub_table(tmp_path):
    config = load(tmp_path, '[transport.map]\n"a.example" = "127.0.0.1:2525"\n')
    assert config.transport.map == (("a.example", ListenAddress("127.0.0.1", 2525)),)


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[queue]\nretry_schedule = []\n", "queue.retry_schedule"),
        ('[queue]\nretry_schedule = ["1m"]\n', "queue.retry_schedule"),
        ("[queue]\nlifetime = 0\n", "queue.lifetime"),
        ("[queue]\nmax_connections = 0\n", "queue.max_connections"),
        ("[client]\nmx_port = 70000\n", "client.mx_port"),
        ('[relay]\nhost = "no-port"\n', "relay.host"),
        ('[relay]\nhost = ":25"\n', "relay.host"),
        ('[relay]\nusername = "u"\n', "relay.password"),
        ('[relay]\nfallback = "x:0"\n', "relay.fallback"),
        ('[transport]\nmap = "a=b"\n', "transport.map"),
        ('[transport]\nmap = { "a.example" = "nohost" }\n', "transport.map.a.example"),
        ('[transport]\nmap = { "bad domain" = "h:25" }\n', "transport.map"),
        ('[transport]\nrequire_tls = ["a@b"]\n', "transport.require_tls"),
        ('[dns]\nnameservers = ["dns.google"]\n', "dns.nameservers"),
        ("[dns]\ntimeout = -1\n", "dns.timeout"),
    ],
)
def test_errors_name_the_key(tmp_path, toml, key):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    assert info.value.key == key
