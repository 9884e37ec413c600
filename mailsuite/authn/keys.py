"""The DKIM key store: the private keys this server signs with, per domain and selector.

On disk, under ``<data>/dkim`` (mode 0700)::

    <domain>/               one directory per domain, its lowercase A-label name (0700)
        <selector>.key      the private key, exactly what dkimpy's sign() takes (0600):
                            RSA as PKCS#1 PEM, Ed25519 as the base64 of the 32-byte seed
        state.json          which keys are listed, with algorithm, created date, active flag,
                            and the selectors retired before (0600)

``state.json`` is the one record of the domain's keys: a key file it does not list is ignored.
Every change writes new key files first and then replaces ``state.json`` at once (temp file,
fsync, rename, directory fsync), so a rotation (new key active, old key rotated out) is one
atomic step and a crash never leaves a listed key without its file. Changes take an flock on
the domain directory, so two admin commands cannot lose each other's update.

The server calls ``active()`` for every message it signs, from worker threads: parsed keys are
cached per domain and revalidated with one stat of ``state.json``. Each change gives that file
a new inode (rename), so a key made or rotated by ``mailsuite-admin`` in another process is used
by the running server on its next message, without a restart.

Run as root with a data directory handed to the server's ``--uid``, the new files and directories
get the data directory's owner at once: the running server must be able to read them.

Nothing here imports Twisted: file I/O and key generation only (callers use threads).
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailsuite.accounts.addresses import AddressError, normalize_domain
from mailsuite.safeio import fsync_dir, makedirs_durable, write_file_atomic

ALGORITHMS = ("rsa", "ed25519")
SIGNATURE_ALGORITHMS = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}
# RFC 8301: verifiers must accept 1024 to 4096 bits; signers should use 2048 at least.
MIN_RSA_BITS = 1024
MAX_RSA_BITS = 4096
DEFAULT_RSA_BITS = 2048

STATE_FILE = "state.json"
_STATE_VERSION = 1
_KEY_SUFFIX = ".key"
_SELECTOR = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_TXT_STRING_MAX = 255  # RFC 1035 3.3: a character-string is at most 255 octets
_LOAD_ATTEMPTS = 3


class KeyStoreError(Exception):
    """An expected refusal or failure of the key store; str() is a message fit for a user."""


@dataclass(frozen=True)
class DKIMKey:
    """One DKIM key of a domain. ``private_key`` is never shown in repr() or any output."""

    domain: str
    selector: str
    algorithm: str  # "rsa" | "ed25519"
    created: str  # ISO date (UTC), e.g. "2026-12-07"
    active: bool  # signing with it now; False: rotated out, still published until retired
    private_key: bytes = field(repr=False)

    @property
    def signature_algorithm(self) -> bytes:
        """The a= tag value dkimpy's sign() takes for this key."""
        return SIGNATURE_ALGORITHMS[self.algorithm]

    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def public_key(self) -> bytes:
        """The p= data: SubjectPublicKeyInfo DER for RSA (RFC 6376 3.6.1, as every verifier
        reads it), the raw 32-byte key for Ed25519 (RFC 8463 4.2)."""
        if self.algorithm == "rsa":
            key = serialization.load_pem_private_key(self.private_key, password=None)
            return key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        seed = base64.b64decode(self.private_key, validate=True)
        return (
            ed25519.Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def key_bits(self) -> int:
        """The RSA modulus size; 256 for Ed25519."""
        if self.algorithm != "rsa":
            return 256
        key = serialization.load_pem_private_key(self.private_key, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.key_size

    def txt_value(self) -> str:
        """The TXT record value to publish at dns_name()."""
        p = base64.b64encode(self.public_key()).decode("ascii")
        return f"v=DKIM1; k={self.algorithm}; p={p}"

    def txt_strings(self) -> list[str]:
        """txt_value() cut into character-strings a zone file (or DNS API) accepts; a verifier
        joins them without separator (RFC 6376 3.6.2.2)."""
        value = self.txt_value()
        return [value[i : i + _TXT_STRING_MAX] for i in range(0, len(value), _TXT_STRING_MAX)]


def normalize_selector(text: str) -> str:
    """A selector as it may name a key file and a DNS label: lowercase letters, digits, '-'."""
    selector = text.lower() if isinstance(text, str) and text.isascii() else text
    if not isinstance(selector, str) or not _SELECTOR.match(selector):
        raise KeyStoreError(
            f"invalid selector {text!r}: use up to 63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return selector


def _domain(text: str) -> str:
    try:
        return normalize_domain(text)
    except AddressError as exc:
        raise KeyStoreError(str(exc)) from None


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _new_private_key(algorithm: str, bits: int) -> bytes:
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        # PKCS#1 ("BEGIN RSA PRIVATE KEY"): read by every dkimpy version and by OpenDKIM.
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)


def _check_algorithm(algorithm: str, bits: int) -> None:
    if algorithm not in ALGORITHMS:
        raise KeyStoreError(f"unknown DKIM algorithm {algorithm!r}: use rsa or ed25519")
    if algorithm == "rsa" and not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise KeyStoreError(f"RSA key size must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits")


class DKIMKeyStore:
    """The keys under one dkim directory; safe to share between threads."""

    def __init__(self, dkim_dir: Path) -> None:
        self._dir = Path(dkim_dir)
        self._lock = threading.Lock()
        # domain -> (state.json (inode, mtime_ns, size), its active keys)
        self._cache: dict[str, tuple[tuple[int, int, int], tuple[DKIMKey, ...]]] = {}

    # --- reading ---------------------------------------------------------------------------

    def active(self, domain: str) -> list[DKIMKey]:
        """The keys to sign mail from ``domain`` with now (at most one per algorithm).

        Hot path: one stat when nothing changed. A name that cannot have keys has none.
        """
        try:
            name = normalize_domain(domain)
        except AddressError:
            return []
        try:
            stat = os.stat(self._dir / name / STATE_FILE)
        except FileNotFoundError:
            self._cache.pop(name, None)
            return []
        except OSError as exc:
            raise KeyStoreError(f"cannot read the DKIM keys of {name}: {exc}") from None
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(name)
        if cached is not None and cached[0] == signature:
            return list(cached[1])
        with self._lock:
            # What is read may be newer than the stat above: the next call then reloads again.
            keys = tuple(self._load(name, only_active=True))
            self._cache[name] = (signature, keys)
        return list(keys)

    def keys(self, domain: str) -> list[DKIMKey]:
        """Every listed key of ``domain``, active or rotated out, oldest first."""
        return self._load(_domain(domain), only_active=False)

    def domains(self) -> list[str]:
        """The domains that have listed keys."""
        try:
            entries = sorted(os.listdir(self._dir))
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            try:
                if entry == normalize_domain(entry) and self._read_state(entry)["keys"]:
                    found.append(entry)
            except (AddressError, KeyStoreError):
                continue
        return found

    def _domain_dir(self, domain: str) -> Path:
        return self._dir / domain

    def _has_keys(self, domain: str) -> bool:
        """Whether the domain ever had keys: changes but generate() need not make its dir."""
        return (self._domain_dir(domain) / STATE_FILE).exists()

    def _read_state(self, domain: str) -> dict[str, Any]:
        path = self._domain_dir(domain) / STATE_FILE
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {"version": _STATE_VERSION, "keys": [], "retired": []}
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{path}: unreadable: {exc}") from None
        version = data.get("version") if isinstance(data, dict) else None
        if version != _STATE_VERSION:
            raise KeyStoreError(f"{path}: unknown format (version {version!r})")
        return data

    def _load(self, domain: str, *, only_active: bool) -> list[DKIMKey]:
        # A key file can vanish between reading state.json and the file (a retire in another
        # process); then state.json has changed too, and reading it again settles it.
        for attempt in range(_LOAD_ATTEMPTS):
            state = self._read_state(domain)
            try:
                return sorted(
                    (
                        self._key_of(domain, entry)
                        for entry in state["keys"]
                        if entry["active"] or not only_active
                    ),
                    key=lambda key: (key.created, key.selector),
                )
            except FileNotFoundError as exc:
                if attempt == _LOAD_ATTEMPTS - 1:
                    raise KeyStoreError(f"DKIM key file missing: {exc.filename}") from None
            except OSError as exc:
                raise KeyStoreError(f"cannot read a DKIM key of {domain}: {exc}") from None
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyStoreError(f"{domain}/{STATE_FILE}: bad entry: {exc}") from None
        raise AssertionError("unreachable")

    def _key_of(self, domain: str, entry: dict[str, Any]) -> DKIMKey:
        selector = normalize_selector(entry["selector"])
        algorithm = entry["algorithm"]
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}")
        data = (self._domain_dir(domain) / (selector + _KEY_SUFFIX)).read_bytes()
        if algorithm == "ed25519":
            data = data.strip()
        return DKIMKey(
            domain, selector, algorithm, str(entry["created"]), bool(entry["active"]), data
        )

    # --- changing --------------------------------------------------------------------------

    def generate(
        self,
        domain: str,
        algorithm: str = "rsa",
        selector: str | None = None,
        bits: int = DEFAULT_RSA_BITS,
    ) -> DKIMKey:
        """Make a new active key; an active key of the same algorithm is rotated out (it stays
        listed for publication until retired), so at most one key per algorithm signs."""
        _check_algorithm(algorithm, bits)
        name = _domain(domain)
        chosen = normalize_selector(selector) if selector is not None else None
        with self._locked(name) as directory:
            state = self._read_state(name)
            return self._add_keys(directory, state, [(algorithm, chosen, bits)])[0]

    def rotate(self, domain: str) -> list[DKIMKey]:
        """For each algorithm with an active key: a new key of the same kind (and size) becomes
        active, the old one is rotated out. Returns the new keys."""
        name = _domain(domain)
        nothing = KeyStoreError(f"{name} has no active DKIM key to rotate; use 'dkim generate'")
        if not self._has_keys(name):
            raise nothing
        with self._locked(name) as directory:
            state = self._read_state(name)
            current = self._load(name, only_active=True)
            if not current:
                raise nothing
            wanted = [(k.algorithm, None, k.key_bits()) for k in current]
            return self._add_keys(directory, state, wanted)

    def retire(self, domain: str, selector: str) -> None:
        """Forget a rotated-out key: its file is deleted and it is no longer listed for DNS."""
        name = _domain(domain)
        chosen = normalize_selector(selector)
        if not self._has_keys(name):
            raise KeyStoreError(f"no DKIM key {chosen} for {name}")
        with self._locked(name) as directory:
            state = self._read_state(name)
            entry = next((e for e in state["keys"] if e["selector"] == chosen), None)
            if entry is None:
                raise KeyStoreError(f"no DKIM key {chosen} for {name}")
            if entry["active"]:
                raise KeyStoreError(
                    f"{chosen} is the active {entry['algorithm']} key of {name}: rotate first "
                    f"('mailsuite-admin dkim rotate {name}'), then retire the old key once the "
                    "new one is published"
                )
            state["keys"] = [e for e in state["keys"] if e is not entry]
            state["retired"] = sorted({*state.get("retired", []), chosen})
            self._write_state(directory, state)
            (directory / (chosen + _KEY_SUFFIX)).unlink(missing_ok=True)
            fsync_dir(directory)

    def _add_keys(
        self,
        directory: Path,
        state: dict[str, Any],
        wanted: list[tuple[str, str | None, int]],
    ) -> list[DKIMKey]:
        today = _today()
        taken = {e["selector"] for e in state["keys"]} | set(state.get("retired", []))
        made = []
        for algorithm, selector, bits in wanted:
            if selector is None:
                selector = self._free_selector(directory, today, algorithm, taken)
            elif selector in taken or (directory / (selector + _KEY_SUFFIX)).exists():
                raise KeyStoreError(f"selector {selector} is already used for {directory.name}")
            taken.add(selector)
            private_key = _new_private_key(algorithm, bits)
            self._write_file(directory / (selector + _KEY_SUFFIX), private_key)
            made.append(
                DKIMKey(directory.name, selector, algorithm, today.isoformat(), True, private_key)
            )
        algorithms = {key.algorithm for key in made}
        for entry in state["keys"]:
            if entry["algorithm"] in algorithms:
                entry["active"] = False
        state["keys"].extend(
            {"selector": k.selector, "algorithm": k.algorithm, "created": k.created, "active": True}
            for k in made
        )
        self._write_state(directory, state)
        return made

    @staticmethod
    def _free_selector(
        directory: Path, today: datetime.date, algorithm: str, taken: set[str]
    ) -> str:
        """'ms' + year and month + r|e, then 2, 3 ... when rotated again within the month."""
        base = f"ms{today:%Y%m}{algorithm[0]}"
        number = 1
        while True:
            selector = base if number == 1 else f"{base}{number}"
            if selector not in taken and not (directory / (selector + _KEY_SUFFIX)).exists():
                return selector
            number += 1

    def _write_state(self, directory: Path, state: dict[str, Any]) -> None:
        state["version"] = _STATE_VERSION
        data = json.dumps(state, indent=2, sort_keys=True).encode() + b"\n"
        self._write_file(directory / STATE_FILE, data)

    def _write_file(self, path: Path, data: bytes) -> None:
        """Replace ``path`` at once (temp file, fsync, rename, directory fsync), mode 0600."""

        def prepare(fd: int) -> None:
            os.fchmod(fd, 0o600)  # whatever the umask
            self._adopt(fd)

        write_file_atomic(path, data, 0o600, prepare=prepare)

    def _adopt(self, target: int | Path) -> None:
        """As root: give a new file or directory the data directory's owner (the server's
        ``--uid`` after its first start), so the running server can read it at once."""
        if os.geteuid() != 0:
            return
        owner = os.stat(self._dir.parent)
        if (owner.st_uid, owner.st_gid) == (0, 0):
            return
        if isinstance(target, int):
            os.fchown(target, owner.st_uid, owner.st_gid)
        else:
            os.chown(target, owner.st_uid, owner.st_gid, follow_symlinks=False)

    @contextmanager
    def _locked(self, domain: str) -> Iterator[Path]:
        """The domain's directory (made if missing, 0700), flock'ed for one change."""
        directory = self._domain_dir(domain)
        for path in (self._dir, directory):
            if makedirs_durable(path, 0o700):
                os.chmod(path, 0o700)
                self._adopt(path)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory
        finally:
            os.close(fd)
