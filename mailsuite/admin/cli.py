"""The mailsuite-admin console script: parse, run one command, report errors in one line.

Expected failures (bad syntax, unknown user, configuration mistakes, an unreadable database)
print ``mailsuite-admin: error: <message>`` and exit 1; argparse usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys

from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.errors import AccountsError
from mailsuite.admin import aliases, apikeys, doctor, domains, quickstart, records, users, web
from mailsuite.admin import dkim as dkim_commands
from mailsuite.admin import queue as queue_commands
from mailsuite.admin import report as report_commands
from mailsuite.admin import trace as trace_commands
from mailsuite.admin import webhooks as webhook_commands
from mailsuite.admin.context import CommandError, Context, global_options
from mailsuite.authn.keys import KeyStoreError
from mailsuite.config import ConfigError, load_config

PROG = "mailsuite-admin"

# Each module adds one command group with ``register(groups)``.
GROUPS = (
    quickstart,
    domains,
    users,
    aliases,
    queue_commands,
    dkim_commands,
    records,
    doctor,
    report_commands,
    trace_commands,
    web,
    apikeys,
    webhook_commands,
)

_EXPECTED_ERRORS = (AccountsError, AddressError, CommandError, ConfigError, KeyStoreError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage the domains, users and aliases of a mailsuite data directory. "
        "Changes take effect in a running server at once.",
    )
    global_options(parser, top_level=True)
    groups = parser.add_subparsers(title="commands", dest="group", required=True, metavar="COMMAND")
    for module in GROUPS:
        module.register(groups)
    return parser


def become_data_owner(data_dir) -> None:
    """Run as root, act as the user who owns the data directory (the server's --uid user once
    it has started): files the command creates (database journal and WAL, DKIM keys, queue
    files) are then that user's, not root's, and the server can keep using them. Like running
    Postfix's postmap as the owner of the map. Does nothing unless root and the directory
    already belongs to someone else."""
    if os.geteuid() != 0:
        return
    try:
        owner = os.stat(data_dir)
    except OSError:
        return
    if owner.st_uid == 0:
        return
    os.setgroups([])
    os.setgid(owner.st_gid)
    os.setuid(owner.st_uid)


def _error(message: object) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    context: Context | None = None
    try:
        config = load_config(args.config, args.data_dir)
        if argv is None:  # the command line (not an in-process caller, which keeps its rights)
            become_data_owner(config.data_dir)
        context = Context(config)
        args.handler(context, args)
    except BrokenPipeError:
        # The reader went away (``mailsuite-admin dns example.com | head``): not an error of
        # ours; stop quietly, and keep Python from complaining again when it flushes stdout.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except _EXPECTED_ERRORS as exc:
        return _error(exc)
    except sqlite3.Error as exc:
        path = context.config.db_path if context is not None else "user database"
        return _error(f"{path}: {exc}")
    except KeyboardInterrupt:
        return _error("interrupted")
    finally:
        if context is not None:
            context.close()
    return 0
