"""The benchmark's load generator and report, against an in-process mailsuite: every message it
counts as accepted must really be in the recipient's Maildir (no timing assertions)."""

from __future__ import annotations

import asyncio
import re

import loadgen  # scripts/bench, on pytest's pythonpath
import report
from conftest import PASSWORD


def _spec(suite, role: str = "smtp", **fields) -> object:
    """A small load for ``suite``: MX mail to alice unless ``fields`` say otherwise."""
    defaults = {
        "total": 20,
        "concurrency": 3,
        "size": 2048,
        "recipient": "alice@example.com",
        "sender": "sender@remote.example",
        "token_prefix": "t",
        "reply_timeout": 10,
        "deadline": 30,
    }
    return loadgen.LoadSpec(port=suite.port(role), **{**defaults, **fields})


def _tokens(messages: list[bytes]) -> set[str]:
    found = set()
    for message in messages:
        match = re.search(rb"X-Bench-Token: (\S+)", message)
        if match:
            found.add(match.group(1).decode())
    return found


def test_mx_load_is_all_delivered(suite):
    spec = _spec(suite)
    result = asyncio.run(loadgen.run_load(spec))
    assert result.failed == 0, result.errors
    assert sorted(result.accepted) == [f"t-{i:07d}" for i in range(20)]
    assert result.sessions == 2  # 10 messages per session
    messages = suite.messages("alice@example.com")
    assert _tokens(messages) == set(result.accepted)
    assert all(len(m) >= 2048 - 300 for m in messages)


def test_submission_load_uses_starttls_and_auth(suite):
    spec = _spec(
        suite,
        "submission",
        total=4,
        concurrency=2,
        size=1024,
        recipient="bob@example.com",
        sender="alice@example.com",
        token_prefix="s",
        starttls=True,
        username="alice@example.com",
        password=PASSWORD,
        per_session=2,
    )
    result = asyncio.run(loadgen.run_load(spec))
    assert result.failed == 0, result.errors
    messages = suite.messages("bob@example.com")
    assert _tokens(messages) == set(result.accepted) == {f"s-{i:07d}" for i in range(4)}
    assert all(b"ESMTPSA" in m for m in messages)  # submitted over TLS, authenticated


def test_refused_messages_are_not_counted(suite):
    spec = _spec(suite, total=3, concurrency=1, recipient="nobody@example.com", token_prefix="x")
    result = asyncio.run(loadgen.run_load(spec))
    assert result.accepted == [] and result.failed == 3
    assert "RCPT" in result.errors[0]


def test_report_ratios_and_targets():
    def run(peer, rate, pss=20.0):
        return {
            "workload": "mx-1k-c32", "peer": peer, "accept_rate": rate, "delivered_rate": rate,
            "server_cpu": 1.0, "cpu_ms_per_msg": 1.0, "client_cpu": 0.5, "peak_pss_mb": pss,
            "counted": 10, "total": 10, "durable": True,
        }  # fmt: skip

    runs = [run("mailsuite", 300), run("mailsuite", 500), run("mailsuite", 400, 35.0)]
    runs += [run("postfix", 100), run("postfix", 200)]
    rows = report.summarise(runs)
    postfix = next(r for r in rows if r["peer"] == "postfix")
    assert postfix["ratio"] == 400 / 150
    checks = {c["target"]: c for c in report.check_targets(rows)}
    assert checks["mx-1k-c32: mailsuite >= 2.5x postfix"]["met"] is True
    assert checks["mx-1k-c32: mailsuite >= 1.5x aiosmtpd"]["met"] is None
    assert checks["mailsuite peak PSS < 30 MB"]["met"] is False
    assert "mx-1k-c32" in report.table(rows)
