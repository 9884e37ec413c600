"""mailsuite-admin webhook add|list|del: where the server POSTs delivery outcomes.

A webhook with ``--user`` hears of the mail that user sends; without it, of every delivery.
``add`` prints the signing secret once (``list`` never shows it): the receiver checks each
call's ``X-Mailsuite-Signature`` with it (mailsuite/webhooks/signature.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.webhooks import EVENTS, parse_events
from mailsuite.admin.context import CommandError, Context, add_command, add_group, add_json_option


def register(groups: Any) -> None:
    actions = add_group(groups, "webhook", "manage webhooks of delivery outcomes")
    parser = add_command(actions, "add", _add, "subscribe a URL (prints its secret once)")
    parser.add_argument("url", metavar="URL")
    parser.add_argument("--user", metavar="USER", help="only mail this user sends (default: all)")
    parser.add_argument(
        "--events",
        default=",".join(EVENTS),
        metavar="LIST",
        help=f"comma-separated, some of {','.join(EVENTS)} (default: all)",
    )
    parser = add_command(actions, "list", _list, "list webhooks (without their secrets)")
    add_json_option(parser)
    parser = add_command(actions, "del", _delete, "delete a webhook (its pending calls go too)")
    parser.add_argument("webhook_id", metavar="ID")


def _add(ctx: Context, args: argparse.Namespace) -> None:
    hook = ctx.db.add_webhook(args.url, args.user, parse_events(args.events))
    ctx.say(hook.secret)
    whose = hook.user or "all users"
    ctx.say(
        f"(webhook {hook.id}: {hook.url} for {whose}, events {','.join(hook.events)}; "
        "the secret above signs every call and is shown this once)"
    )


def _list(ctx: Context, args: argparse.Namespace) -> None:
    hooks = ctx.db.list_webhooks()
    if args.json:
        ctx.print_json(
            [
                {
                    "id": hook.id,
                    "url": hook.url,
                    "user": hook.user,
                    "events": list(hook.events),
                    "created": hook.created,
                }
                for hook in hooks
            ]
        )
        return
    for hook in hooks:
        ctx.say(f"{hook.id} {hook.url} {hook.user or '(all)'} {','.join(hook.events)}")


def _delete(ctx: Context, args: argparse.Namespace) -> None:
    if not args.webhook_id.isdigit():
        raise CommandError(f"a webhook id is a number ('webhook list'), not {args.webhook_id!r}")
    ctx.db.delete_webhook(int(args.webhook_id))
    ctx.say(f"deleted webhook {args.webhook_id}")
