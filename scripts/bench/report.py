"""Turns the list of measured runs into medians, ratios against mailsuite, target checks and a
plain-text table."""

from __future__ import annotations

import statistics
from collections import defaultdict

BASE = "mailsuite"

# (workload key, peer, minimum ratio mailsuite/peer of durable acceptance rate): issue 6.
TARGETS = [
    ("mx-1k-c32", "postfix", 2.5),
    ("mx-1k-c32", "aiosmtpd", 1.5),
    ("mx-1k-c1", "postfix", 1.2),
    ("mx-64k-c32", "postfix", 1.2),
    ("sub-1k-c8", "postfix", 1.0),
    ("sub-64k-c8", "postfix", 1.0),
]
PSS_TARGET_MB = 30.0


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (workload, peer) with medians over rounds, in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["workload"], run["peer"])].append(run)
    rows = []
    for (workload, peer), group in groups.items():
        rates = [r["accept_rate"] for r in group]
        delivered = [r["delivered_rate"] for r in group]
        rows.append(
            {
                "workload": workload,
                "peer": peer,
                "rounds": len(group),
                "accept_rate": statistics.median(rates),
                "accept_min": min(rates),
                "accept_max": max(rates),
                "delivered_rate": statistics.median(delivered),
                "server_cpu": statistics.median(r["server_cpu"] for r in group),
                "server_system_cpu": statistics.median(
                    r.get("server_system_cpu", 0.0) for r in group
                ),
                "cpu_ms_per_msg": statistics.median(r["cpu_ms_per_msg"] for r in group),
                "client_cpu": statistics.median(r["client_cpu"] for r in group),
                "peak_pss_mb": max(r["peak_pss_mb"] for r in group),
                "counted": min(r["counted"] for r in group),
                "total": group[0]["total"],
                "durable": group[0]["durable"],
                "ceiling": group[0].get("ceiling", False),
            }
        )
    by_key = {(row["workload"], row["peer"]): row for row in rows}
    for row in rows:
        base = by_key.get((row["workload"], BASE))
        row["ratio"] = _ratio(base, row, "accept_rate")
        row["ratio_delivered"] = _ratio(base, row, "delivered_rate")
    return rows


def _ratio(base: dict | None, row: dict, key: str) -> float | None:
    if base is None or row["peer"] == BASE or not row[key]:
        return None
    return base[key] / row[key]


# Mail authentication's cost (issue 13): (workload, peer, against, minimum rate ratio, what).
AUTHN_TARGETS = [
    ("mx-1k-c32", "mailsuite-authn", "postfix", 2.0, "MX with SPF/DKIM/DMARC checks >= 2x postfix"),
    ("sub-1k-c8", "mailsuite-authn", "mailsuite", 0.9, "DKIM signing costs submission < 10%"),
    ("sub-64k-c8", "mailsuite-authn", "mailsuite", 0.9, "DKIM signing costs submission < 10%"),
]


