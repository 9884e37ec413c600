"""When to reload the served certificate: its files changed on disk, SIGHUP, or a new ACME issue.

Which files are served is an ordered list of candidate pairs (``certificate_candidates``): the
ACME ``live`` pair when ACME is on, then the configured ``tls.cert_file``/``tls.key_file`` or
the generated self-signed pair. The first candidate whose certificate file exists is the one to
serve, so the server starts on the self-signed certificate and moves to the ACME one as soon as
it is issued.

Certbot and similar tools replace files (or the symlinks to them), so the watcher polls the
stat signatures of the pair to serve every few seconds (``POLL_SECONDS``): a stat costs next to
nothing and sees renames, symlink swaps and edits in place alike on any filesystem, where
inotify would add a dependency and miss changes made on another host of a network filesystem.
Stat and reading happen in a thread; only the swap runs in the reactor. A new file that
cannot be used (unparsable, key not matching, half-replaced pair) is logged once and the old
certificate stays; the watcher retries as soon as the files change again.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import threads
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mailsuite.acme.files import ACMEFiles
from mailsuite.config import Config
from mailsuite.runtime.tls import (
    CertificatePair,
    LoadedCertificate,
    ReloadableTLSOptions,
    Signature,
    TLSConfigError,
    ensure_certificate,
    load_certificate,
    pair_signature,
)

log = Logger(namespace="mailsuite.tls")

POLL_SECONDS = 5.0


def certificate_candidates(config: Config) -> tuple[CertificatePair, ...]:
    """The pairs the server may serve, best first. Blocking (it may generate the self-signed
    pair): call at start-up."""
    cert, key = ensure_certificate(
        config.tls.cert_file, config.tls.key_file, config.tls_dir, config.hostname
    )
    fallback = CertificatePair(cert, key)
    if not config.acme.enabled:
        return (fallback,)
    # The pair the ACME client installs: a symlinked directory, replaced in one rename.
    return (ACMEFiles(config.acme_dir).live_pair, fallback)


def load_first(candidates: Sequence[CertificatePair]) -> LoadedCertificate:
    """At start-up: the first candidate that loads. A broken preferred pair (a crash during an
    ACME install, say) is logged and skipped; the last one's error stops the start."""
    for pair in candidates[:-1]:
        if pair.cert.exists():
            try:
                return load_certificate(pair)
            except TLSConfigError as exc:
                log.warn("TLS certificate {path} skipped: {error}", path=str(pair.cert), error=exc)
    return load_certificate(candidates[-1])


def _choose(candidates: Sequence[CertificatePair]) -> CertificatePair:
    for pair in candidates:
        if pair.cert.exists():
            return pair
    return candidates[-1]


def _examine(
    candidates: Sequence[CertificatePair], seen: Signature | None
) -> tuple[Signature, LoadedCertificate | TLSConfigError | None]:
    """In a thread: the pair to serve, and its loaded form if its files differ from ``seen``
    (``seen`` None: load whatever is there)."""
    pair = _choose(candidates)
    signature = pair_signature(pair)
    if signature == seen:
        return signature, None
    try:
        return signature, load_certificate(pair)
    except TLSConfigError as exc:
        return signature, exc


class CertificateWatcher(Service):
    """Keeps ``options`` serving the current certificate: polls the files, answers SIGHUP, and
    offers ``reload`` to the ACME client. Reloads run one at a time, so a slow read can never
    put an older certificate back over a newer one."""

    name = "tls-certificate"

    def __init__(
        self,
        options: ReloadableTLSOptions,
        candidates: Sequence[CertificatePair],
        poll_seconds: float | None = None,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.options = options
        self.candidates = tuple(candidates)
        self.poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self._reactor = reactor
        self._seen: Signature | None = options.current.signature
        self._lock = DeferredLock()
        self._loop: LoopingCall | None = None
        self._previous_handler: Any = None
        self._installed_handler = False

    def startService(self) -> None:
        Service.startService(self)
        self._loop = LoopingCall(self.reload, "files changed", False)
        self._loop.clock = self._reactor
        self._loop.start(self.poll_seconds, now=False).addErrback(
            lambda failure: log.failure("TLS certificate watcher stopped", failure)
        )
        self._install_sighup()

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._restore_sighup()

    def reload(self, reason: str = "requested", force: bool = True) -> Deferred:
        """Load the current candidate and serve it if it is new; fires with True when the served
        certificate changed. ``force`` reads the files even if their stat looks unchanged
        (SIGHUP, a new ACME issue). Never fails: problems are logged."""
        return self._lock.run(self._reload, reason, force)

    def _reload(self, reason: str, force: bool) -> Deferred:
        seen = None if force else self._seen
        d = threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), _examine, self.candidates, seen
        )
        d.addCallback(self._apply, reason, force)
        d.addErrback(self._unexpected)
        return d

    def _apply(
        self,
        result: tuple[Signature, LoadedCertificate | TLSConfigError | None],
        reason: str,
        force: bool,
    ) -> bool:
        signature, outcome = result
        self._seen = signature
        current = self.options.current
        if outcome is None:
            return False
        if isinstance(outcome, TLSConfigError):
            log.error(
                "TLS certificate not reloaded ({reason}): {error}; still serving {path} "
                "SHA-256 {fingerprint}",
                reason=reason,
                error=str(outcome),
                path=str(current.pair.cert),
                fingerprint=current.fingerprint,
            )
            return False
        if outcome.fingerprint == current.fingerprint and outcome.pair == current.pair:
            self.options.swap(outcome)  # the same certificate, read again
            if force:  # whoever asked (an operator's SIGHUP) hears that nothing changed
                log.info(
                    "TLS certificate unchanged ({reason}): {path} SHA-256 {fingerprint}",
                    reason=reason,
                    path=str(current.pair.cert),
                    fingerprint=current.fingerprint,
                )
            return False
        self.options.swap(outcome)
        log.info(
            "TLS certificate reloaded ({reason}): {path} SHA-256 {fingerprint}",
            reason=reason,
            path=str(outcome.pair.cert),
            fingerprint=outcome.fingerprint,
        )
        return True

    def _unexpected(self, failure: Any) -> bool:
        log.failure("TLS certificate reload failed; the old certificate stays", failure)
        return False

    # --- SIGHUP ---------------------------------------------------------------------------------

    def _install_sighup(self) -> None:
        """SIGHUP reloads, as daemons conventionally do. twistd leaves SIGHUP alone (it uses
        SIGUSR1 for log rotation, SIGINT/SIGTERM to stop). Python runs the handler in the main
        thread between bytecodes, so it only schedules the reload in the reactor."""
        if not hasattr(signal, "SIGHUP"):
            return
        try:
            self._previous_handler = signal.signal(signal.SIGHUP, self._on_sighup)
        except ValueError:  # not the main thread: the reactor runs elsewhere (tests)
            log.debug("SIGHUP reload not installed: the reactor is not in the main thread")
            return
        self._installed_handler = True

    def _restore_sighup(self) -> None:
        if not self._installed_handler:
            return
        self._installed_handler = False
        try:
            if signal.getsignal(signal.SIGHUP) == self._on_sighup:
                signal.signal(signal.SIGHUP, self._previous_handler or signal.SIG_DFL)
        except ValueError:
            pass

    def _on_sighup(self, signum: int, frame: object) -> None:
        self._reactor.callFromThread(self.reload, "SIGHUP", True)
