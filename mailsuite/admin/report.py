"""mailsuite-admin report [--since 24h] [--domain D] [--json]: what happened to mail lately.

Read from the delivery log (<data>/log, mailsuite/deliverylog), only the days the window
covers, so it works on a stopped server too and costs the running one nothing. The text form is
aligned tables for a terminal; ``--json`` prints the same numbers as one object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mailsuite.admin.context import Context, global_options
from mailsuite.deliverylog.reader import LogReader, parse_duration
from mailsuite.deliverylog.record import iso_utc
from mailsuite.deliverylog.report import DOMAIN_COLUMNS, TOP, summarize


def register(groups: Any) -> None:
    help_text = "summarize the delivery log: domains, bounce and deferral reasons, senders"
    parser = groups.add_parser(
        "report",
        help=help_text,
        description=f"{help_text} (like pflogsumm). Per recipient domain: local deliveries, "
        "relayed recipients delivered, deferred (and deferral attempts), bounced, expired.",
    )
    global_options(parser, top_level=False)
    parser.add_argument(
        "--since", type=duration, default="24h", metavar="AGE", help="30m, 24h, 7d (default 24h)"
    )
    parser.add_argument("--domain", metavar="DOMAIN", help="only recipients in this domain")
    parser.add_argument("--top", type=int, default=TOP, metavar="N", help=f"default {TOP}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_report)


def duration(text: str) -> timedelta:
    """argparse type of --since: a usage error (exit 2) for what is not a duration."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report(ctx: Context, args: argparse.Namespace) -> None:
    until = datetime.now(UTC)
    since = until - args.since
    reader = LogReader(ctx.config.log_dir)
    summary = summarize(reader.records(since, until), args.domain, args.top)
    summary = {"since": iso_utc(since.timestamp()), "until": iso_utc(until.timestamp()), **summary}
    log_notes(ctx, reader)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        ctx.say(render(summary))


def log_notes(ctx: Context, reader: LogReader) -> None:
    """What the operator should know about the log itself, on stderr (stdout stays data)."""
    if not ctx.config.log.delivery:
        print("note: the delivery log is off (log.delivery = false)", file=sys.stderr)
    elif not reader.files:
        print(f"note: no delivery log files in {reader.directory}", file=sys.stderr)
    if reader.bad_lines:
        print(f"note: {reader.bad_lines} unreadable lines skipped", file=sys.stderr)


def render(summary: dict[str, Any]) -> str:
    """The report as text: a heading, then one aligned table per part."""
    totals = summary["totals"]
    scope = f", recipients in {summary['domain']}" if summary.get("domain") else ""
    out = [f"Delivery report {summary['since']} .. {summary['until']}{scope}", ""]
    notices = f"{totals['notices_failed']} failed, {totals['notices_delayed']} delayed"
    rows: list[Sequence[Any]] = [
        ("messages accepted", totals["accepted"]),
        ("recipients", totals["recipients"]),
        ("bytes", totals["bytes"]),
        ("local deliveries", totals["local"]),
        ("relayed: delivered", totals["delivered"]),
        ("relayed: deferred", totals["deferred"], f"{totals['deferrals']} deferral attempts"),
        ("relayed: bounced", totals["bounced"]),
        ("relayed: expired", totals["expired"]),
        ("notices sent", totals["notices_failed"] + totals["notices_delayed"], notices),
        ("rejected", totals["rejected"]),
        *((f"rejected: {code}", count) for code, count in summary["rejected_by_code"].items()),
    ]
    out += _section("Totals", table(rows))
    columns = ("domain", *DOMAIN_COLUMNS)
    domain_rows = [[name, *counts.values()] for name, counts in summary["domains"].items()]
    out += _section("Recipient domains", table(domain_rows, columns))
    reason_parts = (("Bounce reasons", "bounce_reasons"), ("Deferral reasons", "deferral_reasons"))
    for title, key in reason_parts:
        reasons = [(r["count"], r["status"], r["reply"]) for r in summary[key]]
        out += _section(title, table(reasons, ("count", "status", "reply")))
    for title, key in (("Users (authenticated)", "user"), ("Busiest senders", "sender")):
        entries = summary["users" if key == "user" else "senders"]
        ranked = [(e[key], e["messages"], e["recipients"], e["bytes"]) for e in entries]
        out += _section(title, table(ranked, (key, "messages", "recipients", "bytes")))
    return "\n".join(out).rstrip("\n")


def _section(title: str, lines: list[str]) -> list[str]:
    return [title, *(lines or ["  (none)"]), ""]


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> list[str]:
    """Rows as aligned columns, indented: numbers to the right, text to the left."""
    if not rows:
        return []
    cells = [[str(v) for v in row] for row in ([headers] if headers else []) + list(rows)]
    count = max(len(row) for row in cells)
    numeric = [all(isinstance(row[i], int) for row in rows if i < len(row)) for i in range(count)]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(count)]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append(("  " + "  ".join(parts)).rstrip())
    return lines
