"""The servers under test, each a throwaway instance on 127.0.0.1 high ports under the bench's
work directory, started as child processes and stopped by their PID.

Every peer delivers to the same recipient, ``bench@bench.example``, and exposes the Maildir
where that recipient's mail lands so the bench can check what really arrived.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from postfix_instance import PostfixInstance, smtpd

DOMAIN = "bench.example"
USER = "bench"
RECIPIENT = f"{USER}@{DOMAIN}"
PASSWORD = "bench-password-1"
HERE = Path(__file__).resolve().parent


def _answers_dns(port: int) -> bool:
    """Whether a DNS server answers on 127.0.0.1:port (any answer will do)."""
    query = bytes.fromhex("abcd01000001000000000000") + b"\x07example\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            return sock.recv(512)[:2] == query[:2]
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_banner(
    port: int,
    process: subprocess.Popen,
    timeout: float = 60.0,
    greetings: tuple[bytes, ...] = (b"220",),
    tls: ssl.SSLContext | None = None,
) -> None:
    """Wait until the server on ``port`` greets (over TLS with ``tls``), or fail if it died."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with tls.wrap_socket(raw) if tls else raw as sock:
                    if sock.recv(512).startswith(greetings):
                        return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no greeting on port {port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM by PID, then SIGKILL by PID if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class Peer:
    """A started server: what the bench needs to drive it and to account for it."""

    name: str
    work: Path
    durable: bool = True  # 250 only after fsync
    ports: dict[str, int] = field(default_factory=dict)  # "mx" / "submission" -> port
    maildir: Path | None = None  # the recipient's Maildir root (None: mail is discarded)
    processes: list[subprocess.Popen] = field(default_factory=list)
    note: str = ""

    def pids(self, kind: str = "mx") -> list[int]:
        """Roots of the process trees whose CPU and memory count for a ``kind`` workload."""
        return [p.pid for p in self.processes if p.poll() is None]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)

    def spawn(self, args: list[str], log_name: str, **kwargs) -> subprocess.Popen:
        log = open(self.work / log_name, "ab")  # noqa: SIM115 (kept by the child)
        try:
            process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs
            )
        finally:
            log.close()
        self.processes.append(process)
        return process


# The zone a "mailsuite-authn" peer checks against: the MX load's sender domain publishes SPF
# (the load comes from 127.0.0.1) and DMARC p=reject, 127.0.0.1 has a forward-confirmed PTR.
MX_SENDER_DOMAIN = "remote.example"
LOADGEN_HELO = "loadgen.bench.example"
AUTHN_ZONE = {
    MX_SENDER_DOMAIN: [["TXT", "v=spf1 ip4:127.0.0.1 -all"]],
    f"_dmarc.{MX_SENDER_DOMAIN}": [["TXT", "v=DMARC1; p=reject"]],
    "1.0.0.127.in-addr.arpa": [["PTR", LOADGEN_HELO]],
    LOADGEN_HELO: [["A", "127.0.0.1"], ["TXT", "v=spf1 a -all"]],
}


