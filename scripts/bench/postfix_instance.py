"""A throwaway Postfix: its own configuration, queue, data and mail directories under one work
directory, listening on 127.0.0.1 only, delivering with virtual(8) into Maildirs as the postfix
user, its log in ``<work>/maillog``; ``master -c DIR -d`` in a session of its own, stopped by
its PID.

The one place that knows how to set such a Postfix up: the bench's Postfix peer (peers.py) and
the tests' Postfix peer (tests/support/postfix.py, which imports this module by its plain name
as the bench does) both build on it, each adding its listeners and its own main.cf settings.
It needs Debian's postfix package, and root: the master starts its daemons as the postfix user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MASTER = "/usr/lib/postfix/sbin/master"

# master.cf after the listeners: the services to receive, queue, deliver with virtual(8) and
# relay with smtp(8).
SERVICES = """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str | None:
    """Why no throwaway Postfix can run on this machine, or None if one can."""
    if shutil.which("postfix") is None or not os.path.exists(MASTER):
        return "Debian's postfix is not installed"
    if os.geteuid() != 0:
        return "a Postfix master needs root"
    return None


def smtpd(address: str, *options: str) -> str:
    """A master.cf smtpd listener on ``address`` ("127.0.0.1:PORT") with ``-o name=value``s."""
    return f"{address} inet n - n - - smtpd\n" + "".join(f"  -o {o}\n" for o in options)


@dataclass
class PostfixInstance:
    """One instance: ``configure()`` writes it and runs ``postfix check``, ``start()`` runs it.

    ``mailboxes`` maps each address of ``domain`` to its Maildir under ``<work>/mail`` (like
    "carol/"), ``listeners`` are master.cf entries (see ``smtpd``), ``settings`` are main.cf
    lines on top of (or instead of) the base ones.
    """

    work: Path
    hostname: str
    domain: str
    cert: Path
    key: Path
    mailboxes: dict[str, str]
    listeners: list[str]
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.work / "conf"

    @property
    def mail(self) -> Path:
        return self.work / "mail"

    @property
    def log_file(self) -> Path:
        return self.work / "maillog"

    def main_cf(self) -> str:
        owner = pwd.getpwnam("postfix")
        base = {
            "compatibility_level": "3.6",
            "queue_directory": f"{self.work}/queue",
            "data_directory": f"{self.work}/data",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(self.work),
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": self.hostname,
            "mydomain": self.domain,
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail),
            "virtual_mailbox_maps": f"texthash:{self.conf}/vmailbox",
            "virtual_uid_maps": f"static:{owner.pw_uid}",
            "virtual_gid_maps": f"static:{owner.pw_gid}",
            "virtual_minimum_uid": str(min(owner.pw_uid, 100)),
            "smtpd_tls_cert_file": str(self.cert),
            "smtpd_tls_key_file": str(self.key),
            "smtpd_tls_security_level": "may",
            "biff": "no",
        }
        return "".join(f"{name} = {value}\n" for name, value in {**base, **self.settings}.items())

    def configure(self) -> None:
        """Directories (owned as Postfix wants them), main.cf, master.cf, the mailbox map."""
        owner = pwd.getpwnam("postfix")
        for name in ("conf", "queue", "data", "mail"):
            (self.work / name).mkdir(parents=True, exist_ok=True)
        for name in ("data", "mail"):
            os.chown(self.work / name, owner.pw_uid, owner.pw_gid)
        (self.conf / "vmailbox").write_text(
            "".join(f"{address} {path}\n" for address, path in self.mailboxes.items())
        )
        (self.conf / "main.cf").write_text(self.main_cf())
        (self.conf / "master.cf").write_text("".join(self.listeners) + SERVICES)
        # `postfix check` creates the queue directory tree with Postfix's own owners and modes.
        subprocess.run(
            ["postfix", "-c", str(self.conf), "check"], check=True, capture_output=True, timeout=60
        )

    def start(self, output: Path) -> subprocess.Popen:
        """Run the master (its own output to ``output``); it is up once its listeners greet.
        Stop it by its PID with SIGTERM: the master stops its children."""
        with open(output, "ab") as log:
            # A session of its own: on SIGTERM the master kills its process group, not ours.
            return subprocess.Popen(
                [MASTER, "-c", str(self.conf), "-d"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def maildir(self, address: str) -> Path:
        """The Maildir ``address`` delivers to."""
        return self.mail / self.mailboxes[address]
