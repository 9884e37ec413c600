"""mailsuite-admin check [DOMAIN...] [--json]: the mail troubleshooting checklist, automated.

Each item is pass, warn or fail, with a one-line fix (see mailsuite/doctor/ for the checks).
The exit status is 0 when nothing failed (warnings allowed) and 1 otherwise, so the command can
gate a deploy or feed a monitor; a failure also ends with one ``error:`` line on stderr, like
every other failed command, while stdout (text or JSON) holds the report.
"""

from __future__ import annotations

import argparse
from typing import Any

from mailsuite.accounts.addresses import normalize_domain
from mailsuite.admin.context import CommandError, Context, add_json_option, global_options
from mailsuite.doctor.checklist import run_checklist
from mailsuite.doctor.result import FAIL, STATUSES, tally

SHOWN_FAILURES = 5  # named in the error line; the report above has them all
HELP = "check the server, its DNS and its certificate; report each item with a fix"


def register(groups: Any) -> None:
    parser = groups.add_parser("check", help=HELP, description=HELP)
    global_options(parser, top_level=False)
    parser.add_argument(
        "domains",
        metavar="DOMAIN",
        nargs="*",
        help="the domains to check in DNS (default: every local domain)",
    )
    add_json_option(parser)
    parser.set_defaults(handler=_check)


def _check(ctx: Context, args: argparse.Namespace) -> None:
    domains = [normalize_domain(name) for name in args.domains] or ctx.db.list_domains()
    results = run_checklist(ctx.config, list(dict.fromkeys(domains)), args.config)
    counts = tally(results)
    if args.json:
        ctx.print_json([result.as_dict() for result in results])
    else:
        for result in results:
            ctx.say(result.line())
        ctx.say(f"{len(results)} checks: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    if counts[FAIL]:
        failing = [result.check for result in results if result.status == FAIL]
        named = ", ".join(failing[:SHOWN_FAILURES]) + (", ..." if failing[SHOWN_FAILURES:] else "")
        raise CommandError(f"{counts[FAIL]} of {len(results)} checks failed: {named}")
