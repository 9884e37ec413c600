"""GET /metrics on a real server, scraped with urllib while smtplib, imaplib and poplib drive
real sessions: each assertion is a delta between two scrapes."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import urllib.error
import urllib.request

import pytest
from conftest import PASSWORD  # the suite fixture's users (alice@, bob@example.com) have it
from prometheus_client.parser import text_string_to_metric_families
from support.wait import wait_until

ALICE = "alice@example.com"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(suite) -> Samples:
    url = f"http://127.0.0.1:{suite.port('metrics')}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_until(suite, predicate, what: str) -> Samples:
    """Scrape until ``predicate(samples)`` holds (events of a closing session, or of the queue,
    arrive after the client's call returns); the scrape that satisfied it."""
    found: list[Samples] = []

    def check() -> bool:
        found[:] = [scrape(suite)]
        return bool(predicate(found[0]))

    wait_until(check, what=what)
    return found[0]


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return get(after, name, **labels) - get(before, name, **labels)


def test_mx_traffic_is_counted(suite):
    before = scrape(suite)
    message = b"Message-ID: <m-1@remote.example>\r\nSubject: hi\r\n\r\nhello\r\n"
    looping = b"".join(b"Received: from a by b; hop %d\r\n" % i for i in range(60)) + message
    with suite.smtp() as client:
        client.sendmail("bob@remote.example", [ALICE], message)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("bob@remote.example", [ALICE], looping)
        assert refused.value.smtp_code == 554
        during = scrape(suite)
    assert moved(before, during, "mailsuite_sessions_open", role="smtp", tls="false") == 1
    after = scrape_until(
        suite,
        lambda now: moved(before, now, "mailsuite_sessions_open", role="smtp", tls="false") == 0,
        "the SMTP session to be counted closed",
    )
    assert moved(before, after, "mailsuite_connections_total", role="smtp", tls="false") == 1
    for verb, times in [("EHLO", 1), ("MAIL", 2), ("RCPT", 2), ("DATA", 2), ("QUIT", 1)]:
        assert moved(before, after, "mailsuite_commands_total", role="smtp", verb=verb) == times
    accepted = "mailsuite_messages_accepted_total"
    assert moved(before, after, accepted, role="smtp", destination="local") == 1
    rejected = "mailsuite_messages_rejected_total"
    assert moved(before, after, rejected, role="smtp", enhanced_status="5.4.6") == 1
    assert moved(before, after, "mailsuite_messages_accepted_bytes_total", role="smtp") >= len(
        message
    )
    assert moved(before, after, "mailsuite_local_deliveries_total", role="smtp") == 1
    commits = sum(
        moved(before, after, "mailsuite_commit_duration_seconds_count", mode=mode)
        for mode in ("journal", "batch")
    )
    batch_sizes = sum(
        moved(before, after, "mailsuite_commit_batch_messages_count", mode=mode)
        for mode in ("journal", "batch")
    )
    assert commits == batch_sizes == 1


def test_logins_idle_and_sessions_over_imap_and_pop3(suite):
    before = scrape(suite)
    with imaplib.IMAP4_SSL("127.0.0.1", suite.port("imaps"), ssl_context=suite.tls_context()) as im:
        with pytest.raises(imaplib.IMAP4.error):
            im.login(ALICE, "wrong")
        im.login(ALICE, PASSWORD)
        im.select("INBOX")
        tag = im._new_tag().decode()
        im.send(f"{tag} IDLE\r\n".encode())
        assert im.readline().startswith(b"+")
        idling = scrape(suite)
        assert get(idling, "mailsuite_imap_idle_sessions", role="imaps") == 1
        assert moved(before, idling, "mailsuite_sessions_open", role="imaps", tls="true") == 1
        im.send(b"DONE\r\n")
        assert tag.encode() in im.readline()
        scrape_until(
            suite,
            lambda now: get(now, "mailsuite_imap_idle_sessions", role="imaps") == 0,
            "IDLE to be counted over",
        )
    pop = poplib.POP3("127.0.0.1", suite.port("pop3"), timeout=10)
    pop.stls(context=suite.tls_context())
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    during = scrape(suite)
    # After STLS the session counts as a TLS one; the plaintext series is back where it was.
    assert moved(before, during, "mailsuite_sessions_open", role="pop3", tls="true") == 1
    assert moved(before, during, "mailsuite_sessions_open", role="pop3", tls="false") == 0
    pop.quit()

    def settled(now: Samples) -> bool:
        return not any(
            moved(before, now, "mailsuite_sessions_open", role=role, tls=tls)
            for role in ("imaps", "pop3")
            for tls in ("true", "false")
        )

    after = scrape_until(suite, settled, "the sessions gauge back at its start")
    logins = "mailsuite_logins_total"
    assert moved(before, after, logins, protocol="imap", result="failure") == 1
    assert moved(before, after, logins, protocol="imap", result="success") == 1
    assert moved(before, after, logins, protocol="pop3", result="success") == 1
    assert moved(before, after, "mailsuite_starttls_upgrades_total", role="pop3") == 1
    assert moved(before, after, "mailsuite_connections_total", role="imaps", tls="true") == 1
    assert moved(before, after, "mailsuite_connections_total", role="pop3", tls="false") == 1
    assert moved(before, after, "mailsuite_commands_total", role="imaps", verb="IDLE") == 1
    assert moved(before, after, "mailsuite_commands_total", role="pop3", verb="STLS") == 1


def test_a_queued_remote_message_is_deferred_and_dns_failures_counted(suite):
    before = scrape(suite)
    with suite.submission(ALICE) as client:
        client.sendmail(ALICE, ["friend@remote.example"], b"Subject: out\r\n\r\nbye\r\n")
    attempts = "mailsuite_delivery_attempts_total"
    after = scrape_until(
        suite,
        lambda now: moved(before, now, attempts, outcome="deferred", destination="remote") >= 1,
        "a deferred delivery attempt",
    )
    accepted = "mailsuite_messages_accepted_total"
    assert moved(before, after, accepted, role="submission", destination="remote") == 1
    assert moved(before, after, "mailsuite_starttls_upgrades_total", role="submission") == 1
    assert moved(before, after, "mailsuite_logins_total", protocol="smtp", result="success") == 1
    assert moved(before, after, attempts, outcome="delivered", destination="remote") == 0
    # DNS points at a dead port: the MX lookup failed, and was timed.
    failures = sum(
        value
        for (name, labels), value in after.items()
        if name == "mailsuite_dns_queries_total" and ("outcome", "error") in labels
    )
    assert failures >= 1
    assert get(after, "mailsuite_dns_query_duration_seconds_count", type="MX") >= 1
    # The queue as the scheduler holds it: the message waits, its recipient deferred.
    assert get(after, "mailsuite_queue_messages") == 1
    assert get(after, "mailsuite_queue_recipients", state="deferred") == 1
    assert get(after, "mailsuite_queue_oldest_message_age_seconds") >= 0


def test_only_metrics_are_served_there(suite):
    port = suite.port("metrics")
    assert port not in (suite.port("http"), 0)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert missing.value.code == 404
    samples = scrape(suite)
    assert ("process_resident_memory_bytes", frozenset()) in samples
