"""mailsuite-admin alias add|del|list: extra addresses that deliver to users or forward away."""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_catchall, normalize_mailbox
from mailsuite.accounts.addresses import normalize_remote_address as check_target
from mailsuite.admin.context import Context, add_command, add_group, add_json_option


def register(groups: Any) -> None:
    actions = add_group(groups, "alias", "manage aliases (use @domain as SOURCE for a catch-all)")
    parser = add_command(actions, "add", _add, "add an alias to one or more targets")
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("targets", metavar="TARGET", nargs="+")
    parser = add_command(actions, "del", _delete, "delete one target of an alias, or all of them")
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("target", metavar="TARGET", nargs="?")
    parser = add_command(actions, "list", _list, "list aliases, of one domain or all")
    parser.add_argument("domain", metavar="DOMAIN", nargs="?")
    add_json_option(parser)


def _source(text: str) -> str:
    return normalize_catchall(text) if text.startswith("@") else normalize_mailbox(text)


def _add(ctx: Context, args: argparse.Namespace) -> None:
    for target in args.targets:  # syntax first, so a typo in the last target adds nothing
        check_target(target)
    for target in args.targets:
        alias = ctx.db.add_alias(args.source, target)
        ctx.say(f"added alias {alias.source} -> {alias.target}")


def _delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.delete_alias(args.source, args.target)
    if args.target is None:
        ctx.say(f"deleted alias {_source(args.source)}")
    else:
        ctx.say(f"deleted alias {_source(args.source)} -> {args.target}")


def _list(ctx: Context, args: argparse.Namespace) -> None:
    aliases = ctx.db.list_aliases(args.domain)
    if args.json:
        ctx.print_json([{"source": a.source, "target": a.target} for a in aliases])
    else:
        for alias in aliases:
            ctx.say(f"{alias.source} -> {alias.target}")