def check_targets(rows: list[dict]) -> list[dict]:
    by_key = {(row["workload"], row["peer"]): row for row in rows}
    checks = []
    for workload, peer, against, minimum, what in AUTHN_TARGETS:
        row, base = by_key.get((workload, peer)), by_key.get((workload, against))
        ratio = (
            row["accept_rate"] / base["accept_rate"]
            if row and base and base["accept_rate"]
            else None
        )
        checks.append(
            {
                "target": f"{workload}: {what} ({peer}/{against} >= {minimum})",
                "measured": ratio,
                "met": None if ratio is None else ratio >= minimum,
            }
        )
    for workload, peer, minimum in TARGETS:
        row = by_key.get((workload, peer))
        ratio = row["ratio"] if row else None
        checks.append(
            {
                "target": f"{workload}: mailsuite >= {minimum}x {peer}",
                "measured": ratio,
                "delivered_ratio": row["ratio_delivered"] if row else None,
                "met": None if ratio is None else ratio >= minimum,
            }
        )
    pss = [row["peak_pss_mb"] for row in rows if row["peer"] == BASE]
    checks.append(
        {
            "target": f"mailsuite peak PSS < {PSS_TARGET_MB:.0f} MB",
            "measured": max(pss) if pss else None,
            "met": (max(pss) < PSS_TARGET_MB) if pss else None,
        }
    )
    return checks


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _aligned(lines: list[tuple[str, ...]]) -> list[str]:
    """Rows as left-aligned columns, the first (the header) underlined."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return out


def table(rows: list[dict]) -> str:
    header = (
        "workload", "peer", "msgs/s (median)", "[min-max]", "delivered/s", "ms/peer",
        "srv CPU s", "(sys)", "CPU ms/msg", "peak PSS MB", "client CPU s", "counted",
    )  # fmt: skip
    lines = [header]
    for row in rows:
        mark = "" if row["durable"] else " *"
        lines.append(
            (
                row["workload"],
                row["peer"] + mark,
                f"{row['accept_rate']:.0f}",
                f"[{row['accept_min']:.0f}-{row['accept_max']:.0f}]",
                f"{row['delivered_rate']:.0f}",
                _num(row["ratio"]),
                f"{row['server_cpu']:.1f}",
                "-" if row["ceiling"] else f"{row['server_system_cpu']:.1f}",
                f"{row['cpu_ms_per_msg']:.2f}",
                "-" if row["ceiling"] else f"{row['peak_pss_mb']:.1f}",
                "-" if row["ceiling"] else f"{row['client_cpu']:.1f}",
                f"{row['counted']}/{row['total']}",
            )
        )
    out = _aligned(lines)
    out.append(
        "* not durable (no fsync before 250). smtp-sink and the fsync ceilings are bounds, not"
        " peers; srv CPU of a ceiling is its own loop's."
    )
    return "\n".join(out)


def targets_text(checks: list[dict]) -> str:
    out = []
    for check in checks:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
        measured = _num(check["measured"])
        extra = ""
        if check.get("delivered_ratio") is not None:
            extra = f" (in-Maildir ratio {check['delivered_ratio']:.2f})"
        out.append(f"  {check['target']}: {measured}{extra} -> {verdict}")
    return "\n".join(out)


# --- IMAP / POP3 (imap_suite.py): times, lower is better -----------------------------------------

MAILBOX_PEER = "dovecot"
MAILBOX_TIME_RATIO = 2.0  # each IMAP workload within 2x Dovecot's time (issue)
MAILBOX_RSS_TARGET_MB = 200.0  # mailsuite's RSS with the 10k-message folder (issue)


def summarise_times(runs: list[dict]) -> list[dict]:
    """One row per (workload, peer): median/min/max seconds and the time ratio
    mailsuite/dovecot (below 1: mailsuite is faster)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["workload"], run["peer"])].append(run)
    rows = []
    for (workload, peer), group in groups.items():
        times = [r["elapsed"] for r in group]
        idle = [r["idle_pss_mb"] for r in group if "idle_pss_mb" in r]
        rows.append(
            {
                "workload": workload,
                "peer": peer,
                "rounds": len(group),
                "elapsed": statistics.median(times),
                "elapsed_min": min(times),
                "elapsed_max": max(times),
                "server_cpu": statistics.median(r["server_cpu"] for r in group),
                "client_cpu": statistics.median(r["client_cpu"] for r in group),
                "peak_pss_mb": max(r["peak_pss_mb"] for r in group),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in group),
                "idle_pss_mb": max(idle) if idle else None,
                "complete": all(r.get("complete", True) for r in group),
            }
        )
    by_key = {(row["workload"], row["peer"]): row for row in rows}
    for row in rows:
        base = by_key.get((row["workload"], BASE))
        ok = base is not None and row["peer"] != BASE and row["elapsed"] > 0
        row["ratio"] = base["elapsed"] / row["elapsed"] if ok else None
    return rows


def check_mailbox_targets(rows: list[dict], messages: int) -> list[dict]:
    checks = []
    for row in rows:
        if row["peer"] != MAILBOX_PEER or not row["workload"].startswith("imap-"):
            continue
        ratio = row["ratio"]
        checks.append(
            {
                "target": f"{row['workload']}: mailsuite time <= {MAILBOX_TIME_RATIO:g}x dovecot",
                "measured": ratio,
                "met": None if ratio is None else ratio <= MAILBOX_TIME_RATIO,
            }
        )
    rss = [
        row["peak_rss_mb"] for row in rows if row["peer"] == BASE and row["workload"] != "imap-idle"
    ]
    checks.append(
        {
            "target": f"mailsuite RSS < {MAILBOX_RSS_TARGET_MB:.0f} MB with the {messages}-message"
            " folder (peak over the single-session workloads)",
            "measured": max(rss) if rss else None,
            "met": (max(rss) < MAILBOX_RSS_TARGET_MB) if rss else None,
        }
    )
    return checks


def mailbox_table(rows: list[dict]) -> str:
    header = (
        "workload", "peer", "ms (median)", "[min-max]", "time ratio ms/dc", "srv CPU s",
        "client CPU s", "peak PSS MB", "peak RSS MB", "idle PSS MB", "complete",
    )  # fmt: skip
    lines = [header]
    for row in rows:
        lines.append(
            (
                row["workload"],
                row["peer"],
                f"{1000 * row['elapsed']:.1f}",
                f"[{1000 * row['elapsed_min']:.1f}-{1000 * row['elapsed_max']:.1f}]",
                _num(row["ratio"]),
                f"{row['server_cpu']:.2f}",
                f"{row['client_cpu']:.2f}",
                f"{row['peak_pss_mb']:.1f}",
                f"{row['peak_rss_mb']:.1f}",
                _num(row["idle_pss_mb"], "{:.1f}"),
                "yes" if row["complete"] else "NO",
            )
        )
    out = _aligned(lines)
    out.append(
        "time ratio = mailsuite median time / dovecot median time: below 1.00 mailsuite is faster."
        " peak RSS = largest single process (Dovecot: its per-session imap/pop3 process);"
        " PSS = whole process tree. POP3 rows are phases of one session (CPU/memory: the session)."
    )
    return "\n".join(out)
