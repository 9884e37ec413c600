"""mailsuite-admin web link ADDRESS: a one-time login link to the admin page (/admin).

For the first login, for scripts, and for a browser the password should not be typed into: the
link works once, within ten minutes, for a user flagged administrator.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_mailbox
from mailsuite.admin.context import CommandError, Context, add_command, add_group
from mailsuite.web.admin.sessions import make_link_token


def register(groups: Any) -> None:
    actions = add_group(groups, "web", "the built-in admin page")
    parser = add_command(actions, "link", _link, "print a one-time login link for an admin")
    parser.add_argument("address", metavar="ADDRESS")


def _base_url(ctx: Context) -> str:
    config = ctx.config
    for role, scheme in (("https", "https"), ("http", "http")):
        listen = getattr(config, role).listen
        if not listen:
            continue
        host = listen[0].host
        if host in ("0.0.0.0", "::", ""):
            host = config.public_hostname
        elif ":" in host:
            host = f"[{host}]"
        port = config.public_port(role) or listen[0].port
        default = 443 if scheme == "https" else 80
        return f"{scheme}://{host}" + ("" if port == default else f":{port}")
    raise CommandError("no http or https listener is configured: the admin page is not served")


def _link(ctx: Context, args: argparse.Namespace) -> None:
    address = normalize_mailbox(args.address)
    if not ctx.db.is_admin(address):
        raise CommandError(
            f"{address} is not an administrator: mailsuite-admin user admin {address}"
        )
    token = make_link_token(ctx.config.data_dir / "web" / "links", address)
    ctx.say(f"{_base_url(ctx)}/admin/login?once={token}")
    ctx.say("(valid once, for ten minutes)")
