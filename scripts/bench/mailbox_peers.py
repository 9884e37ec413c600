"""The IMAP/POP3 servers under test, each serving its own copy of the same generated INBOX to
``bench@bench.example`` over implicit TLS (IMAPS, POP3S) on 127.0.0.1 high ports.

Both over TLS with the same certificate: mailsuite refuses LOGIN/USER on a connection without
TLS (LOGINDISABLED), so TLS on both sides is the only like-for-like comparison. Each peer can be
restarted with its index removed ("cold": the next SELECT rebuilds it from the Maildir).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import mailbox_gen
from imap_load import client_context
from peers import (
    DOMAIN,
    PASSWORD,
    RECIPIENT,
    USER,
    Peer,
    free_port,
    stop_process,
    wait_for_banner,
)

_CONTEXT = client_context()


def wait_for_tls_greeting(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``port`` completes a TLS handshake and sends "* OK" / "+OK"."""
    wait_for_banner(port, process, timeout, greetings=(b"* OK", b"+OK"), tls=_CONTEXT)


class MailboxPeer(Peer):
    """A server with ports "imap" and "pop3" (both TLS), the INBOX at ``self.maildir``."""

    index_globs: tuple[str, ...] = ()

    def __init__(self, name: str, work: Path, source: Path) -> None:
        super().__init__(name, work)
        self.source = source

    def launch(self) -> None:
        raise NotImplementedError

    def restart(self, cold: bool) -> None:
        """Stop, remove the index when ``cold``, start again on the same ports and data."""
        self.stop()
        self.processes = []
        if cold:
            self.remove_index()
        self.launch()

    def remove_index(self) -> None:
        assert self.maildir is not None
        for pattern in self.index_globs:
            for path in self.maildir.glob(pattern):
                if path.is_file():
                    path.unlink()


class MailsuiteMailboxPeer(MailboxPeer):
    """``twistd -n mailsuite`` from this venv, IMAPS and POP3S only (plus SMTP, unused)."""

    index_globs = ("mailsuite-index.sqlite*",)

    def __init__(self, work: Path, source: Path, cert: Path, key: Path, max_conn: int) -> None:
        super().__init__("mailsuite", work, source)
        self.cert, self.key, self.max_conn = cert, key, max_conn

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.data = self.work / "data"
        self.ports = {"imap": free_port(), "pop3": free_port(), "smtp": free_port()}
        self.config = self.work / "mailsuite.toml"
        self.config.write_text(
            f'[server]\nhostname = "mailsuite.{DOMAIN}"\n'
            f'[tls]\ncert_file = "{self.cert}"\nkey_file = "{self.key}"\n'
            f'[smtp]\nlisten = ["127.0.0.1:{self.ports["smtp"]}"]\n'
            f'[imaps]\nlisten = ["127.0.0.1:{self.ports["imap"]}"]\n'
            f'[pop3s]\nlisten = ["127.0.0.1:{self.ports["pop3"]}"]\n'
            f"[imap]\nlisten = []\nmax_connections_per_user = {self.max_conn}\n"
            + "".join(
                f"[{role}]\nlisten = []\n"
                for role in ("submission", "submissions", "pop3", "http", "metrics")
            )
        )
        admin = [sys.executable, "-m", "mailsuite.admin", "--config", str(self.config)]
        admin += ["--data-dir", str(self.data)]
        for args, stdin in (
            (["domain", "add", DOMAIN], None),
            (["user", "add", RECIPIENT, "--password-stdin"], PASSWORD + "\n"),
        ):
            subprocess.run(
                admin + args, input=stdin, text=True, check=True, capture_output=True, timeout=60
            )
        # The messages are in place before the server first sees the folder.
        self.maildir = self.data / "mail" / DOMAIN / USER
        mailbox_gen.copy_tree(self.source, self.maildir)
        self.launch()

    def launch(self) -> None:
        twistd = str(Path(sys.executable).with_name("twistd"))
        args = [twistd, "-n", "--pidfile=", "mailsuite", "--config", str(self.config)]
        process = self.spawn(args + ["--data-dir", str(self.data)], "twistd.log", cwd=self.work)
        wait_for_tls_greeting(self.ports["imap"], process)


DOVECOT_CONF = """\
# Throwaway instance of the mailsuite bench: nothing here touches the system Dovecot.
protocols = imap pop3
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
{auth_setting}
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{maildir}
default_process_limit = {limit}
default_client_limit = {clients}
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/home
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
protocol pop3 {{
  mail_max_userip_connections = {limit}
}}
# High-performance login mode (one login process proxies many TLS sessions), what Dovecot's
# documentation recommends for many connections; "high-security" would be one process each.
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = {cpus}
  client_limit = {clients}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
}}
service imap {{
  process_limit = {limit}
}}
service pop3 {{
  process_limit = {limit}
}}
"""


def dovecot_version() -> tuple[int, ...]:
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True, timeout=30)
    return tuple(int(part) for part in out.stdout.split()[0].split(".")[:2])


class DovecotPeer(MailboxPeer):
    """``dovecot -F -c FILE``: own config, base_dir and state_dir under the work directory,
    passwd-file with the same argon2id hash mailsuite verifies, mail as ``nobody``."""

    index_globs = ("dovecot*",)

    def __init__(
        self, work: Path, source: Path, cert: Path, key: Path, password_hash: str, max_conn: int
    ) -> None:
        super().__init__("dovecot", work, source)
        self.cert, self.key, self.password_hash, self.max_conn = cert, key, password_hash, max_conn
        self.note = "IMAPS/POP3S, login processes in high-performance mode, mail uid nobody"

    def start(self) -> None:
        owner = pwd.getpwnam("nobody")
        base = self.work
        for sub in ("run", "state", "home"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        os.chown(base / "home", owner.pw_uid, owner.pw_gid)
        (base / "passwd").write_text(f"{RECIPIENT}:{{ARGON2ID}}{self.password_hash}\n")
        self.maildir = base / "Maildir"
        mailbox_gen.copy_tree(self.source, self.maildir)
        for root, dirs, files in os.walk(self.maildir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid)
        os.chown(self.maildir, owner.pw_uid, owner.pw_gid)
        self.ports = {"imap": free_port(), "pop3": free_port()}
        cleartext = (
            "auth_allow_cleartext = yes"
            if dovecot_version() >= (2, 4)
            else "disable_plaintext_auth = no"
        )
        self.config = base / "dovecot.conf"
        self.config.write_text(
            DOVECOT_CONF.format(
                base=base,
                auth_setting=cleartext,
                cert=self.cert,
                key=self.key,
                uid=owner.pw_uid,
                gid=owner.pw_gid,
                maildir=self.maildir,
                limit=self.max_conn + 100,
                clients=self.max_conn + 100,
                imaps=self.ports["imap"],
                pop3s=self.ports["pop3"],
                cpus=os.cpu_count() or 1,
            )
        )
        self.launch()

    def launch(self) -> None:
        process = self.spawn(["dovecot", "-F", "-c", str(self.config)], "dovecot.out")
        wait_for_tls_greeting(self.ports["imap"], process)
        wait_for_tls_greeting(self.ports["pop3"], process)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        # The master removes its children on SIGTERM; wait for the listeners to be gone.
        end = time.monotonic() + 10
        while time.monotonic() < end and (self.work / "run" / "master.pid").exists():
            time.sleep(0.05)
