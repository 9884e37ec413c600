"""mailsuite-admin domain add|list|del: the domains this server receives mail for."""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_domain
from mailsuite.admin.context import Context, add_command, add_group, add_json_option


def register(groups: Any) -> None:
    actions = add_group(groups, "domain", "manage local domains")
    parser = add_command(actions, "add", _add, "add a local domain")
    parser.add_argument("name", metavar="DOMAIN")
    parser = add_command(actions, "list", _list, "list local domains")
    add_json_option(parser)
    parser = add_command(actions, "del", _delete, "delete a domain that has no users or aliases")
    parser.add_argument("name", metavar="DOMAIN")


def _add(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.add_domain(args.name)
    ctx.say(f"added domain {normalize_domain(args.name)}")


def _list(ctx: Context, args: argparse.Namespace) -> None:
    domains = ctx.db.list_domains()
    if args.json:
        ctx.print_json([{"name": name} for name in domains])
    else:
        for name in domains:
            ctx.say(name)


def _delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.delete_domain(args.name)
    ctx.say(f"deleted domain {normalize_domain(args.name)}")
