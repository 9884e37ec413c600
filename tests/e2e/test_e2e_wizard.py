"""Thunderbird's own account setup, given only an address and a password: the discovery code its
account wizard runs (FindConfig: autoconfig, autodiscover and the rest, in parallel) finds our
autoconfig XML on the HTTP listener, the found settings log in (ConfigVerifier, as the wizard's
"Done" does), and the account created from them receives and sends.

Thunderbird fetches ``http://autoconfig.example.net/...`` and ``http://example.net/...``; here its
HTTP proxy is our HTTP listener, so those requests arrive in absolute form (the request line
carries the URL, RFC 9112 §3.2.2) and are answered for the domain they name. HTTPS lookups go to
a dead proxy and fail, as they do on a server whose certificate Thunderbird does not trust yet,
and Thunderbird falls back to plain HTTP. The public host name in the XML resolves to this
machine through ``network.dns.localDomains``.
"""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest
from thunderbird_helpers import SSL_TLS, MailClient, MailServer, Thunderbird

HOST = "mail.example.net"
DOMAIN = "example.net"
GWEN, HUGO = "gwen@example.net", "hugo@example.net"
PASSWORD = "wizard-pass-1"
DEADLINE = 60.0


class WizardServer(MailServer):
    """Every role on a free port, under the public name the autoconfig XML gives out."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        text = self.config.read_text().replace('"mail.e2e.example"', f'"{HOST}"')
        self.config.write_text(text)


@pytest.fixture(scope="module")
def wizard(thunderbird_binary, thunderbird_version, tmp_path_factory):
    server = WizardServer(tmp_path_factory.mktemp("mailsuite"))
    server.start()
    thunderbird = Thunderbird(
        thunderbird_binary,
        tmp_path_factory.mktemp("thunderbird"),
        prefs={
            "network.proxy.http_port": server.ports["http"],
            "network.dns.localDomains": HOST,
            "network.proxy.no_proxies_on": HOST,
            "mailnews.auto_config.fetchFromISP.enabled": True,
        },
    )
    print(f"{thunderbird_version}, logs:", *thunderbird.log_files(), sep="\n  ")
    try:
        assert server.admin("domain", "add", DOMAIN).returncode == 0
        for address in (GWEN, HUGO):
            added = server.admin("user", "add", address, "--password-stdin", stdin=PASSWORD)
            assert added.returncode == 0, added.stderr
        client = MailClient(thunderbird.start(deadline=DEADLINE))
        client.accept_certificate(server.certificate_base64(), HOST, list(server.ports.values()))
        yield server, client
    finally:
        thunderbird.stop()
        server.stop()


def account_setup(client: MailClient, address: str, password: str) -> dict:
    """What the account wizard does with an address and a password, up to the new account."""
    return client.m.js(
        """
        const [address, password, ms] = arguments;
        const load = name => ChromeUtils.importESModule(
          "resource:///modules/accountcreation/" + name + ".sys.mjs");
        const { FindConfig } = load("FindConfig");
        const { AccountConfig } = load("AccountConfig");
        const { ConfigVerifier } = load("ConfigVerifier");
        const { CreateInBackend } = load("CreateInBackend");
        const domain = address.split("@")[1];
        const discovery = FindConfig.parallelAutoDiscovery(
          domain, address, AbortSignal.timeout(ms), password);
        const config = (await discovery.next()).value;
        if (!config) {
          throw new Error("Thunderbird found no configuration for " + domain);
        }
        const server = s => ({
          type: s.type, hostname: s.hostname, port: s.port, socketType: s.socketType,
          username: s.username, auth: s.auth,
        });
        const found = {
          source: config.source, incoming: server(config.incoming),
          outgoing: server(config.outgoing),
          alternatives: config.incomingAlternatives.map(server),
        };
        AccountConfig.replaceVariables(config, "Gwen", address, password);
        const verified = await new ConfigVerifier(null, AbortSignal.timeout(ms))
          .verifyConfig(config, false);
        verified.rememberPassword = true;
        const created = await CreateInBackend.createAccountInBackend(verified);
        created.incomingServer.doBiff = false;
        return { found, key: created.key };
        """,
        address,
        password,
        int(DEADLINE * 1000),
    )


def wait_for(what: str, probe, timeout: float = DEADLINE):
    end = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def test_the_wizard_finds_the_settings_and_the_account_receives_and_sends(wizard):
    server, client = wizard
    setup = account_setup(client, GWEN, PASSWORD)
    found = setup["found"]
    # Found by autoconfig (the XML from the domain, not a guess), with our public name
    # and ports: IMAP over implicit TLS first, SMTP submission over implicit TLS.
    assert found["source"] == "xml", found
    assert found["incoming"] == {
        "type": "imap",
        "hostname": HOST,
        "port": server.ports["imaps"],
        "socketType": SSL_TLS,
        "username": "%EMAILADDRESS%",
        "auth": 3,  # nsMsgAuthMethod.passwordCleartext
    }
    assert (found["outgoing"]["hostname"], found["outgoing"]["port"]) == (
        HOST,
        server.ports["submissions"],
    )
    assert found["outgoing"]["socketType"] == SSL_TLS
    key = setup["key"]

    message = (
        f"From: Hugo <{HUGO}>\r\nTo: <{GWEN}>\r\nSubject: welcome\r\n"
        "Message-ID: <wizard-1@example.net>\r\n\r\nYour account works.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail(HUGO, [GWEN], message.encode())
    assert client.update_folder(key) == 0
    seen = client.wait_for_message(key, "wizard-1@example.net", DEADLINE)
    assert seen["subject"] == "welcome"

    client.folders(key, expect=["Sent"], timeout=DEADLINE)
    events = client.send(key, HUGO, "hello from the wizard", "Sent.\r\n", "wizard-2@example.net")
    assert events == ["sent 0", "copied 0"]
    needle = b"Message-ID: <wizard-2@example.net>"
    [delivered] = wait_for(
        "delivery to hugo",
        lambda: [p for p in server.maildir_files(HUGO) if needle in p.read_bytes()],
    )
    assert b"(Authenticated sender: gwen@example.net)" in delivered.read_bytes()
