"""mailsuite-admin apikey add|list|revoke: keys of the HTTP send API (POST /api/v1/messages).

A key acts for one user: it sends only as the addresses that user owns, like a login on the
submission port. The key is printed once, by ``add``; only its SHA-256 is kept, so a lost key
is revoked and replaced, never recovered.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.admin.context import Context, add_command, add_group, add_json_option


def register(groups: Any) -> None:
    actions = add_group(groups, "apikey", "manage keys of the HTTP send API")
    parser = add_command(actions, "add", _add, "make a key for a user (printed once)")
    parser.add_argument("user", metavar="USER")
    parser.add_argument("--name", default="", metavar="LABEL", help="what the key is for")
    parser = add_command(actions, "list", _list, "list keys, of one user or all (never the key)")
    parser.add_argument("user", metavar="USER", nargs="?")
    add_json_option(parser)
    parser = add_command(actions, "revoke", _revoke, "delete a key: it stops working at once")
    parser.add_argument("key_id", metavar="ID")


def _add(ctx: Context, args: argparse.Namespace) -> None:
    record, key = ctx.db.add_api_key(args.user, args.name)
    ctx.say(key)
    ctx.say(f"(API key {record.id} for {record.user}; shown this once, only its hash is kept)")


def _list(ctx: Context, args: argparse.Namespace) -> None:
    keys = ctx.db.list_api_keys(args.user)
    if args.json:
        ctx.print_json(
            [
                {
                    "id": key.id,
                    "user": key.user,
                    "label": key.label,
                    "created": key.created,
                    "last_used": key.last_used,
                }
                for key in keys
            ]
        )
        return
    for key in keys:
        label = f" {key.label!r}" if key.label else ""
        ctx.say(
            f"{key.id} {key.user}{label} created {key.created} last used {key.last_used or 'never'}"
        )


def _revoke(ctx: Context, args: argparse.Namespace) -> None:
    record = ctx.db.revoke_api_key(args.key_id)
    ctx.say(f"revoked API key {record.id} of {record.user}")
