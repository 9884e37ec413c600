"""mailsuite-admin domain add|list|del: the domains this server receives mail for.

``domain add`` also makes the domain's DKIM keys, one RSA-2048 and one Ed25519 (dual signing,
RFC 8463: verifiers that know Ed25519 check the small key, the others the RSA one), so mail sent
from a new domain is signed from the first message; ``--no-dkim`` skips that.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_domain
from mailsuite.admin.context import Context, add_command, add_group, add_json_option
from mailsuite.admin.dkim import describe, publish_hint, store_of
from mailsuite.authn.keys import ALGORITHMS


def register(groups: Any) -> None:
    actions = add_group(groups, "domain", "manage local domains")
    parser = add_command(actions, "add", _add, "add a local domain")
    parser.add_argument("name", metavar="DOMAIN")
    parser.add_argument(
        "--no-dkim", action="store_true", help="make no DKIM keys (see 'mailsuite-admin dkim')"
    )
    parser = add_command(actions, "list", _list, "list local domains")
    add_json_option(parser)
    parser = add_command(actions, "del", _delete, "delete a domain that has no users or aliases")
    parser.add_argument("name", metavar="DOMAIN")


def _add(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.add_domain(args.name)
    domain = normalize_domain(args.name)
    ctx.say(f"added domain {domain}")
    if not args.no_dkim:
        make_dkim_keys(ctx, domain)


def make_dkim_keys(ctx: Context, domain: str) -> None:
    """One key per algorithm, unless the domain kept active keys from an earlier life."""
    store = store_of(ctx)
    kept = {key.algorithm for key in store.active(domain)}
    made = [store.generate(domain, algorithm) for algorithm in ALGORITHMS if algorithm not in kept]
    if made:
        ctx.say(
            f"made DKIM keys {' and '.join(describe(k) for k in made)}; "
            f"{publish_hint(domain, len(made))}"
        )
    if kept:
        ctx.say(f"kept the active DKIM keys of {domain} ({', '.join(sorted(kept))})")


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
