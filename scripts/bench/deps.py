"""Installs what the bench needs on a fresh Debian machine: Postfix (with no system
configuration written), Dovecot (its auth service for Postfix, and its IMAP/POP3 servers as the
peer of the IMAP half), and a private venv holding aiosmtpd and py-spy, so the project's own
venv stays untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

APT_PACKAGES = {
    "postfix": "postfix",
    "smtp-sink": "postfix",
    "dovecot": "dovecot-core",
    # The IMAP/POP3 half: Dovecot's protocol binaries (which() accepts a path).
    "/usr/lib/dovecot/imap": "dovecot-imapd",
    "/usr/lib/dovecot/pop3": "dovecot-pop3d",
}
PIP_PACKAGES = ["aiosmtpd", "py-spy"]


def ensure_apt_packages() -> None:
    missing = sorted({pkg for tool, pkg in APT_PACKAGES.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"bench: needs root to apt-get install {' '.join(missing)}")
    print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
    # "No configuration": the package writes no main.cf and starts no system Postfix.
    subprocess.run(
        ["debconf-set-selections"],
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        check=True,
    )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, check=True)


def ensure_tools_venv(path: Path) -> Path:
    """Create (or reuse) a venv at ``path`` with aiosmtpd and py-spy; return its python."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"bench: creating tools venv {path}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    have = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    wanted = [pkg for pkg in PIP_PACKAGES if f"{pkg}==" not in have]
    if wanted:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
    return python
