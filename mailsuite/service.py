"""Builds the one MultiService that hosts every listener, sharing accounts, store and queue."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from mailsuite.accounts.cred import make_portal
from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.login import Authenticator
from mailsuite.accounts.memory import use_one_malloc_arena
from mailsuite.accounts.service import AccountService
from mailsuite.accounts.throttle import AuthThrottle
from mailsuite.acme.renewal import CertificateRenewal
from mailsuite.authn.inbound import InboundChecks
from mailsuite.authn.keys import DKIMKeyStore
from mailsuite.authn.signing import OutboundSigner
from mailsuite.config import Config, ListenAddress
from mailsuite.deliverylog.reader import LogReader
from mailsuite.deliverylog.report import summarize
from mailsuite.deliverylog.writer import DeliveryLogWriter
from mailsuite.events import Events
from mailsuite.imap.server import IMAPContext, IMAPFactory, IMAPLimits
from mailsuite.metrics import ServerMetrics
from mailsuite.pop3.server import POP3Context, POP3Factory
from mailsuite.queue.scheduler import make_scheduler
from mailsuite.queue.spool import QueueSpool
from mailsuite.resolver import Resolver
from mailsuite.runtime.certwatch import CertificateWatcher, certificate_candidates, load_first
from mailsuite.runtime.listening import IPv6OnlyServerEndpoint
from mailsuite.runtime.privileges import hand_over
from mailsuite.runtime.tls import CertificatePair, ReloadableTLSOptions
from mailsuite.sandbox.capture import CaptureMailbox
from mailsuite.sandbox.describe import detail as capture_detail
from mailsuite.sandbox.describe import summary as capture_summary
from mailsuite.sandbox.settings import capture_root
from mailsuite.sandbox.wiring import Sandbox
from mailsuite.smtp.authentication import MessageAuthentication
from mailsuite.smtp.delivery import MessageRouter
from mailsuite.smtp.policy import SUBMISSION, SUBMISSIONS, RolePolicy, mx_policy
from mailsuite.smtp.server import ESMTPFactory, Limits, SMTPContext
from mailsuite.store.accounts import MaildirAccounts
from mailsuite.store.incoming import clean_spool
from mailsuite.store.interfaces import IMailAccount, IMaildropAccount
from mailsuite.store.journal import DeliveryJournal
from mailsuite.store.maildir import MaildirStore
from mailsuite.web.admin.handlers import AdminBackend, AdminPages
from mailsuite.web.admin.sessions import AdminSessions
from mailsuite.web.api import make_send_api
from mailsuite.web.site import make_site
from mailsuite.webhooks.service import WebhookService

log = Logger(namespace="mailsuite")

# Password verifications at once: argon2 is CPU-bound, so more threads than cores only add memory.
HASH_THREADS = max(2, os.cpu_count() or 2)


class ListenerService(Service):
    """One listening socket. Binds in privilegedStartService, so twistd --uid can drop root after
    binding port 25, and a port that cannot be bound stops start-up with a one-line message."""

    def __init__(
        self, role: str, address: ListenAddress, endpoint: IStreamServerEndpoint, factory: Factory
    ) -> None:
        self.role = role
        self.address = address
        self.endpoint = endpoint
        self.factory = factory
        self.port: IListeningPort | None = None
        self.setName(f"{role}@{address}")

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        results: list = []
        self.endpoint.listen(self.factory).addBoth(results.append)
        outcome = results[0] if results else None
        if not IListeningPort.providedBy(outcome):
            reason = getattr(outcome, "value", outcome)
            raise SystemExit(f"mailsuite: cannot listen on {self.address} ({self.role}): {reason}")
        self.port = outcome
        log.info("{role} listening on {address}", role=self.role, address=self.address)

    def stopService(self):
        Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


def _endpoint(address: ListenAddress, tls_options=None) -> IStreamServerEndpoint:
    from twisted.internet import reactor

    if ":" in address.host:
        # IPv6 only, so "[::]:25" and "0.0.0.0:25" can both be listed (runtime/listening.py).
        return IPv6OnlyServerEndpoint(reactor, address.port, address.host, tls_options)
    if tls_options is not None:
        return SSL4ServerEndpoint(reactor, address.port, tls_options, interface=address.host)
    return TCP4ServerEndpoint(reactor, address.port, interface=address.host)


@dataclass(frozen=True)
class Foundations:
    """What start-up makes on disk before anything is wired: the TLS context (its certificate
    generated on first start) and the opened user database."""

    tls_options: Any
    database: SQLiteUserDatabase
    # The certificate files the TLS options may be reloaded from, best first (runtime/certwatch).
    tls_candidates: tuple[CertificatePair, ...] = ()


def prepare(config: Config) -> Foundations:
    """The start-up I/O, done once before ``MailSuite`` wires the objects (its constructor
    does none): the data directory, the certificate, the user database, and the one malloc
    arena, set before any pool thread exists (see mailsuite/accounts/memory.py)."""
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    candidates = certificate_candidates(config)
    tls_options = ReloadableTLSOptions(load_first(candidates))
    log.info(
        "TLS certificate {path} SHA-256 {fingerprint}",
        path=str(tls_options.current.pair.cert),
        fingerprint=tls_options.current.fingerprint,
    )
    use_one_malloc_arena()
    return Foundations(tls_options, SQLiteUserDatabase(config.db_path), candidates)


class MailSuite(MultiService):
    """The whole server: listeners for every configured role over shared state. Composition
    only: the objects are built and wired here, the disk was prepared by ``prepare``."""

    def __init__(
        self, config: Config, foundations: Foundations, run_as: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.run_as = run_as  # (uid, gid) twistd switches to after privilegedStartService
        self.tls_options = foundations.tls_options
        self.database = foundations.database
        # What happens to mail, for metrics, the delivery log and webhooks (mailsuite/events.py).
        self.events = Events()
        # The delivery log (mailsuite/deliverylog): message events as JSON lines in <data>/log.
        self.delivery_log = DeliveryLogWriter.from_config(config) if config.log.delivery else None
        if self.delivery_log is not None:
            self.events.subscribe(self.delivery_log)
        self.hash_pool = _hash_pool()
        self.accounts = AccountService(self.database, hash_pool=self.hash_pool)
        self.store = MaildirStore(config.mail_dir, config.hostname)
        self.queue = QueueSpool(config.queue_dir)
        self.journal = DeliveryJournal(config.spool_dir / "journal")
        # One login step for every protocol: the portal, and one throttle of failures per client
        # address whichever protocol they come from.
        # The store's avatars: the realm hands IMAP and POP3 their view of the user's mail.
        self.avatars = MaildirAccounts(self.store)
        avatars = {IMailAccount: self.avatars, IMaildropAccount: self.avatars}
        # Sandbox mode (mailsuite/sandbox): one capture mailbox, its own logins, nothing leaves.
        self.sandbox = Sandbox(config, self.store) if config.sandbox.enabled else None
        self.authenticator = Authenticator(
            self.sandbox.portal(avatars) if self.sandbox else make_portal(self.accounts, avatars),
            AuthThrottle(config.auth.failure_delay, config.auth.max_delay),
            config.auth.max_failures,
            events=self.events,
        )
        # One DNS resolver and cache for the queue's MX lookups and the mail-authentication checks.
        self.resolver = Resolver.from_config(config, events=self.events)
        self.dkim_keys = DKIMKeyStore(config.dkim_dir)
        checks = None
        # Sandbox: no DNS checks of made-up domains, nothing refused or put in Junk by them.
        if config.verify.enabled and self.sandbox is None:
            checks = InboundChecks(self.resolver, config.hostname, config.verify)
        signer = OutboundSigner(self.dkim_keys) if config.dkim.sign else None
        self.smtp_context = SMTPContext(
            hostname=config.hostname,
            limits=Limits.from_config(config),
            accounts=self.accounts,
            authenticator=self.authenticator,
            router=MessageRouter(
                self.store,
                self.queue,
                use_syncfs=config.server.syncfs,
                journal=self.journal,
                events=self.events,
            ),
            spool_dir=config.spool_dir,
            tls_options=self.tls_options,
            authentication=MessageAuthentication(checks, signer),
            sandbox=self.sandbox.smtp if self.sandbox else None,
        )
        roles: list[tuple[RolePolicy, tuple[ListenAddress, ...]]] = [
            (mx_policy(config.smtp.offer_auth), config.smtp.listen),
            (SUBMISSION, config.submission.listen),
            (SUBMISSIONS, config.submissions.listen),
        ]
        for policy, addresses in roles:
            factory = ESMTPFactory(self.smtp_context, policy)
            self.add_listeners(policy.name, addresses, factory, policy.implicit_tls)
        # Further protocols (IMAP, POP3) and the outbound queue add themselves below this line.
        # The outbound queue: scheduler, MX routing, SMTP relay client, DSN bounces; the router
        # wakes it for each new entry.
        self.scheduler = make_scheduler(
            config,
            self.queue,
            self.store,
            self.database,
            resolver=self.resolver,
            signer=signer,
            events=self.events,
        )
        self.scheduler.setServiceParent(self)
        self.smtp_context.router.queue_observers.append(self.scheduler.wake)
        if self.sandbox is not None:  # sandbox: what reaches the queue is captured, not relayed
            self.scheduler.agent = self.sandbox.queue_agent()
            self.sandbox.watch(self.smtp_context.router.observers)
        # IMAP4rev1: STARTTLS on the 143 role, implicit TLS on the 993 role; IDLE sessions hear of
        # SMTP deliveries through the router's observer hook.
        self.imap_context = IMAPContext(
            hostname=config.hostname,
            limits=IMAPLimits.from_config(config),
            authenticator=self.authenticator,
            store=self.store,
            spool_dir=config.spool_dir,
            tls_options=self.tls_options,
        )
        self.smtp_context.router.observers.append(self.imap_context.delivered)
        self.add_listeners("imap", config.imap.listen, IMAPFactory(self.imap_context, False), False)
        self.add_listeners("imaps", config.imaps.listen, IMAPFactory(self.imap_context, True), True)
        # POP3 (RFC 1939): STLS on the 110 role, implicit TLS on the 995 role; one shared context
        # (the login step and the in-process maildrop locks).
        self.pop3_context = POP3Context.from_config(config, self.authenticator, self.tls_options)
        self.add_listeners("pop3", config.pop3.listen, POP3Factory(self.pop3_context, False), False)
        self.add_listeners("pop3s", config.pop3s.listen, POP3Factory(self.pop3_context, True), True)
        # HTTP(S): autoconfig, autodiscover, MTA-STS, ACME challenges, /healthz.
        self.site = make_site(config, self.database, self.dkim_keys, self.listening_port)
        self.admin_page = make_admin_page(self)
        # The HTTP send API (/api/v1/messages, mailsuite/web/api) on the same Site.
        self.send_api = make_send_api(self) if config.api.enabled else None
        if self.send_api is not None:
            self.send_api.routes(self.site.resource)
        # Webhooks: delivery outcomes POSTed, signed, from a durable outbox (mailsuite/webhooks).
        self.webhooks = None
        if config.webhooks.enabled:
            self.webhooks = WebhookService(config, self.database, self.events)
            self.webhooks.setServiceParent(self)
        self.add_listeners("http", config.http.listen, self.site, False)
        self.add_listeners("https", config.https.listen, self.site, True)
        # Prometheus metrics (GET /metrics) on their own role, from the event hub and the queue.
        self.metrics = ServerMetrics(self.events, self.scheduler)
        self.add_listeners("metrics", config.metrics.listen, self.metrics.site(), False)
        # TLS hot reload: new connections get a certificate replaced on disk or announced by
        # SIGHUP; with [acme] on, the renewal service issues one and hands it to the watcher.
        if foundations.tls_candidates:
            self.certificates = CertificateWatcher(self.tls_options, foundations.tls_candidates)
            self.certificates.setServiceParent(self)
            if config.acme.enabled:
                reload = self.certificates.reload
                self.acme = CertificateRenewal(config, self.database, lambda: reload("ACME"))
                self.acme.setServiceParent(self)

    def add_listeners(
        self, role: str, addresses: tuple[ListenAddress, ...], factory: Factory, implicit_tls: bool
    ) -> None:
        """One ListenerService per address; ``implicit_tls`` wraps the socket in TLS at once."""
        tls = self.tls_options if implicit_tls else None
        # Sessions find their role and the event hub through their factory (wire/session.py).
        factory.role = role
        factory.events = self.events
        for address in addresses:
            ListenerService(role, address, _endpoint(address, tls), factory).setServiceParent(self)

    def privilegedStartService(self) -> None:
        # The queue lock first: only the process that holds it may clean up crash leftovers in
        # the queue and the incoming spool, and only then may listeners accept mail.
        self.scheduler.claim_queue()
        clean_spool(self.config.spool_dir)
        recovered = self.journal.recover(self.store.redeliver)
        if recovered:
            log.info("finished {count} journaled deliveries a crash interrupted", count=recovered)
        if self.run_as is None and os.geteuid() == 0:
            log.warn(
                "WARNING: mailsuite is running as root and will keep running as root: every "
                "protocol parser then has root's rights. Start it with twistd --uid and --gid "
                "(e.g. twistd --uid mail --gid mail ... mailsuite) so it drops them after binding."
            )
        if self.run_as is not None:  # everything above ran as root: hand it to the server's user
            uid, gid = self.run_as
            changed = hand_over(self.config.data_dir, uid, gid)
            log.info(
                "data directory {path} handed to uid {uid} gid {gid} ({count} entries changed)",
                path=str(self.config.data_dir),
                uid=uid,
                gid=gid,
                count=changed,
            )
        super().privilegedStartService()

    def startService(self) -> None:
        from twisted.internet import reactor

        # Hashing, SQLite and fsync all run in the reactor's pool: give it room for bursts.
        reactor.suggestThreadPoolSize(max(10, (os.cpu_count() or 2) * 4))
        if self.hash_pool.joined:  # started again after a stop (tests restart the suite)
            self.hash_pool = _hash_pool()
            self.accounts.hash_pool = self.hash_pool
        self.hash_pool.start()
        if self.delivery_log is not None:
            self.delivery_log.start()
        super().startService()

    def stopService(self) -> Deferred:
        # Listeners and sessions stop first; then the commit thread finishes its last batch.
        d = maybeDeferred(super().stopService)
        d.addBoth(lambda _: threads.deferToThread(self.smtp_context.router.close))
        d.addBoth(lambda _: threads.deferToThread(self.avatars.indexes.settle_all))
        pool = self.hash_pool
        d.addBoth(lambda _: threads.deferToThread(pool.stop) if pool.started else None)
        delivery_log = self.delivery_log  # last: it writes what everything above still told it
        d.addBoth(lambda _: threads.deferToThread(delivery_log.close) if delivery_log else None)
        return d

    def listening_port(self, role: str) -> int:
        """The bound port of the first listener of ``role`` (tests bind port 0)."""
        for service in self:
            if isinstance(service, ListenerService) and service.role == role and service.port:
                return service.port.getHost().port
        raise KeyError(role)


def _hash_pool() -> ThreadPool:
    return ThreadPool(minthreads=0, maxthreads=HASH_THREADS, name="mailsuite-auth")


def make_service(config: Config, run_as: tuple[int, int] | None = None) -> MailSuite:
    """The server for ``config``: the disk prepared, then the objects wired."""
    return MailSuite(config, prepare(config), run_as)


def make_admin_page(suite: MailSuite) -> AdminPages:
    """The built-in admin page (/admin) on the HTTP roles, over the running server's parts."""
    database = suite.database
    log_dir = suite.config.log_dir

    def last_day() -> dict:
        """The delivery log's report of the last 24 hours (read in a thread)."""
        now = datetime.now(UTC)
        return summarize(LogReader(log_dir).records(now - timedelta(hours=24), now))

    backend = AdminBackend(
        authenticate=suite.accounts.authenticate,
        is_admin=lambda address: threads.deferToThread(database.is_admin, address),
        queue=suite.scheduler.snapshot,
        report=(lambda: threads.deferToThread(last_day)) if suite.config.log.delivery else None,
    )
    if suite.config.sandbox.enabled:
        mailbox = CaptureMailbox(capture_root(suite.config))

        def captured() -> list[dict]:
            """The capture mailbox's messages, oldest first (in a thread)."""
            found = []
            for item in mailbox.files():
                head = mailbox.header_block(item.key, item.path)
                if head is not None:
                    found.append(capture_summary(item.key, head, item.size, item.mtime))
            return found

        def one(key: str) -> dict | None:
            data = mailbox.read(key)
            return None if data is None else capture_detail(key, data)

        backend.captures = lambda: threads.deferToThread(captured)
        backend.capture = lambda key: threads.deferToThread(one, key)
    pages = AdminPages(backend, AdminSessions(suite.config.data_dir / "web" / "links"))
    pages.routes(suite.site.resource)
    return pages