class MailsuitePeer(Peer):
    """``twistd -n mailsuite`` from this interpreter's venv; user added with mailsuite-admin.

    ``authn=False`` ("mailsuite"): DKIM signing and the MX checks off, the rows the bench always
    had. ``authn=True`` ("mailsuite-authn"): the defaults, signing on (keys from ``domain add``)
    and SPF/DKIM/DMARC/iprev checks on the MX against a local DNS zone (dns_zone.py).
    """

    def __init__(self, work: Path, cert: Path, key: Path, authn: bool = False) -> None:
        super().__init__("mailsuite-authn" if authn else "mailsuite", work)
        self.cert, self.key = cert, key
        self.authn = authn
        if authn:
            self.note = "DKIM signing + SPF/DKIM/DMARC/iprev checks against a local DNS zone"

    def pids(self, kind: str = "mx") -> list[int]:
        """The server only: the DNS zone stands for the internet's DNS, not for mailsuite."""
        return [p.pid for p in self.processes[-1:] if p.poll() is None]

    def _authn_config(self) -> str:
        if not self.authn:
            return "[dkim]\nsign = false\n[verify]\nenabled = false\n"
        zone_file = self.work / "zone.json"
        zone_file.write_text(json.dumps(AUTHN_ZONE))
        port = free_port()
        zone = self.spawn([sys.executable, str(HERE / "dns_zone.py"), str(port), str(zone_file)],
                          "dns_zone.log")  # fmt: skip
        deadline = time.monotonic() + 30
        while not _answers_dns(port):
            if zone.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench DNS zone did not start")
            time.sleep(0.1)
        return f'[dns]\nnameservers = ["127.0.0.1"]\nport = {port}\ntimeout = 2\n'

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        data = self.work / "data"
        self.ports = {"mx": free_port(), "submission": free_port()}
        config = self.work / "mailsuite.toml"
        config.write_text(
            self._authn_config() + f'[server]\nhostname = "mailsuite.{DOMAIN}"\n'
            f'[tls]\ncert_file = "{self.cert}"\nkey_file = "{self.key}"\n'
            f'[smtp]\nlisten = ["127.0.0.1:{self.ports["mx"]}"]\n'
            f'[submission]\nlisten = ["127.0.0.1:{self.ports["submission"]}"]\n'
            + "".join(
                f"[{role}]\nlisten = []\n"
                for role in ("submissions", "imap", "imaps", "pop3", "pop3s", "http", "metrics")
            )
        )
        admin = [sys.executable, "-m", "mailsuite.admin", "--config", str(config)]
        admin += ["--data-dir", str(data)]
        for args, stdin in (
            (["domain", "add", DOMAIN], None),
            (["user", "add", RECIPIENT, "--password-stdin"], PASSWORD + "\n"),
        ):
            subprocess.run(
                admin + args, input=stdin, text=True, check=True, capture_output=True, timeout=60
            )
        twistd = str(Path(sys.executable).with_name("twistd"))
        args = [twistd, "-n", "--pidfile=", "mailsuite", "--config", str(config)]
        # (twistd is spawned last: pids() counts only it)
        process = self.spawn(args + ["--data-dir", str(data)], "twistd.log", cwd=self.work)
        wait_for_banner(self.ports["mx"], process)
        self.maildir = data / "mail" / DOMAIN / USER


