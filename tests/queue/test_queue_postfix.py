"""A real peer: Debian's Postfix (a throwaway instance on 127.0.0.1, its own config and queue
directories) receives mail relayed by mailsuite, refuses an unknown user (mailsuite bounces with
Postfix's reply), and sends mail to mailsuite as its relay host."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest
from queue_helpers import free_port, parse_report, wait_until

from mailsuite.tls import generate_self_signed

pytest_plugins = ["queue_fixtures"]  # fixtures: zone, start_sink, start_instance


MASTER = "/usr/lib/postfix/sbin/master"
MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.test
mydomain = pf.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
virtual_mailbox_domains = pf.test
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = inline:{{ carol@pf.test=carol/ }}
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = may
smtpd_tls_security_level = may
smtpd_tls_cert_file = {root}/tls/cert.pem
smtpd_tls_key_file = {root}/tls/key.pem
smtpd_tls_received_header = yes
maillog_file = /dev/stdout
"""


def postfix_or_skip() -> None:
    missing = shutil.which("postfix") is None or not os.path.exists(MASTER)
    if missing or os.geteuid() != 0:
        reason = "Debian's postfix is not installed" if missing else "a Postfix master needs root"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: .ci/run installs postfix and runs as root")
        pytest.skip(reason)


class Postfix:
    def __init__(self, relay_port: int) -> None:
        postfix_or_skip()
        # Not under pytest's tmp_path: its parents are private to root, and Postfix's daemons
        # run as the postfix user.
        root = self.root = Path(tempfile.mkdtemp(prefix="mailsuite-postfix-"))
        root.chmod(0o755)
        self.port = free_port()
        for name in ("etc", "spool", "data", "mail", "tls"):
            (root / name).mkdir(parents=True)
        shutil.chown(root / "data", "postfix")
        shutil.chown(root / "mail", 65534, 65534)
        generate_self_signed(root / "tls" / "cert.pem", root / "tls" / "key.pem", "pf.test")
        (root / "etc" / "main.cf").write_text(MAIN_CF.format(root=root, relay_port=relay_port))
        (root / "etc" / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        subprocess.run(["postfix", "-c", str(root / "etc"), "check"], check=True, timeout=60)
        self.log = open(root / "maillog", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [MASTER, "-c", str(root / "etc"), "-d"], stdout=self.log, stderr=subprocess.STDOUT
        )

        def listening():
            assert self.process.poll() is None, self.logs()
            try:
                smtplib.SMTP("127.0.0.1", self.port, timeout=2).quit()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=30, what="Postfix to listen")

    def logs(self) -> str:
        return (self.root / "maillog").read_text()

    def maildir(self, user: str) -> list[bytes]:
        new = self.root / "mail" / user / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    def stop(self) -> None:
        self.process.terminate()  # the master stops its children
        self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postfix():
    """One Postfix for the module; it relays to a mailsuite listening on ``postfix.relay_port``."""
    relay_port = free_port()
    peer = Postfix(relay_port)
    peer.relay_port = relay_port
    yield peer
    peer.stop()


@pytest.fixture
def peers(postfix, zone, start_instance):
    """mailsuite (a.test, alice) and Postfix (pf.test, carol), each relaying to the other."""
    zone.mx("pf.test", (10, "mx.pf.test"))
    zone.a("mx.pf.test", "127.0.0.1")
    listen = {"smtp.listen": [f"127.0.0.1:{postfix.relay_port}"]}
    a = start_instance("a", "mx.a.test", postfix.port, listen)
    a.add_user("alice@a.test")
    return a, postfix


def test_postfix_receives_mail_relayed_by_mailsuite(peers):
    a, postfix = peers
    a.submit("alice@a.test", ["carol@pf.test"], b"Subject: to postfix\r\n\r\n.dot line\r\nbye\r\n")

    [received] = wait_until(lambda: postfix.maildir("carol"), what="delivery by Postfix")
    assert b"from mx.a.test (localhost [127.0.0.1])" in received
    assert b"(using TLS" in received  # opportunistic STARTTLS to Postfix
    assert b"\nSubject: to postfix\n" in received  # Postfix's Maildir uses bare LF
    assert received.endswith(b"\n\n.dot line\nbye\n")
    wait_until(lambda: not a.queue_ids(), what="the queue to empty")


def test_postfix_refusal_comes_back_as_a_notice(peers):
    a, postfix = peers
    a.submit("alice@a.test", ["nobody@pf.test"], b"Subject: lost\r\n\r\nx\r\n")

    [notice] = wait_until(lambda: a.messages("alice@a.test"), what="the notice")
    _, _, [block] = parse_report(notice)
    assert block["Status"] == "5.1.1"
    assert block["Remote-MTA"] == "dns; mx.pf.test"
    assert block["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <nobody@pf.test>")


def test_postfix_relays_to_mailsuite(peers):
    a, postfix = peers
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as client:
        client.sendmail(
            "carol@pf.test", ["alice@a.test"], b"Subject: from postfix\r\n\r\nhello alice\r\n"
        )

    [received] = wait_until(lambda: a.messages("alice@a.test"), what="delivery by mailsuite")
    assert received.startswith(b"Return-Path: <carol@pf.test>\r\nReceived: from pf.test ")
    assert b"by mx.a.test (mailsuite) with ESMTPS" in received
    assert received.endswith(b"hello alice\r\n")
