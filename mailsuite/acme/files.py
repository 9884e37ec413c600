"""What the ACME client keeps under ``config.acme_dir``, and how a new certificate is installed.

::

    account.key                 the ACME account key (EC P-256, PEM, mode 0600)
    challenges/<token>          pending HTTP-01 key authorizations, served by the http role
    certs/<issue>/fullchain.pem an issued chain, leaf first (0600)
    certs/<issue>/privkey.pem   its private key (0600)
    live -> certs/<issue>       the pair being served (the one before it is kept, to go back to)
    failed.json                 names whose validation failed lately, and when

A certificate and its key are two files, and no rename replaces two files at once; so each issue
gets its own directory and ``live`` (a relative symlink) is switched with one rename. Every
reader — the file watcher, an operator's other daemon — sees the old pair or the new one, never
a new certificate beside an old key. Everything here is blocking: call it from a thread.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shutil
from pathlib import Path

from cryptography import x509

from mailsuite.runtime.tls import CertificatePair, TLSConfigError, load_pair
from mailsuite.safeio import fsync_dir, makedirs_durable, write_file_atomic

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,255}")  # base64url (RFC 8555 §8.1): no path can hide in it


class ACMEFiles:
    """The layout above, rooted at ``root`` (``config.acme_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.account_key = root / "account.key"
        self.challenges = root / "challenges"
        self.certs = root / "certs"
        self.live = root / "live"
        self.failed = root / "failed.json"

    @property
    def live_pair(self) -> CertificatePair:
        return CertificatePair(self.live / "fullchain.pem", self.live / "privkey.pem")

    def current(self) -> x509.Certificate | None:
        """The served ACME leaf certificate, or None when none was issued (or it is unreadable,
        which the next issue repairs)."""
        try:
            return x509.load_pem_x509_certificates(self.live_pair.cert.read_bytes())[0]
        except (OSError, ValueError):
            return None

    def install(self, fullchain_pem: bytes, key_pem: bytes) -> CertificatePair:
        """Write a new pair into its own directory, check it, and make it ``live``."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{stamp}-{secrets.token_hex(4)}"
        directory = self.certs / name
        makedirs_durable(directory)
        pair = CertificatePair(directory / "fullchain.pem", directory / "privkey.pem")
        try:
            write_file_atomic(pair.key, key_pem, mode=0o600)
            write_file_atomic(pair.cert, fullchain_pem, mode=0o600)
            load_pair(pair.cert, pair.key, cert_key=str(pair.cert), key_key=str(pair.key))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)  # never live, never kept
            raise
        try:
            previous = Path(os.readlink(self.live)).name
        except OSError:
            previous = None
        link = self.root / f".live.{secrets.token_hex(6)}"
        os.symlink(Path("certs") / name, link)
        try:
            os.replace(link, self.live)
        except BaseException:
            link.unlink(missing_ok=True)
            raise
        fsync_dir(self.root)
        self._prune(keep={name, previous})
        return self.live_pair

    def _prune(self, keep: set[str | None]) -> None:
        """Remove issues other than the live one and the one it replaced."""
        for issue in self.certs.iterdir():
            if issue.name not in keep:
                shutil.rmtree(issue, ignore_errors=True)

    # --- HTTP-01 challenges ---------------------------------------------------------------------

    def write_challenge(self, token: str, key_authorization: str) -> Path:
        """Publish ``key_authorization`` at ``/.well-known/acme-challenge/<token>``."""
        if not _TOKEN.fullmatch(token):
            raise TLSConfigError("acme.directory", f"the ACME server sent a bad token {token!r}")
        makedirs_durable(self.root)
        makedirs_durable(self.challenges, mode=0o755)
        path = self.challenges / token
        write_file_atomic(path, key_authorization.encode("ascii"), mode=0o644, sync_dir=False)
        return path

    def remove_challenge(self, token: str) -> None:
        if _TOKEN.fullmatch(token):
            (self.challenges / token).unlink(missing_ok=True)

    # --- names that failed validation -----------------------------------------------------------

    def failed_names(self, since: datetime.datetime) -> set[str]:
        """Names whose validation failed after ``since``."""
        try:
            failed = json.loads(self.failed.read_text())
        except (OSError, ValueError):
            return set()
        recent = set()
        for name, when in failed.items() if isinstance(failed, dict) else ():
            try:
                if datetime.datetime.fromisoformat(when) > since:
                    recent.add(name)
            except (TypeError, ValueError):
                continue
        return recent

    def record_failed(self, names: set[str], now: datetime.datetime, covered: set[str]) -> None:
        """Remember ``names`` as failed at ``now``; names now ``covered`` are forgotten."""
        try:
            failed = json.loads(self.failed.read_text())
            if not isinstance(failed, dict):
                failed = {}
        except (OSError, ValueError):
            failed = {}
        failed = {name: when for name, when in failed.items() if name not in covered}
        failed.update({name: now.isoformat() for name in names})
        makedirs_durable(self.root)
        write_file_atomic(self.failed, json.dumps(failed, indent=1).encode(), mode=0o600)
