"""mailsuite-admin trace ID: the path of a message through the server, from the delivery log.

ID is our message id (in Received and in ``report``), a queue id, a Message-ID (with or without
<>), or an address (then the latest messages from or to it). Each message is printed with its
records in time order: the acceptance (and local deliveries), each delivery attempt per
recipient (outcome, relay, reply), the notices sent to the sender, the removal from the queue.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from mailsuite.admin.context import CommandError, Context, global_options
from mailsuite.admin.report import duration, log_notes, table
from mailsuite.deliverylog.reader import LogReader
from mailsuite.deliverylog.trace import LIMIT, MessageTrace, describe, trace


def register(groups: Any) -> None:
    help_text = "show every event of a message: by id, queue id, Message-ID or address"
    parser = groups.add_parser("trace", help=help_text, description=help_text)
    global_options(parser, top_level=False)
    parser.add_argument("id", metavar="ID")
    parser.add_argument(
        "--since", type=duration, metavar="AGE", help="only the last 30m, 24h, 7d... (default: all)"
    )
    parser.add_argument(
        "--limit", type=int, default=LIMIT, metavar="N", help=f"messages shown (default {LIMIT})"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of messages")
    parser.set_defaults(handler=_trace)


def _trace(ctx: Context, args: argparse.Namespace) -> None:
    since = datetime.now(UTC) - args.since if args.since else None
    reader = LogReader(ctx.config.log_dir)
    messages = trace(reader.records(since), args.id, max(1, args.limit))
    log_notes(ctx, reader)
    if args.json:
        print(json.dumps([m.to_json() for m in messages], indent=2, ensure_ascii=False))
        return
    if not messages:
        raise CommandError(f"no message matching {args.id!r} in the delivery log")
    ctx.say("\n\n".join(render(message) for message in messages))


def render(message: MessageTrace) -> str:
    """A heading naming the message, then one aligned line per thing that happened."""
    names = [f"message {message.id}" if message.id else f"queue entry {message.queue_ids[0]}"]
    if message.message_id:
        names.append(f"Message-ID {message.message_id}")
    if message.sender is not None:
        names.append(f"from <{message.sender}>")
    rows = []
    for record in message.events:
        when = str(record.get("time", "")).replace("T", " ")
        for label, detail in describe(message, record):
            rows.append((when, label, detail))
            when = ""
    return "\n".join([", ".join(names), *table(rows)])
