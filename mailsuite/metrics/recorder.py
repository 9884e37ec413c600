"""The event listener that turns the hub's events (mailsuite/events.py) into Prometheus metrics.

Events arrive synchronously in the emitter's thread (the reactor, the commit thread, queue
workers), so the listener only does dict look-ups and counter arithmetic: prometheus_client's
metrics are thread-safe, and label children are cached (labels.py). A malformed event is
counted in ``mailsuite_metrics_event_errors_total`` and skipped, never raised into mail flow.

Labels are low-cardinality on purpose: role, protocol, verb, outcome, a status code; never an
address, a client IP or a domain (the queue's destination is "remote" or "notification").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.logger import Logger

from mailsuite.metrics.labels import Children, as_text, enhanced_status, word, words

log = Logger(namespace="mailsuite.metrics")

# Bucket bounds, in the unit of the metric.
COMMIT_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
DNS_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Queue age at delivery: from "at once" to the default five-day lifetime.
DELIVERY_SECONDS_BUCKETS = (1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 5 * 86400)

Handler = Callable[[dict[str, Any]], None]


def _role_tls(role: Any, tls: Any) -> tuple[str, str]:
    return word(role), as_text(bool(tls))


def _role_status(role: Any, status: Any) -> tuple[str, str]:
    return word(role), enhanced_status(status)


def _lower_words(*values: Any) -> tuple[str, ...]:
    return tuple(text.lower() for text in words(*values))


class EventMetrics:
    """The metric families of one registry, and ``__call__``: the hub's listener."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...], clean: Any = words) -> Children:
            return Children(Counter(name, doc, labels, registry=registry), clean)

        def gauge(name: str, doc: str, labels: tuple[str, ...], clean: Any = words) -> Children:
            return Children(Gauge(name, doc, labels, registry=registry), clean)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple) -> Children:
            return Children(Histogram(name, doc, labels, registry=registry, buckets=buckets))

        role_tls = ("role", "tls")
        self.connections = counter(
            "mailsuite_connections",
            "Sessions opened, by listener role and TLS from the start (implicit TLS).",
            role_tls,
            _role_tls,
        )
        self.sessions = gauge(
            "mailsuite_sessions_open",
            "Sessions open now, by listener role and TLS (upgraded ones count as TLS).",
            role_tls,
            _role_tls,
        )
        self.starttls = counter(
            "mailsuite_starttls_upgrades", "Sessions upgraded to TLS by STARTTLS/STLS.", ("role",)
        )
        self.commands = counter(
            "mailsuite_commands", "Commands received, by role and verb.", ("role", "verb")
        )
        self.logins = counter(
            "mailsuite_logins",
            "Login attempts, by protocol and result (success, failure).",
            ("protocol", "result"),
            _lower_words,
        )
        self.accepted = counter(
            "mailsuite_messages_accepted",
            "Messages accepted (250 after DATA), by role and destination (local, remote, both).",
            ("role", "destination"),
        )
        self.rejected = counter(
            "mailsuite_messages_rejected",
            "Messages refused after DATA, by role and enhanced status code.",
            ("role", "enhanced_status"),
            _role_status,
        )
        self.received_bytes = counter(
            "mailsuite_messages_accepted_bytes",
            "Size of the messages accepted, by role.",
            ("role",),
        )
        self.local_deliveries = counter(
            "mailsuite_local_deliveries",
            "Local mailboxes the accepted messages were delivered to, by role.",
            ("role",),
        )
        self.commit_batch = histogram(
            "mailsuite_commit_batch_messages",
            "Messages made durable by one commit, by mode "
            "(journal: a lone local message; batch: the group commit).",
            ("mode",),
            COMMIT_BATCH_BUCKETS,
        )
        self.commit_seconds = histogram(
            "mailsuite_commit_duration_seconds",
            "Time to make one commit durable (before its 250s), by mode.",
            ("mode",),
            COMMIT_SECONDS_BUCKETS,
        )
        self.attempts = counter(
            "mailsuite_delivery_attempts",
            "Queue delivery attempts per recipient, by outcome "
            "(delivered, deferred, failed) and destination (remote, notification).",
            ("outcome", "destination"),
        )
        self.delivery_seconds = histogram(
            "mailsuite_delivery_latency_seconds",
            "Time from queueing to remote delivery, by destination.",
            ("destination",),
            DELIVERY_SECONDS_BUCKETS,
        )
        self.notices = counter(
            "mailsuite_notices_sent",
            "Delivery status notifications sent to senders, by action (failed, delayed).",
            ("action",),
        )
        self.idle = gauge(
            "mailsuite_imap_idle_sessions", "IMAP sessions in IDLE now, by role.", ("role",)
        )
        self.dns_seconds = histogram(
            "mailsuite_dns_query_duration_seconds",
            "DNS lookups that went to the resolver, by record type.",
            ("type",),
            DNS_SECONDS_BUCKETS,
        )
        self.dns_queries = counter(
            "mailsuite_dns_queries",
            "DNS lookups by record type and outcome (answer, nxdomain, nodata, error).",
            ("type", "outcome"),
        )
        self.errors = counter(
            "mailsuite_metrics_event_errors",
            "Events the metrics could not read (a bug).",
            ("kind",),
        )
        self._handlers: dict[str, Handler] = {
            "session.opened": self._opened,
            "session.closed": self._closed,
            "session.starttls": self._starttls,
            "command": self._command,
            "auth": self._auth,
            "message.accepted": self._accepted,
            "message.rejected": self._rejected,
            "commit": self._commit,
            "delivery.attempt": self._attempt,
            "notice.sent": self._notice,
            "imap.idle": self._idle,
            "dns.query": self._dns,
        }
        self._logged: set[str] = set()

    def __call__(self, kind: str, fields: dict[str, Any]) -> None:
        handler = self._handlers.get(kind)
        if handler is None:
            return
        try:
            handler(fields)
        except Exception:
            self.errors(kind).inc()
            if kind not in self._logged:  # once per kind: a bug, not news worth a log flood
                self._logged.add(kind)
                log.failure("metrics could not count a {kind} event", kind=kind)

    # --- one handler per kind (fields as listed in mailsuite/events.py) ---------------------------

    def _opened(self, fields: dict[str, Any]) -> None:
        key = (fields["role"], bool(fields["tls"]))
        self.connections(*key).inc()
        self.sessions(*key).inc()

    def _closed(self, fields: dict[str, Any]) -> None:
        self.sessions(fields["role"], bool(fields["tls"])).dec()

    def _starttls(self, fields: dict[str, Any]) -> None:
        # "closed" tells whether the session ended under TLS: move it to that series now.
        role = fields["role"]
        self.starttls(role).inc()
        self.sessions(role, False).dec()
        self.sessions(role, True).inc()

    def _command(self, fields: dict[str, Any]) -> None:
        self.commands(fields["role"], fields["verb"]).inc()

    def _auth(self, fields: dict[str, Any]) -> None:
        self.logins(fields["protocol"], "success" if fields["ok"] else "failure").inc()

    def _accepted(self, fields: dict[str, Any]) -> None:
        role = fields["role"]
        local = len(fields["local"])
        remote = fields["queue_id"] is not None
        destination = ("both" if remote else "local") if local else "remote" if remote else "none"
        self.accepted(role, destination).inc()
        self.received_bytes(role).inc(fields["size"])
        if local:
            self.local_deliveries(role).inc(local)

    def _rejected(self, fields: dict[str, Any]) -> None:
        self.rejected(fields["role"], fields["enhanced"]).inc()

    def _commit(self, fields: dict[str, Any]) -> None:
        mode = "journal" if fields["journal"] else "batch"
        self.commit_batch(mode).observe(fields["messages"])
        self.commit_seconds(mode).observe(fields["seconds"])

    def _attempt(self, fields: dict[str, Any]) -> None:
        destination = "notification" if fields["notification"] else "remote"
        outcome = fields["outcome"]
        self.attempts(outcome, destination).inc()
        if outcome == "delivered":
            self.delivery_seconds(destination).observe(fields["age"])

    def _notice(self, fields: dict[str, Any]) -> None:
        self.notices(fields["action"]).inc()

    def _idle(self, fields: dict[str, Any]) -> None:
        child = self.idle(fields["role"])
        if fields["started"]:
            child.inc()
        else:
            child.dec()

    def _dns(self, fields: dict[str, Any]) -> None:
        rdtype = fields["type"]
        self.dns_seconds(rdtype).observe(fields["seconds"])
        self.dns_queries(rdtype, fields["outcome"]).inc()
