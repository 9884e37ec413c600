"""The event listener and the queue collector alone: every event kind of mailsuite/events.py
moves the metric it should, labels stay few, and a malformed event is counted, never raised."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from mailsuite.events import Events
from mailsuite.metrics.queue import QueueCollector
from mailsuite.metrics.recorder import EventMetrics
from mailsuite.queue.entry import QueueEntry, iso


def fresh() -> tuple[CollectorRegistry, Events]:
    registry, hub = CollectorRegistry(), Events()
    hub.subscribe(EventMetrics(registry))
    return registry, hub


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_sessions_commands_and_logins():
    registry, hub = fresh()
    session = {"role": "submission", "protocol": "SMTP", "client": "192.0.2.1"}
    hub.emit("session.opened", tls=False, **session)
    hub.emit("command", verb="EHLO", **session)
    hub.emit("session.starttls", **session)
    hub.emit("command", verb="EHLO", **session)
    hub.emit("auth", protocol="smtp", user="alice@example.com", client="192.0.2.1", ok=False)
    hub.emit("auth", protocol="smtp", user="alice@example.com", client="192.0.2.1", ok=True)
    assert value(registry, "mailsuite_connections_total", role="submission", tls="false") == 1
    assert value(registry, "mailsuite_starttls_upgrades_total", role="submission") == 1
    # The upgraded session now counts as a TLS one, so its close (tls=True) balances it.
    assert value(registry, "mailsuite_sessions_open", role="submission", tls="false") == 0
    assert value(registry, "mailsuite_sessions_open", role="submission", tls="true") == 1
    hub.emit("session.closed", tls=True, **session)
    assert value(registry, "mailsuite_sessions_open", role="submission", tls="true") == 0
    assert value(registry, "mailsuite_commands_total", role="submission", verb="EHLO") == 2
    assert value(registry, "mailsuite_logins_total", protocol="smtp", result="failure") == 1
    assert value(registry, "mailsuite_logins_total", protocol="smtp", result="success") == 1
    # No address or client IP ever becomes a label.
    text = generate_latest(registry)
    assert b"alice" not in text and b"192.0.2.1" not in text


def test_messages_commits_and_the_queue_stream():
    registry, hub = fresh()
    accepted = {"role": "smtp", "id": "x", "message_id": "", "sender": "a@b", "client": "c"}
    hub.emit("message.accepted", local=["alice", "bob"], queue_id=None, size=100, **accepted)
    hub.emit("message.accepted", local=["alice"], queue_id="q1", size=50, **accepted)
    hub.emit("message.accepted", local=[], queue_id="q2", size=7, **accepted)
    hub.emit("message.rejected", role="smtp", code=554, enhanced="5.4.6", reason="loop")
    hub.emit("message.rejected", role="smtp", code=554, enhanced="free text!", reason="x")
    hub.emit("commit", messages=3, seconds=0.004, journal=False)
    hub.emit("commit", messages=1, seconds=0.001, journal=True)
    for outcome, notification, age in [("deferred", False, 1.0), ("delivered", False, 40.0)]:
        hub.emit("delivery.attempt", outcome=outcome, notification=notification, age=age)
    hub.emit("delivery.attempt", outcome="failed", notification=True, age=9.0)
    hub.emit("notice.sent", action="failed", to="a@b", mailboxes=["a"], queued=None)
    for kind in ("local", "both", "remote"):
        assert value(registry, "mailsuite_messages_accepted_total", role="smtp", destination=kind)
    assert value(registry, "mailsuite_messages_accepted_bytes_total", role="smtp") == 157
    assert value(registry, "mailsuite_local_deliveries_total", role="smtp") == 3
    rejected = "mailsuite_messages_rejected_total"
    assert value(registry, rejected, role="smtp", enhanced_status="5.4.6") == 1
    assert value(registry, rejected, role="smtp", enhanced_status="other") == 1
    assert value(registry, "mailsuite_commit_batch_messages_sum", mode="batch") == 3
    assert value(registry, "mailsuite_commit_duration_seconds_count", mode="journal") == 1
    attempts = "mailsuite_delivery_attempts_total"
    assert value(registry, attempts, outcome="deferred", destination="remote") == 1
    assert value(registry, attempts, outcome="failed", destination="notification") == 1
    latency = "mailsuite_delivery_latency_seconds"
    assert value(registry, f"{latency}_count", destination="remote") == 1
    assert value(registry, f"{latency}_sum", destination="remote") == 40.0
    assert value(registry, "mailsuite_notices_sent_total", action="failed") == 1


def test_idle_and_dns():
    registry, hub = fresh()
    hub.emit("imap.idle", role="imaps", protocol="IMAP", client="c", started=True)
    assert value(registry, "mailsuite_imap_idle_sessions", role="imaps") == 1
    hub.emit("imap.idle", role="imaps", protocol="IMAP", client="c", started=False)
    assert value(registry, "mailsuite_imap_idle_sessions", role="imaps") == 0
    hub.emit("dns.query", name="x.example", type="MX", seconds=0.5, outcome="error")
    hub.emit("dns.query", name="y.example", type="MX", seconds=0.01, outcome="answer")
    assert value(registry, "mailsuite_dns_queries_total", type="MX", outcome="error") == 1
    assert value(registry, "mailsuite_dns_query_duration_seconds_count", type="MX") == 2


def test_a_malformed_event_is_counted_not_raised():
    registry, hub = fresh()
    seen: list[str] = []
    hub.subscribe(lambda kind, fields: seen.append(kind))
    metrics_listener = hub._listeners[0]
    metrics_listener("commit", {"messages": 1})  # no "seconds", no "journal": no exception
    hub.emit("command", role="smtp")  # no verb
    hub.emit("some.future.kind", x=1)  # unknown kinds are ignored
    assert value(registry, "mailsuite_metrics_event_errors_total", kind="commit") == 1
    assert value(registry, "mailsuite_metrics_event_errors_total", kind="command") == 1
    assert seen == ["command", "some.future.kind"]


def test_the_queue_collector_counts_recipients_by_state():
    def entry(created: float, *states: str) -> QueueEntry:
        records = [{"address": f"r{i}@x.example", "state": s} for i, s in enumerate(states)]
        return QueueEntry({"id": str(created), "created": iso(created), "recipients": records})

    entries = [entry(1000.0, "pending", "deferred"), entry(1500.0, "deferred", "delivered")]
    registry = CollectorRegistry()
    registry.register(QueueCollector(lambda: entries, clock=lambda: 2000.0))
    assert value(registry, "mailsuite_queue_messages") == 2
    assert value(registry, "mailsuite_queue_recipients", state="deferred") == 2
    assert value(registry, "mailsuite_queue_recipients", state="pending") == 1
    assert value(registry, "mailsuite_queue_recipients", state="failed") == 0
    assert value(registry, "mailsuite_queue_oldest_message_age_seconds") == 1000.0
    entries.clear()
    assert value(registry, "mailsuite_queue_messages") == 0
    assert value(registry, "mailsuite_queue_oldest_message_age_seconds") == 0


def test_the_global_registry_stays_untouched():
    fresh()
    assert not [m for m in REGISTRY.collect() if m.name.startswith("mailsuite_")]
