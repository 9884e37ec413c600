"""``twistd -n mailsuite --sandbox``: the one command that starts the fake SMTP server, as a
developer runs it (a real twistd process, stopped by its PID with SIGTERM)."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import urllib.request

from conftest import TWISTD
from support.net import free_port, wait_for_port


def test_twistd_sandbox_flag_starts_the_sandbox(tmp_path):
    ports = {role: free_port() for role in ("smtp", "http")}
    config = tmp_path / "mailsuite.toml"
    config.write_text(
        # [verify] left at its default (on): sandbox mode turns the MX checks off itself.
        '[server]\nhostname = "sandbox.e2e.example"\n'
        + "".join(f'[{role}]\nlisten = ["127.0.0.1:{port}"]\n' for role, port in ports.items())
        + "".join(
            f"[{role}]\nlisten = []\n"
            for role in ("submission", "submissions", "imap", "imaps", "pop3", "pop3s", "metrics")
        )
    )
    args = [TWISTD, "-n", "--pidfile=", "mailsuite", "--config", str(config)]
    process = subprocess.Popen(
        [*args, "--data-dir", str(tmp_path / "data"), "--sandbox"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(ports["http"], process)
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as client:
            client.sendmail(
                "app@a.example", ["anyone@nowhere.example"], b"Subject: e2e\r\n\r\n.\r\n"
            )
        url = f"http://127.0.0.1:{ports['http']}/api/v1/sandbox/messages"
        with urllib.request.urlopen(url, timeout=10) as response:
            [entry] = json.load(response)
        assert entry["subject"] == "e2e"
        assert entry["envelope"]["recipients"] == ["anyone@nowhere.example"]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "Server Shut Down." in output, output  # twistd then ends by SIGTERM itself (-15)
    assert "sandbox mode: every accepted message is captured" in output
    assert "Traceback" not in output
    assert (tmp_path / "data" / "mail" / "sandbox.invalid" / "sandbox" / "new").is_dir()
