"""mailsuite-admin queue list|show|flush|retry|delete|bounce: the outbound queue.

``list`` and ``show`` read the spool directly. The other commands change it: directly when no
server runs, otherwise as a request that the running server applies (see queue/control.py), so
``queue flush`` makes a running server retry at once.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from mailsuite.admin.context import CommandError, Context, add_command, add_group, add_json_option
from mailsuite.queue.bounce import BounceSender
from mailsuite.queue.control import ControlChannel, QueueLock
from mailsuite.queue.entry import ACTIVE, STATES, QueueEntry, RetryPolicy, epoch
from mailsuite.queue.message import inspect_message
from mailsuite.queue.operations import OfflineQueue
from mailsuite.queue.spool import QueueSpool, is_queue_id
from mailsuite.store.maildir import MaildirStore

REQUEST_TIMEOUT = 30.0
_SHOWN_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


def register(groups: Any) -> None:
    actions = add_group(groups, "queue", "inspect and manage the outbound mail queue")
    parser = add_command(actions, "list", _list, "list queued messages and their recipients")
    add_json_option(parser)
    parser = add_command(actions, "show", _show, "show one queued message in detail")
    parser.add_argument("id", metavar="ID")
    add_json_option(parser)
    add_command(actions, "flush", _flush, "retry every pending and deferred recipient now")
    parser = add_command(actions, "retry", _retry, "retry the recipients of one message now")
    parser.add_argument("id", metavar="ID")
    parser = add_command(actions, "delete", _delete, "remove a message from the queue, silently")
    parser.add_argument("id", metavar="ID")
    parser = add_command(
        actions, "bounce", _bounce, "give up on a message: fail it and notify the sender"
    )
    parser.add_argument("id", metavar="ID")


# --- reading ------------------------------------------------------------------------------------


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _entries(spool: QueueSpool) -> list[QueueEntry]:
    entries = []
    for queue_id in spool.list_ids():
        try:
            entries.append(QueueEntry(spool.load(queue_id)))
        except FileNotFoundError:
            continue  # delivered while we were listing
        except ValueError as exc:
            raise CommandError(f"{spool.envelope_path(queue_id)}: unreadable: {exc}") from None
    return entries


def _recipient_line(record: dict[str, Any], now: float) -> str:
    line = f"  {record['state']:<9}  <{record['address']}>  attempts {record.get('attempts', 0)}"
    if record["state"] in ACTIVE:
        due = epoch(record["next_attempt"]) - now
        when = "now" if due <= 0 else f"in {_age(due)}"
        line += f", next {record['next_attempt']} ({when})"
    if record.get("last_response"):
        relay = f" from {record['remote_mta']}" if record.get("remote_mta") else ""
        line += f", last{relay}: {record['last_response']}"
    return line


def _summary(entry: QueueEntry, now: float) -> str:
    sender = f"<{entry.sender}>"
    return f"{entry.id}  age {_age(now - entry.created)}  from {sender}"


def _as_json(entry: QueueEntry, now: float) -> dict[str, Any]:
    return {**entry.envelope, "age_seconds": round(now - entry.created, 3)}


def _list(ctx: Context, args: argparse.Namespace) -> None:
    spool = QueueSpool(ctx.config.queue_dir)
    entries = _entries(spool)
    now = time.time()
    if args.json:
        ctx.print_json([_as_json(entry, now) for entry in entries])
        return
    counts: Counter[str] = Counter()
    for entry in entries:
        ctx.say(_summary(entry, now))
        for record in entry.recipients:
            ctx.say(_recipient_line(record, now))
        counts.update(entry.counts())
    plural = "entry" if len(entries) == 1 else "entries"
    states = ", ".join(f"{counts[state]} {state}" for state in STATES)
    ctx.say(f"{len(entries)} {plural}; recipients: {states}")


def _check_id(text: str) -> str:
    if not is_queue_id(text):
        raise CommandError(f"not a queue id: {text!r}")
    return text


def _show(ctx: Context, args: argparse.Namespace) -> None:
    spool = QueueSpool(ctx.config.queue_dir)
    queue_id = _check_id(args.id)
    try:
        entry = QueueEntry(spool.load(queue_id))
    except FileNotFoundError:
        raise CommandError(f"no queue entry {queue_id}") from None
    now = time.time()
    headers: dict[str, str] = {}
    size = None
    try:
        info = inspect_message(spool.message_path(queue_id), entry.body_offset)
        size = info.size
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(info.headers + b"\r\n")
        headers = {name: str(parsed[name]) for name in _SHOWN_HEADERS if parsed[name] is not None}
    except OSError:
        pass
    if args.json:
        ctx.say(json.dumps({**_as_json(entry, now), "size": size, "headers": headers}, indent=2))
        return
    ctx.say(_summary(entry, now))
    ctx.say(f"  created {entry.envelope['created']}, size {size if size is not None else '?'}")
    for name, value in headers.items():
        ctx.say(f"  {name}: {value}")
    for record in entry.recipients:
        ctx.say(_recipient_line(record, now))


# --- changing -----------------------------------------------------------------------------------


def _operate(ctx: Context, operation: str, queue_id: str | None = None) -> None:
    config = ctx.config
    if not config.queue_dir.is_dir():
        if operation == "flush":
            ctx.say("the queue is empty")
            return
        raise CommandError(f"no queue entry {queue_id}")
    lock = QueueLock(config.queue_dir)
    if lock.acquire():
        try:
            spool = QueueSpool(config.queue_dir)
            bounces = None
            if operation == "bounce":
                policy = RetryPolicy(
                    config.queue.retry_schedule, config.queue.lifetime, config.queue.delay_warning
                )
                store = MaildirStore(config.mail_dir, config.hostname)
                bounces = BounceSender(
                    spool, store, ctx.db, config.spool_dir, config.hostname, policy
                )
            result = OfflineQueue(spool, bounces).operate(operation, queue_id)
        finally:
            lock.release()
    else:
        try:
            result = ControlChannel(config.queue_dir).request(operation, queue_id, REQUEST_TIMEOUT)
        except TimeoutError as exc:
            raise CommandError(str(exc)) from None
    if not result.get("ok"):
        raise CommandError(result.get("message", "failed"))
    ctx.say(result["message"])


def _flush(ctx: Context, args: argparse.Namespace) -> None:
    _operate(ctx, "flush")


def _retry(ctx: Context, args: argparse.Namespace) -> None:
    _operate(ctx, "retry", _check_id(args.id))


def _delete(ctx: Context, args: argparse.Namespace) -> None:
    _operate(ctx, "delete", _check_id(args.id))


def _bounce(ctx: Context, args: argparse.Namespace) -> None:
    _operate(ctx, "bounce", _check_id(args.id))
