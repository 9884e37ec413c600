"""Started as root with ``twistd --uid``, as README's real-host line says: whatever the root
phase created (data directory, user database, queue, spool, journal, certificate) is handed to
that user before privileges drop, so the server can still use it afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import TWISTD
from support.net import free_port, wait_for_port
from support.tools import unavailable
from test_e2e_twistd import PASSWORD


@pytest.fixture
def world_readable_dir():
    """pytest's tmp_path is root-only: the unprivileged server could not even reach it."""
    base = Path(tempfile.mkdtemp(prefix="mailsuite-uid-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_root_start_with_uid_hands_the_data_directory_over(world_readable_dir):
    if os.getuid() != 0:
        unavailable(
            "needs root to start twistd with --uid", "CI runs as root (.ci/run uses apt-get)"
        )
    nobody = pwd.getpwnam("nobody")
    data_dir = world_readable_dir / "data"
    ports = {role: free_port() for role in ("smtp", "submission", "http")}
    config = world_readable_dir / "mailsuite.toml"
    config.write_text(
        '[server]\nhostname = "mail.e2e.example"\n'
        + "".join(f'[{role}]\nlisten = ["127.0.0.1:{port}"]\n' for role, port in ports.items())
        + "".join(
            f"[{role}]\nlisten = []\n"
            for role in ("submissions", "imap", "imaps", "pop3", "pop3s", "metrics")
        )
    )

    def admin(*args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "mailsuite.admin", "--config", str(config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=world_readable_dir,
        )
        assert result.returncode == 0, result.stderr

    # The operator adds users as root before the first start: a root-owned database.
    admin("--data-dir", str(data_dir), "domain", "add", "example.net")
    admin("--data-dir", str(data_dir), "user", "add", "dana@example.net", "--password-stdin",
          stdin=PASSWORD + "\n")  # fmt: skip
    assert (data_dir / "mailsuite.db").stat().st_uid == 0
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "--uid", str(nobody.pw_uid), "--gid", str(nobody.pw_gid),
         "mailsuite", "--config", str(config), "--data-dir", str(data_dir)],
        cwd=world_readable_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_for_port(ports["smtp"], process)
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as client:
            client.sendmail("x@remote.example", ["dana@example.net"], b"Subject: mx\r\n\r\nin\r\n")
        cafile = str(data_dir / "tls" / "cert.pem")
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as client:
            client.starttls(context=__import__("ssl").create_default_context(cafile=cafile))
            client.login("dana@example.net", PASSWORD)  # the database is readable as nobody
            client.sendmail("dana@example.net", ["dana@example.net"], b"Subject: sub\r\n\r\nx\r\n")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "Server Shut Down." in output  # twistd ends by re-raising SIGTERM: no exit 0
    new = data_dir / "mail" / "example.net" / "dana" / "new"
    assert sorted(p.read_bytes().split(b"\r\n\r\n")[-1] for p in new.iterdir()) == [
        b"in\r\n",
        b"x\r\n",
    ], output
    assert f"handed to uid {nobody.pw_uid} gid {nobody.pw_gid}" in output
    assert "Traceback" not in output
    owners = {
        (path.lstat().st_uid, path.lstat().st_gid) for path in [data_dir, *data_dir.rglob("*")]
    }
    assert owners == {(nobody.pw_uid, nobody.pw_gid)}, output
    # The operator goes on as root with the data directory now the server's: what the commands
    # create (the database's WAL and journal, DKIM keys) must stay usable by the server.
    admin("--data-dir", str(data_dir), "user", "add", "erin@example.net", "--password-stdin",
          stdin=PASSWORD + "\n")  # fmt: skip
    admin("--data-dir", str(data_dir), "dkim", "generate", "example.net", "--algorithm", "ed25519")
    admin("--data-dir", str(data_dir), "user", "admin", "dana@example.net")
    admin("--data-dir", str(data_dir), "web", "link", "dana@example.net")  # <data>/web/links/
    owners = {
        (path.lstat().st_uid, path.lstat().st_gid) for path in [data_dir, *data_dir.rglob("*")]
    }
    assert owners == {(nobody.pw_uid, nobody.pw_gid)}


def test_root_without_uid_is_warned_about_loudly(world_readable_dir):
    if os.getuid() != 0:
        unavailable("needs root to start twistd as root", "CI runs as root (.ci/run uses apt-get)")
    port = free_port()
    config = world_readable_dir / "mailsuite.toml"
    config.write_text(
        f'[server]\nhostname = "mail.e2e.example"\n[smtp]\nlisten = ["127.0.0.1:{port}"]\n'
        + "".join(
            f"[{role}]\nlisten = []\n"
            for role in (
                "submission",
                "submissions",
                "imap",
                "imaps",
                "pop3",
                "pop3s",
                "http",
                "metrics",
            )
        )  # fmt: skip
    )
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "mailsuite", "--config", str(config),
         "--data-dir", str(world_readable_dir / "data")],
        cwd=world_readable_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "WARNING: mailsuite is running as root" in output and "--uid" in output
