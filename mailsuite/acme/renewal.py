"""When the ACME client runs: at start and every ``CHECK_SECONDS``, it issues a certificate when
none was issued yet, when fewer than ``acme.renew_days`` days are left, or when the names
changed (a domain added or removed). A failure is logged and retried sooner, with backoff; it
never stops the server, which keeps serving what it has (at first the self-signed certificate).

One name that cannot be validated (``autoconfig.<domain>`` without a DNS record, say) must not
cost every other name its certificate: the order is retried once without the names that failed,
and those are left out for ``FAILED_NAME_PAUSE`` so no CA rate limit is spent on them every
check. The public hostname is never left out: without it the certificate is of no use.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from acme import errors as acme_errors
from cryptography import x509
from twisted.application.service import Service
from twisted.internet import threads
from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from mailsuite.acme.client import ACMEAccount, ValidationFailed, issue
from mailsuite.acme.files import ACMEFiles
from mailsuite.acme.names import certificate_names, public_dns_name
from mailsuite.config import Config

log = Logger(namespace="mailsuite.acme")

CHECK_SECONDS = 12 * 3600.0
FIRST_RETRY_SECONDS = 600.0  # after a failure; doubled per failure up to CHECK_SECONDS
FAILED_NAME_PAUSE = datetime.timedelta(days=1)


class DomainSource(Protocol):
    def list_domains(self) -> list[str]: ...


class ACMEUnusable(Exception):
    """The configuration gives the CA nothing it could validate."""


# What a CA, the network, the disk or the configuration may do to a check: one log line.
# Anything else is a bug and gets its traceback too.
EXPECTED_ERRORS = (
    acme_errors.Error,
    requests.RequestException,
    ValidationFailed,
    ACMEUnusable,
    OSError,
    ValueError,
)


@dataclass(frozen=True)
class Renewed:
    """A certificate was issued and installed."""

    reason: str
    names: tuple[str, ...]
    skipped: tuple[str, ...]  # wanted, but left out after their validation failed
    not_after: datetime.datetime


def renewal_reason(
    leaf: x509.Certificate | None,
    names: Sequence[str],
    renew_days: int,
    now: datetime.datetime,
) -> str | None:
    """Why a new certificate is needed for ``names``, or None when ``leaf`` will do."""
    if leaf is None:
        return "no ACME certificate yet"
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        covered = {name.lower() for name in sans.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        covered = set()
    if covered != set(names):
        added, removed = sorted(set(names) - covered), sorted(covered - set(names))
        return f"names changed (added {added}, removed {removed})"
    left = leaf.not_valid_after_utc - now
    if left < datetime.timedelta(days=renew_days):
        return f"{left.days} days left, renewing at {renew_days}"
    return None


class CertificateRenewal(Service):
    """Keeps an ACME certificate for the server's names; ``install`` is called (in the reactor)
    after each new certificate is on disk and returns a Deferred that fires once it is served
    (the TLS watcher's reload)."""

    name = "acme"

    def __init__(
        self,
        config: Config,
        database: DomainSource,
        install: Callable[[], Deferred],
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.database = database
        self.install = install
        self.files = ACMEFiles(config.acme_dir)
        self.account = ACMEAccount(config.acme.directory, config.acme.email, config.acme.ca_file)
        self.check_seconds = CHECK_SECONDS
        self._reactor = reactor
        self._lock = DeferredLock()
        self._next: Any = None
        self._retry = FIRST_RETRY_SECONDS

    def startService(self) -> None:
        Service.startService(self)
        self._schedule(0)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

    def check(self) -> Deferred:
        """Issue and install a certificate if one is needed; fires with ``Renewed`` or None.
        Checks run one at a time. Errors reach the caller (the schedule logs them)."""
        return self._lock.run(self._check)

    def _check(self) -> Deferred:
        now = datetime.datetime.now(datetime.UTC)
        d = threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._run, now)
        d.addCallback(self._installed)
        return d

    def _run(self, now: datetime.datetime) -> tuple[Renewed | None, list[str]]:
        """In a thread: decide, and issue and install if needed. Returns what was installed, if
        anything, and the CA's word on each name whose validation failed in this run."""
        hostname = public_dns_name(self.config.public_hostname)
        if hostname is None:
            raise ACMEUnusable(
                f"public hostname {self.config.public_hostname!r} is no name a CA can validate"
                " (set public.hostname)"
            )
        wanted = certificate_names(hostname, self.database.list_domains())
        paused = self.files.failed_names(now - FAILED_NAME_PAUSE) - {hostname}
        names = [name for name in wanted if name not in paused]
        leaf = self.files.current()
        reason = renewal_reason(leaf, names, self.config.acme.renew_days, now)
        failures: list[str] = []
        while reason is not None:
            try:
                issued = issue(self.account, self.files, names)
            except ValidationFailed as exc:
                failed = set(exc.names)
                if hostname in failed or not failed & set(names):
                    raise
                self.files.record_failed(failed, now, covered=set())
                failures.append(str(exc))
                names = [name for name in names if name not in failed]
                reason = renewal_reason(leaf, names, self.config.acme.renew_days, now)
                continue
            pair = self.files.install(issued.fullchain_pem, issued.key_pem)
            if self.files.failed.exists():
                self.files.record_failed(set(), now, covered=set(names))
            new_leaf = x509.load_pem_x509_certificates(pair.cert.read_bytes())[0]
            skipped = tuple(name for name in wanted if name not in names)
            return Renewed(reason, tuple(names), skipped, new_leaf.not_valid_after_utc), failures
        return None, failures

    def _installed(self, result: tuple[Renewed | None, list[str]]) -> Deferred | None:
        renewed, failures = result
        for failure in failures:
            log.warn(
                "ACME: {failure}; those names are left out of the certificate for {pause}",
                failure=failure,
                pause=str(FAILED_NAME_PAUSE),
            )
        if renewed is None:
            return None
        log.info(
            "ACME certificate issued ({reason}) for {names}, valid until {not_after}",
            reason=renewed.reason,
            names=", ".join(renewed.names),
            not_after=renewed.not_after.isoformat(),
        )
        if renewed.skipped:
            log.warn(
                "ACME certificate leaves out {names}: their validation failed lately",
                names=", ".join(renewed.skipped),
            )
        d = self.install()
        d.addCallback(lambda _: renewed)
        return d

    # --- the schedule ---------------------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._next = self._reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._next = None
        self.check().addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, _: Renewed | None) -> None:
        self._retry = FIRST_RETRY_SECONDS
        self._schedule(self.check_seconds)

    def _failed(self, failure: Any) -> None:
        if not failure.check(*EXPECTED_ERRORS):
            log.failure("ACME certificate check failed unexpectedly", failure)
        log.error(
            "ACME certificate not obtained from {directory}: {error}; retry in {delay:.0f} s",
            directory=self.account.directory_url,
            error=failure.getErrorMessage() or failure.type.__name__,
            delay=self._retry,
        )
        self._schedule(self._retry)
        self._retry = min(self._retry * 2, self.check_seconds)
