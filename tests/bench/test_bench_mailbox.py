"""The IMAP/POP3 yardstick's generator and clients against an in-process mailsuite: what the
clients report having received must match what the generator wrote (no timing assertions)."""

from __future__ import annotations

import imap_load  # scripts/bench, on pytest's pythonpath
import mailbox_gen
import pop3_load
import report
from conftest import PASSWORD

USER = "reader@example.com"


def test_imap_and_pop3_clients_receive_the_generated_folder(suite, tmp_path):
    suite.add_user(USER)
    info = mailbox_gen.generate(tmp_path / "source", 50, seed=1)
    assert info.search_matches > 0 and 0 < info.unseen < 50
    mailbox_gen.copy_tree(tmp_path / "source", suite.maildir(USER))
    target = imap_load.Target(suite.port("imaps"), USER, PASSWORD, tls=True, timeout=10)

    assert imap_load.login_select(target)["exists"] == 50
    assert imap_load.fetch_envelopes(target)["responses"] == 50
    headers = imap_load.fetch_headers(target)
    assert headers["responses"] == 50 and headers["literal_bytes"] > 50 * len("From: x")
    numbers = mailbox_gen.spread(50, 10)
    assert numbers == list(range(1, 50, 5))
    bodies = imap_load.fetch_bodies(target, numbers)
    assert bodies["responses"] == 10
    assert bodies["literal_bytes"] == sum(info.sizes[n - 1] for n in numbers)
    assert imap_load.search_subject(target, info.search_word)["matches"] == info.search_matches
    first = imap_load.store_seen(target)
    assert first["unseen"] == info.unseen and info.unseen <= first["responses"] <= 50
    assert imap_load.store_seen(target)["unseen"] == info.unseen  # the flags were restored
    idle = imap_load.idle_crowd(target, 3)
    assert idle["idling"] == 3 and idle["exists"] == 50 and idle["idle_errors"] == []

    pop3 = pop3_load.run_pop3(suite.port("pop3s"), USER, PASSWORD, numbers, tls=True, timeout=10)
    assert (pop3["messages"], pop3["octets"]) == (50, info.total_bytes)
    assert pop3["uidl_lines"] == pop3["list_lines"] == 50
    assert pop3["retr_bytes"] == sum(info.sizes[n - 1] for n in numbers)
    # RSET + QUIT: retrieving marked nothing seen.
    assert imap_load.store_seen(target)["unseen"] == info.unseen


def test_sequence_sets_and_time_ratios():
    assert imap_load.sequence_set([7, 1, 2, 3, 9, 10]) == b"1:3,7,9:10"

    def run(peer, elapsed, rss=50.0):
        return {
            "workload": "imap-search", "peer": peer, "elapsed": elapsed, "server_cpu": 0.1,
            "client_cpu": 0.0, "peak_pss_mb": rss, "peak_rss_mb": rss, "complete": True,
        }  # fmt: skip

    runs = [run("mailsuite", 0.3), run("mailsuite", 0.5, 250.0), run("mailsuite", 0.4)]
    runs += [run("dovecot", 0.1), run("dovecot", 0.3)]
    rows = report.summarise_times(runs)
    dovecot = next(r for r in rows if r["peer"] == "dovecot")
    assert dovecot["ratio"] == 0.4 / 0.2
    checks = {c["target"].split(":")[0]: c for c in report.check_mailbox_targets(rows, 10)}
    assert checks["imap-search"]["met"] is True  # 2.0x is within 2x
    rss = next(c for c in checks.values() if "RSS" in c["target"])
    assert rss["met"] is False and rss["measured"] == 250.0
    assert "imap-search" in report.mailbox_table(rows)
