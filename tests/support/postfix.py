"""A real peer for the tests: Debian's Postfix as a throwaway instance on 127.0.0.1 (see
scripts/bench/postfix_instance.py, which owns the setup, shared with the bench), for the domain
pf.test with one mailbox, carol@pf.test, relaying everything else to a mailsuite (its
``relayhost``) with opportunistic TLS both ways.

Skipped where Postfix cannot run (not installed, not root), except under CI (the env var CI set),
where .ci/run installs it and runs as root.
"""

from __future__ import annotations

import shutil
import smtplib
import tempfile
from pathlib import Path

from postfix_instance import PostfixInstance, smtpd
from postfix_instance import unavailable as postfix_unavailable

from support.net import free_port
from support.tools import unavailable
from support.wait import wait_until

DOMAIN = "pf.test"
CAROL = f"carol@{DOMAIN}"


def postfix_or_skip() -> None:
    reason = postfix_unavailable()
    if reason is not None:
        unavailable(reason, ".ci/run installs postfix and runs as root")


class Postfix:
    """A started Postfix on ``port``, relaying to 127.0.0.1:``relay_port``."""

    def __init__(self, relay_port: int) -> None:
        from mailsuite.runtime.tls import generate_self_signed

        postfix_or_skip()
        self.relay_port = relay_port
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root, and Postfix's daemons
        # run as the postfix user.
        root = self.root = Path(tempfile.mkdtemp(prefix="mailsuite-postfix-"))
        root.chmod(0o755)
        (root / "tls").mkdir()
        cert, key = root / "tls" / "cert.pem", root / "tls" / "key.pem"
        generate_self_signed(cert, key, DOMAIN)
        self.instance = PostfixInstance(
            root,
            hostname=DOMAIN,
            domain=DOMAIN,
            cert=cert,
            key=key,
            mailboxes={CAROL: "carol/"},
            listeners=[smtpd(f"127.0.0.1:{self.port}")],
            settings={
                "relayhost": f"[127.0.0.1]:{relay_port}",
                "smtp_tls_security_level": "may",
                "smtpd_tls_received_header": "yes",
            },
        )
        self.instance.configure()
        self.process = self.instance.start(root / "master.out")

        def listening():
            assert self.process.poll() is None, self.logs()
            try:
                smtplib.SMTP("127.0.0.1", self.port, timeout=2).quit()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=30, what="Postfix to listen")

    def logs(self) -> str:
        return "".join(
            path.read_text() for path in (self.instance.log_file, self.root / "master.out")
            if path.exists()
        )

    def maildir(self, address: str = CAROL) -> list[bytes]:
        """The messages Postfix delivered to ``address`` (bare LF line ends: Postfix's Maildir)."""
        new = self.instance.maildir(address) / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    def stop(self) -> None:
        self.process.terminate()  # by its PID; the master stops its children
        self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