class PostfixPeer(Peer):
    """A private Postfix (postfix_instance.py) delivering with virtual(8) into a
    Maildir, with a submission service that authenticates through a private Dovecot's auth
    socket (Postfix has no SASL of its own)."""

    def __init__(self, work: Path, cert: Path, key: Path, password_hash: str) -> None:
        super().__init__("postfix", work)
        self.cert, self.key, self.password_hash = cert, key, password_hash
        self.note = "250 = queued (fsync'ed); delivery to Maildir follows asynchronously"
        self.dovecot: subprocess.Popen | None = None
        self.master: subprocess.Popen | None = None

    def pids(self, kind: str = "mx") -> list[int]:
        """Dovecot's auth service counts only where it works: for submission."""
        wanted = [self.master] + ([self.dovecot] if kind == "submission" else [])
        return [p.pid for p in wanted if p is not None and p.poll() is None]

    def start(self) -> None:
        auth_socket = self._start_dovecot()
        self.ports = {"mx": free_port(), "submission": free_port()}
        conf = self.work / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "logins").write_text(f"{RECIPIENT} {RECIPIENT}\n")
        instance = PostfixInstance(
            self.work,
            hostname=f"postfix.{DOMAIN}",
            domain=DOMAIN,
            cert=self.cert,
            key=self.key,
            mailboxes={RECIPIENT: f"{DOMAIN}/{USER}/"},
            listeners=[
                smtpd(f"127.0.0.1:{self.ports['mx']}"),
                smtpd(
                    f"127.0.0.1:{self.ports['submission']}",
                    "syslog_name=postfix/submission",
                    "smtpd_tls_security_level=encrypt",
                    "smtpd_sasl_auth_enable=yes",
                    "smtpd_sasl_type=dovecot",
                    f"smtpd_sasl_path={auth_socket}",
                    "smtpd_client_restrictions=permit_sasl_authenticated,reject",
                    "smtpd_sender_restrictions=reject_sender_login_mismatch",
                    "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
                ),
            ],
            settings={
                "myorigin": "$myhostname",
                "local_recipient_maps": "",
                "smtpd_tls_auth_only": "yes",
                "smtpd_sender_login_maps": f"texthash:{conf}/logins",
            },
        )
        instance.configure()
        self.master = instance.start(self.work / "master.out")
        self.processes.append(self.master)
        wait_for_banner(self.ports["mx"], self.master)
        wait_for_banner(self.ports["submission"], self.master)
        self.maildir = instance.maildir(RECIPIENT)

    def _start_dovecot(self) -> Path:
        """Dovecot with no mail protocols: only its auth service, for Postfix's SASL."""
        base = self.work / "dovecot"
        for sub in ("run", "state"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        passwd = base / "passwd"
        # The same argon2id hash (same parameters) that mailsuite verifies.
        passwd.write_text(f"{RECIPIENT}:{{ARGON2ID}}{self.password_hash}\n")
        socket_path = base / "auth-client"
        config = base / "dovecot.conf"
        config.write_text(
            f"""\
protocols =
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home=/nonexistent
}}
service auth {{
  unix_listener {socket_path} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""
        )
        self.dovecot = process = self.spawn(["dovecot", "-F", "-c", str(config)], "dovecot.out")
        end = time.monotonic() + 30
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"dovecot did not start: see {self.work / 'dovecot.out'}")
            time.sleep(0.1)
        return socket_path


class AiosmtpdPeer(Peer):
    """aiosmtpd with the fsync'ing Maildir handler of aiosmtpd_maildir.py."""

    def __init__(self, work: Path, tools_python: Path) -> None:
        super().__init__("aiosmtpd", work)
        self.tools_python = tools_python

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.ports = {"mx": free_port()}
        self.maildir = self.work / "Maildir"
        script = str(HERE / "aiosmtpd_maildir.py")
        args = [str(self.tools_python), script, str(self.ports["mx"]), str(self.maildir)]
        wait_for_banner(self.ports["mx"], self.spawn(args, "aiosmtpd.log"))


class TwistedMailPeer(Peer):
    """Stock ``twistd mail`` with a Maildir domain, through the str/bytes-patching launcher."""

    def __init__(self, work: Path) -> None:
        super().__init__("twisted-mail", work, durable=False)
        self.note = "stock Twisted Maildir delivery never fsyncs: not durable"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.ports = {"mx": free_port()}
        domain_dir = self.work / "domain"
        args = [sys.executable, str(HERE / "twisted_mail_launcher.py"), "-n", "--pidfile="]
        args += ["mail", "-E", "-H", f"twisted.{DOMAIN}"]
        args += [f"--maildirdbmdomain={DOMAIN}={domain_dir}"]
        args += [f"--user={USER}={PASSWORD}", "--no-pop3", "-s"]
        args += [f"tcp:{self.ports['mx']}:interface=127.0.0.1"]
        wait_for_banner(self.ports["mx"], self.spawn(args, "twistd.log", cwd=self.work))
        self.maildir = domain_dir / USER


class SinkPeer(Peer):
    """Postfix's smtp-sink: answers 250 and discards; the protocol ceiling of this machine."""

    def __init__(self, work: Path) -> None:
        super().__init__("smtp-sink", work, durable=False)
        self.note = "discards every message: protocol ceiling"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.ports = {"mx": free_port()}
        args = ["smtp-sink", "-u", "postfix", "-h", f"sink.{DOMAIN}"]
        args += [f"127.0.0.1:{self.ports['mx']}", "256"]
        wait_for_banner(self.ports["mx"], self.spawn(args, "smtp-sink.log"))
