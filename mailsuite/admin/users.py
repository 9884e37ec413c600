"""mailsuite-admin user add|passwd|del|list|disable|enable: mail accounts and their passwords."""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_mailbox
from mailsuite.accounts.database import UnknownDomain, UnknownUser, UserExists
from mailsuite.accounts.passwords import hash_password
from mailsuite.admin.context import Context, add_command, add_group, add_json_option
from mailsuite.admin.prompt import read_new_password

_STDIN_HELP = "read the password from the first line of standard input"


def register(groups: Any) -> None:
    actions = add_group(groups, "user", "manage users (mail accounts)")
    parser = add_command(actions, "add", _add, "add a user (asks for the password)")
    parser.add_argument("address", metavar="ADDRESS")
    parser.add_argument("--password-stdin", action="store_true", help=_STDIN_HELP)
    parser = add_command(actions, "passwd", _passwd, "set a user's password")
    parser.add_argument("address", metavar="ADDRESS")
    parser.add_argument("--password-stdin", action="store_true", help=_STDIN_HELP)
    parser = add_command(actions, "del", _delete, "delete a user (the stored mail is kept)")
    parser.add_argument("address", metavar="ADDRESS")
    parser = add_command(actions, "list", _list, "list users, of one domain or all")
    parser.add_argument("domain", metavar="DOMAIN", nargs="?")
    add_json_option(parser)
    parser = add_command(actions, "disable", _disable, "refuse login and delivery for a user")
    parser.add_argument("address", metavar="ADDRESS")
    parser = add_command(actions, "enable", _enable, "allow login and delivery again")
    parser.add_argument("address", metavar="ADDRESS")
    parser = add_command(
        actions, "admin", _admin, "let a user log in to the admin page (/admin), or --off"
    )
    parser.add_argument("--off", action="store_true", help="take the administrator flag away")
    parser.add_argument("address", metavar="ADDRESS")


def _add(ctx: Context, args: argparse.Namespace) -> None:
    address = normalize_mailbox(args.address)
    # Check before asking for a password, so a typo does not cost two prompts.
    domain = address.rpartition("@")[2]
    if not ctx.db.has_domain(domain):
        raise UnknownDomain(domain)
    if ctx.db.get_user(address) is not None:
        raise UserExists(address)
    password = read_new_password(address, args.password_stdin)
    ctx.db.add_user(address, hash_password(password))
    ctx.say(f"added user {address}")


def _passwd(ctx: Context, args: argparse.Namespace) -> None:
    address = normalize_mailbox(args.address)
    if ctx.db.get_user(address) is None:
        raise UnknownUser(address)
    password = read_new_password(address, args.password_stdin)
    ctx.db.set_password_hash(address, hash_password(password))
    ctx.say(f"changed the password of {address}")


def _delete(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.delete_user(args.address)
    ctx.say(f"deleted user {normalize_mailbox(args.address)}")


def _list(ctx: Context, args: argparse.Namespace) -> None:
    users = ctx.db.list_users(args.domain)
    if args.json:
        ctx.print_json(
            [{"address": u.address, "enabled": u.enabled, "created": u.created} for u in users]
        )
    else:
        for user in users:
            ctx.say(user.address if user.enabled else f"{user.address} (disabled)")


def _disable(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.set_enabled(args.address, False)
    ctx.say(f"disabled user {normalize_mailbox(args.address)}")


def _admin(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.set_admin(args.address, not args.off)
    state = "no longer administrator" if args.off else "administrator"
    ctx.say(f"{normalize_mailbox(args.address)} is {state}")


def _enable(ctx: Context, args: argparse.Namespace) -> None:
    ctx.db.set_enabled(args.address, True)
    ctx.say(f"enabled user {normalize_mailbox(args.address)}")
