"""Real POP3 clients from Debian against the server: fetchmail, getmail6, curl.

Skipped where a tool is missing, except under CI (the env var CI set), where .ci/run installs
them: `apt-get install fetchmail getmail6 curl`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import PASSWORD
from pop3util import ALICE
from support.maildir import maildir_files, put_message
from support.tools import tool_or_skip

FIRST = b"From: bob@example.com\r\nSubject: first\r\n\r\n.leading dot\r\nbody one\r\n"
SECOND = b"From: bob@example.com\r\nSubject: second\r\n\r\nbody two\r\n"


def run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C"}
    env["FETCHMAILHOME"] = str(home)
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(("role", "tls"), [("pop3s", "ssl"), ("pop3", "sslproto 'TLS1.2+'")])
def test_fetchmail_retrieves_and_deletes(suite, tmp_path, role, tls):
    fetchmail = tool_or_skip("fetchmail")
    put_message(suite, ALICE, FIRST)
    put_message(suite, ALICE, SECOND)
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "fetched.mbox"
    rc = home / "fetchmailrc"
    rc.write_text(
        f"poll 127.0.0.1 protocol POP3 port {suite.port(role)} auth password\n"
        f"  user '{ALICE}' there with password '{PASSWORD}' is 'root' here\n"
        f"  {tls} sslcertck sslcertfile '{suite.cert_path}' sslcommonname 'mx.test.example'\n"
        f"  mda 'cat >> {out}'\n"
    )
    rc.chmod(0o600)
    result = run([fetchmail, "--nosyslog", "-f", str(rc)], home)
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = out.read_bytes()
    assert b"Subject: first" in fetched and b"Subject: second" in fetched
    assert b"\n.leading dot" in fetched  # un-stuffed again by the client
    assert maildir_files(suite, ALICE) == {"new": [], "cur": []}  # fetchmail deletes by default


def test_getmail6_keeps_mail_on_server_over_pop3s(suite, tmp_path):
    getmail = tool_or_skip("getmail")
    put_message(suite, ALICE, FIRST)
    put_message(suite, ALICE, SECOND)
    home = tmp_path / "home"
    dest = tmp_path / "dest"
    dest.mkdir()
    (home / "getmail").mkdir(parents=True)
    rc = home / "getmail" / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\n"
        f"port = {suite.port('pop3s')}\nusername = {ALICE}\npassword = {PASSWORD}\n"
        f"ca_certs = {suite.cert_path}\n"
        # An external MDA: getmail's own Maildir destination refuses to run as root (CI does).
        "[destination]\ntype = MDA_external\npath = /bin/sh\n"
        f'arguments = ("-c", "cat > {dest}/msg.$$")\nallow_root_commands = true\n'
        "[options]\nread_all = false\ndelete = false\n"
    )
    args = [getmail, "--getmaildir", str(home / "getmail"), "--rcfile", str(rc)]
    first = run(args, home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 messages" in first.stdout
    # Leave-on-server: the second run recognises both by UIDL and fetches nothing.
    second = run(args, home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 messages" in second.stdout
    fetched = sorted(p.read_bytes() for p in dest.iterdir())
    assert len(fetched) == 2 and any(b".leading dot\n" in m for m in fetched)
    assert len(maildir_files(suite, ALICE)["cur"]) == 2  # retrieved: marked seen, kept


@pytest.mark.parametrize(
    ("scheme", "role", "flags"), [("pop3s", "pop3s", []), ("pop3", "pop3", ["--ssl-reqd"])]
)
def test_curl_lists_and_retrieves(suite, scheme, role, flags):
    curl = tool_or_skip("curl")
    put_message(suite, ALICE, FIRST)
    put_message(suite, ALICE, SECOND)
    base = [
        curl,
        "-q",
        "-sS",
        "--cacert",
        str(suite.cert_path),
        "--user",
        f"{ALICE}:{PASSWORD}",
        *flags,
    ]
    url = f"{scheme}://127.0.0.1:{suite.port(role)}/"
    listing = subprocess.run([*base, url], capture_output=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == b"1 %d\r\n2 %d\r\n" % (len(FIRST), len(SECOND))
    message = subprocess.run([*base, url + "1"], capture_output=True, timeout=60)
    assert message.returncode == 0, message.stderr
    assert message.stdout == FIRST
